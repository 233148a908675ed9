"""Load a saved model from a folder or a Hub repo, naming the caller's argument in every error.

The checks and the clear errors are the model's own (:mod:`~bidirectional_conv_lstm.models.convlstm.loading_convlstm`,
which ``ConvLSTMForFramePrediction.from_pretrained`` uses); here the scripts and the training loop name the option a
person typed (``--model``, ``model_name_or_path``).
"""

from __future__ import annotations

from ..models.convlstm.loading_convlstm import check_model_name_or_path, load_clearly
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction, ConvLSTMPreTrainedModel

__all__ = ["check_model_name_or_path", "load_pretrained_model"]


def load_pretrained_model(
    model_name_or_path, *, argument: str = "model", revision: str | None = None, **kwargs
) -> ConvLSTMForFramePrediction:
    """`ConvLSTMForFramePrediction.from_pretrained`, with errors that name `argument` (see
    :func:`~bidirectional_conv_lstm.models.convlstm.loading_convlstm.load_clearly` for what is raised).

    Returns:
        The model, in eval mode as transformers returns it.
    """
    transformers_load = super(ConvLSTMPreTrainedModel, ConvLSTMForFramePrediction).from_pretrained
    return load_clearly(transformers_load, model_name_or_path, argument=argument, revision=revision, **kwargs)
