"""Serving a trained model: predictions from files, ONNX export, CUDA graphs."""

from .onnx_export import check_onnx_model, export_onnx
from .prediction import predict_files, read_frames

__all__ = ["check_onnx_model", "export_onnx", "predict_files", "read_frames"]
