"""The neutral, normalized result of reading a Keras file (see reader.py for the conventions)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# (layer name, node index, tensor index): one tensor produced by a call of a layer.
TensorRef = tuple[str, int, int]


# eq=False: weights are numpy arrays, whose == is elementwise; compare fields explicitly.
@dataclass(eq=False)
class KerasLayer:
    name: str
    class_name: str  # stock Keras class name, e.g. "Dense"; nested models are "Functional"/"Sequential"
    config: dict  # normalized layer config (one form for Keras 2 and 3)
    inbound: list[list[TensorRef]] = field(default_factory=list)  # one list per call of the layer
    # per call, the Keras 3 `mask` argument: one entry per tensor input (None: that input's own mask)
    masks: list[list[TensorRef | None]] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)  # Keras get_weights() order
    weight_names: list[str] = field(default_factory=list)  # short names, e.g. "kernel", "forward/bias"
    file_class: str = ""  # the class the file names, where it was read as another (an op layer)


def place(name: str, class_name: str) -> str:
    """How conversion errors name a layer: its Keras name (after the nested models' names) and class."""
    return f"layer '{name}' ({class_name})"


@dataclass(eq=False)
class KerasModel:
    name: str
    layers: list[KerasLayer]  # config order, InputLayer(s) included
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    sequential: bool
    keras_version: str  # "2.x" or "3.x"
    training_config: dict | None = None
    optimizer_weights: dict[str, np.ndarray] | None = None
    source: str = ""

    def layer(self, name: str) -> KerasLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
