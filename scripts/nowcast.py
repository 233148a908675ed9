"""Forecast rain from a radar archive with a trained rain model and write a CF-1.8 netCDF (or Zarr) file.

The command is :mod:`bidirectional_conv_lstm.commands.nowcast` (also installed as the console script
``convlstm-nowcast``); ``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.nowcast import main

if __name__ == "__main__":
    main()
