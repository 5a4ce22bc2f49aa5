"""Deployment: detectors as torch.export programs and ONNX files of standard
operators (see `ExportWrapper` for the graph's inputs and outputs)."""

from .onnx_export import program_to_onnx, to_onnx
from .runtime import OnnxDetector
from .torch_export import check_image_size, export_program, min_image_size
from .wrapper import ExportWrapper, required_multiple

__all__ = ["ExportWrapper", "OnnxDetector", "check_image_size", "export_program", "min_image_size", "program_to_onnx", "required_multiple", "to_onnx"]
