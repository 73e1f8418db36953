"""nnspec: describe a neural network once; check it, compile it to ONNX, train it, convert it."""
__version__ = "0.1.0"

_API = ("load", "Model")  # imported on first use: `import nnspec` stays light (no onnxruntime)


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnspec' has no attribute {name!r}")
