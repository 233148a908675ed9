"""bidirectional-conv-lstm: a fast, correct bidirectional Convolutional LSTM on the Hugging Face stack."""

from transformers import AutoConfig, AutoModel

from .configuration_convlstm import ConvLSTMConfig
from .convlstm import ConvGate, ConvLSTM, ConvLSTMCell
from .modeling_convlstm import (
    ConvLSTMForFramePrediction,
    ConvLSTMModel,
    ConvLSTMModelOutput,
    ConvLSTMPreTrainedModel,
    FramePredictionOutput,
)

__version__ = "0.1.0"

# transformers has no Auto class for frame prediction: AutoModel opens on ConvLSTMForFramePrediction, here and (via
# the auto_map and code files that save_pretrained writes) with trust_remote_code=True where this package is absent.
AutoConfig.register(ConvLSTMConfig.model_type, ConvLSTMConfig, exist_ok=True)
AutoModel.register(ConvLSTMConfig, ConvLSTMForFramePrediction, exist_ok=True)

__all__ = [
    "ConvGate",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMConfig",
    "ConvLSTMForFramePrediction",
    "ConvLSTMModel",
    "ConvLSTMModelOutput",
    "ConvLSTMPreTrainedModel",
    "FramePredictionOutput",
    "__version__",
]
