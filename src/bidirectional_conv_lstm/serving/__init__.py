"""Serving a trained model: predictions from files, CF forecast files, ONNX export, CUDA graphs."""

from .forecast_files import forecast_to_cf_dataset, write_forecast
from .onnx_export import check_onnx_model, export_onnx
from .prediction import predict_files, read_frames

__all__ = [
    "check_onnx_model",
    "export_onnx",
    "forecast_to_cf_dataset",
    "predict_files",
    "read_frames",
    "write_forecast",
]
