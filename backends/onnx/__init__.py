"""ONNX backend: lowering of the IR to ONNX graphs, and onnxruntime sessions."""
