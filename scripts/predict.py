"""Predict future frames from observed ones with a saved model (folder or Hub id).

The command is :mod:`bidirectional_conv_lstm.commands.predict` (also installed as the console script ``convlstm-predict``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.predict import main

if __name__ == "__main__":
    main()
