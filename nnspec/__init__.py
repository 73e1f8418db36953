"""nnspec: describe a neural network once; check it, compile it to ONNX, train it, convert it."""
__version__ = "0.1.0"
