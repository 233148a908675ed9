"""bidirectional-conv-lstm: a fast, correct bidirectional Convolutional LSTM on the Hugging Face stack."""

from .convlstm import ConvGate, ConvLSTM, ConvLSTMCell

__version__ = "0.1.0"

__all__ = ["ConvGate", "ConvLSTM", "ConvLSTMCell", "__version__"]
