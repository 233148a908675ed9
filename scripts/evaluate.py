"""Evaluate a saved model (folder or Hub id) on a dataset split, beside the trivial baselines.

The command is :mod:`bidirectional_conv_lstm.commands.evaluate` (also installed as the console script ``convlstm-evaluate``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.evaluate import main

if __name__ == "__main__":
    main()
