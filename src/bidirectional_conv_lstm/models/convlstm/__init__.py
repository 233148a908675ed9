"""The ConvLSTM layer and the frame-prediction model, as one flat folder of files.

``save_pretrained`` copies the files a saved model needs (``configuration_convlstm.py``, ``modeling_convlstm.py``
and the files they import with single-dot relative imports; the processor and the pipeline with them) into the
model's folder, so ``trust_remote_code=True`` loads it where this package is not installed. Those files import
only torch, numpy, PIL, transformers and each other: never anything else of the package. This ``__init__`` is not
copied.
"""

from .configuration_convlstm import ConvLSTMConfig
from .convlstm import ConvGate, ConvLSTM, ConvLSTMCell
from .modeling_convlstm import (
    ConvLSTMForFramePrediction,
    ConvLSTMModel,
    ConvLSTMModelOutput,
    ConvLSTMPreTrainedModel,
    FramePredictionOutput,
)
from .pipeline_convlstm import FramePredictionPipeline, save_frame_prediction_model
from .processing_convlstm import ConvLSTMImageProcessor

__all__ = [
    "ConvGate",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMConfig",
    "ConvLSTMForFramePrediction",
    "ConvLSTMImageProcessor",
    "ConvLSTMModel",
    "ConvLSTMModelOutput",
    "ConvLSTMPreTrainedModel",
    "FramePredictionOutput",
    "FramePredictionPipeline",
    "save_frame_prediction_model",
]
