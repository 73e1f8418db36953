"""nnspec: describe a neural network once; check it, compile it to ONNX, train it, convert it."""
__version__ = "0.1.0"

# the Python API (nnspec.api), imported on first use: `import nnspec` stays light (no onnxruntime)
__all__ = ["load", "Model", "Layer", "Callback", "History", "InputError"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnspec' has no attribute {name!r}")


def __dir__() -> list[str]:  # tab completion lists the lazy names too
    return sorted([*globals(), *__all__])
