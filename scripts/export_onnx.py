"""Export a saved frame-prediction model to ONNX and check it with ONNX Runtime against PyTorch.

The command is :mod:`bidirectional_conv_lstm.commands.export_onnx` (also installed as the console script ``convlstm-export-onnx``);
``--help`` lists its options.
"""

from bidirectional_conv_lstm.commands.export_onnx import main

if __name__ == "__main__":
    main()
