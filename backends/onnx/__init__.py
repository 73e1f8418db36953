"""ONNX backend: lower a spec to primitives, then to an ONNX model; run it with onnxruntime."""
from .compile import compile_model, compile_spec, spec_from_onnx, trace
from .emit import DEFAULT_OPSET

__all__ = ["compile_model", "compile_spec", "spec_from_onnx", "trace", "DEFAULT_OPSET"]
