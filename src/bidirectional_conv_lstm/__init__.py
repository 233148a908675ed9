"""bidirectional-conv-lstm: a fast, correct bidirectional Convolutional LSTM on the Hugging Face stack."""

from importlib import metadata

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .models.convlstm import (
    ConvGate,
    ConvLSTM,
    ConvLSTMCell,
    ConvLSTMConfig,
    ConvLSTMForFramePrediction,
    ConvLSTMImageProcessor,
    ConvLSTMModel,
    ConvLSTMModelOutput,
    ConvLSTMPreTrainedModel,
    FramePredictionOutput,
    FramePredictionPipeline,
    save_frame_prediction_model,
)

__version__ = metadata.version("bidirectional-conv-lstm")

# transformers has no Auto class for frame prediction: AutoModel opens on ConvLSTMForFramePrediction, here and (via
# the auto_map and code files that save_pretrained writes) with trust_remote_code=True where this package is absent.
AutoConfig.register(ConvLSTMConfig.model_type, ConvLSTMConfig, exist_ok=True)
AutoModel.register(ConvLSTMConfig, ConvLSTMForFramePrediction, exist_ok=True)
# The processor is numpy-based (transformers' "pil" backend: no torchvision). Importing the pipeline module registered
# the "frame-prediction" pipeline.
AutoImageProcessor.register(
    ConvLSTMConfig, image_processor_classes={"pil": ConvLSTMImageProcessor}, exist_ok=True
)

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
    "__version__",
    "save_frame_prediction_model",
]
