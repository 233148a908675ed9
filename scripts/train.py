"""Train (or fine-tune) a ConvLSTM frame-prediction model.

The command is :mod:`bidirectional_conv_lstm.commands.train` (also installed as the console script ``convlstm-train``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.train import main

if __name__ == "__main__":
    main()
