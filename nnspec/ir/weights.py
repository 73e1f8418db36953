"""A model's weights as the IR sees them: {layer name: [arrays in Keras get_weights() order]},
the order of `Layer.weights`, and the check that they fit a model (used by every backend)."""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from .model import Analysis

Weights = dict[str, list[np.ndarray]]


def check_weights(analysis: Analysis, weights: Weights, path: str | None = None) -> None:
    """Every layer gets the arrays its spec asks for, in number and shape."""
    names = {info.layer.name for info in analysis.layers}
    for layer, arrays in weights.items():
        if layer not in names and len(arrays):
            raise SpecError(f"weights given for layer '{layer}', which the model does not have", path)
    for info in analysis.layers:
        specs = info.layer.weights(info.inputs)
        got = weights.get(info.layer.name, [])
        if len(got) != len(specs):
            wanted = ", ".join(f"{w.name} {w.shape}" for w in specs) or "none"
            raise SpecError(f"layer '{info.layer.name}' takes {len(specs)} weight array(s) ({wanted}), "
                            f"got {len(got)}", path)
        for w, a in zip(specs, got):
            if tuple(np.shape(a)) != tuple(w.shape):
                raise SpecError(f"weight '{info.layer.name}/{w.name}' has shape {tuple(np.shape(a))}; "
                                f"the spec needs {tuple(w.shape)}", path)
