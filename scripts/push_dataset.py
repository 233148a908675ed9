"""Push the data a run config trains on to a Hub dataset repo, with a dataset card.

The command is :mod:`bidirectional_conv_lstm.commands.push_dataset` (also installed as the console script ``convlstm-push-dataset``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.push_dataset import main

if __name__ == "__main__":
    main()
