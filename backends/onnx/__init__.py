"""ONNX backend: lower a spec to primitives, then to an ONNX model; run it with onnxruntime."""
from .compile import compile_onnx, trace
from .emit import DEFAULT_OPSET

__all__ = ["compile_onnx", "trace", "DEFAULT_OPSET"]
