"""Train a precipitation nowcasting model: synthetic pretraining, then (with an archive) the real radar events.

The command is :mod:`bidirectional_conv_lstm.commands.train_nowcasting` (also installed as the console script ``convlstm-train-nowcasting``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.train_nowcasting import main

if __name__ == "__main__":
    main()
