"""One IR layer -> one Keras layer entry ({class_name, config}), as Keras 2 (tf.keras) or Keras 3
writes it. The IR's field names are Keras's constructor arguments, so fields carry over; what
differs is how values are spelled: activations (a name where Keras has one for exactly this
function, else an activation-layer object), serialized objects, and a few per-version keys.
"""
from __future__ import annotations

import math
from typing import Callable

from pydantic import BaseModel

from ...errors import SpecError
from ...ir.functions import HardSigmoid, Relu
from ...ir.layers import Layer, _Spatial
from .catalog import snake_case
from .layer_import import KERAS2_HARD_SIGMOID

KERAS3_HARD_SIGMOID = HardSigmoid.model_fields["slope"].default

# IR name -> Keras class name where Keras's is not the IR name in CamelCase.
_CLASS_NAMES = {
    "l1_l2": "L1L2", "kl_divergence": "KLDivergence", "auc": "AUC", "mse": "MeanSquaredError",
    "mae": "MeanAbsoluteError", "rmse": "RootMeanSquaredError", "mape": "MeanAbsolutePercentageError",
    "msle": "MeanSquaredLogarithmicError", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW",
}
_MODULES = {"_initializer": "keras.initializers", "_regularizer": "keras.regularizers",
            "_constraint": "keras.constraints"}


class ExportError(SpecError):
    """An IR model that Keras cannot express; names the layer and what is missing."""

    def __init__(self, where: str | None, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)


def class_name(name: str) -> str:
    return _CLASS_NAMES.get(name, "".join(p[:1].upper() + p[1:] for p in name.split("_")))


def keras_object(fn: BaseModel, module: str, key: str = "name") -> dict:
    """An IR function as Keras serializes objects: {module, class_name, config, registered_name}."""
    config = fn.model_dump(exclude={key})
    return {"module": module, "class_name": class_name(getattr(fn, key)), "config": config, "registered_name": None}


# Activation names Keras reads as exactly the IR function, given its parameters and Keras's major version.
_NAMED: dict[str, Callable[[BaseModel, int], bool]] = {
    **{name: lambda f, major: True for name in
       ("linear", "sigmoid", "tanh", "softplus", "softsign", "selu", "exponential", "swish", "mish")},
    "relu": lambda f, major: f == Relu(),
    # Keras 3's names only, with Keras 3's defaults
    **{name: lambda f, major: major == 3 for name in (
        "hard_silu", "hard_tanh", "log_sigmoid", "tanh_shrink", "sparse_plus")},
    **{name: lambda f, major: major == 3 and f == type(f)() for name in (
        "celu", "hard_shrink", "soft_shrink", "squareplus")},
    "log_softmax": lambda f, major: major == 3 and f.axis == -1,
    "gelu": lambda f, major: not f.approximate,
    "elu": lambda f, major: f.alpha == 1.0,
    "softmax": lambda f, major: f.axis == -1,
    "hard_sigmoid": lambda f, major: math.isclose(f.slope, KERAS2_HARD_SIGMOID if major == 2 else KERAS3_HARD_SIGMOID),
    "relu6": lambda f, major: major == 3,
    "leaky_relu": lambda f, major: major == 3 and f.alpha == 0.2,  # Keras 3's leaky_relu function
}
# The rest as Keras activation layers: IR activation -> (class, config).
_AS_LAYERS: dict[str, Callable[[BaseModel, int], tuple[str, dict]]] = {
    "leaky_relu": lambda f, major: ("LeakyReLU", {"alpha" if major == 2 else "negative_slope": f.alpha}),
    "elu": lambda f, major: ("ELU", {"alpha": f.alpha}),
    "softmax": lambda f, major: ("Softmax", {"axis": f.axis}),
    "relu6": lambda f, major: ("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}),
    "relu": lambda f, major: ("ReLU", {"max_value": f.max_value, "negative_slope": f.negative_slope,
                                       "threshold": f.threshold}),
}


def activation_layer(fn: BaseModel, major: int, where: str) -> tuple[str, dict]:
    """An activation as a Keras layer class and its config: Activation(<name>) where Keras names it."""
    if fn.name in _NAMED and _NAMED[fn.name](fn, major):
        return "Activation", {"activation": fn.name}
    if fn.name in _AS_LAYERS:
        return _AS_LAYERS[fn.name](fn, major)
    raise ExportError(where, f"activation {fn.name}({fn.model_dump(exclude={'name'})}) has no Keras {major} "
                      "equivalent")


def activation_value(fn: BaseModel, major: int, where: str) -> str | dict:
    """What goes in a layer's `activation` key: a name, or an activation layer object."""
    cls, config = activation_layer(fn, major, where)
    if cls == "Activation":
        return config["activation"]
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


# Keras 3 classes whose constructor takes no `trainable` (their get_config leaves it out).
_NO_TRAINABLE_KEY_IN_KERAS3 = {"SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"}

# Channels-last layers whose Keras constructor takes no `data_format` (it rejects the key), by Keras major.
_NO_DATA_FORMAT = {
    2: {"Cropping1D", "ZeroPadding1D", "UpSampling1D", "Resizing", "CenterCrop"},
    3: {"Cropping1D", "UpSampling1D"},
}

# Arguments that Keras takes as a bare int where nnspec keeps a one-element tuple.
_SCALAR_IN_KERAS = {"UpSampling1D": "size"}


def inner_name(wrapper: Layer) -> str:
    """The Keras name of a wrapper's inner layer: its own, else Keras's default (lstm, dense, ...)."""
    return wrapper.layer.name or snake_case(wrapper.layer.type)


def keras_layer(layer: Layer, major: int, name: str | None = None) -> tuple[str, dict]:
    """(class name, config) of the Keras layer for an IR layer; `name` for a wrapper's inner layers."""
    name = name or layer.name
    where = f"layer '{name}'"
    if layer.no_keras:
        raise ExportError(where, layer.no_keras)
    head = {"name": name, "trainable": layer.trainable, "dtype": "float32"}
    if major == 3 and layer.type in _NO_TRAINABLE_KEY_IN_KERAS3:
        del head["trainable"]
    if layer.type == "Activation":
        cls, config = activation_layer(layer.activation, major, where)
        return cls, {**head, **config}
    config = dict(head)
    for key in type(layer).model_fields:
        if key in ("type", "name", "inputs", "trainable") or key in getattr(layer, "call_arguments", ()) \
                or key in getattr(layer, "not_in_keras_config", ()):
            continue  # call arguments go in the inbound node (call_args.py)
        config[key] = _value(layer, key, major, name)
    if isinstance(layer, _Spatial) and layer.type not in _NO_DATA_FORMAT[major]:
        config["data_format"] = "channels_last"
    if layer.type in _SCALAR_IN_KERAS:
        key = _SCALAR_IN_KERAS[layer.type]
        config[key] = config[key][0]
    if layer.type == "Embedding" and config["input_length"] is None:
        del config["input_length"]  # Keras 3 has no such argument
    if layer.type == "Bidirectional" and config["backward_layer"] is None:
        del config["backward_layer"]  # Keras builds the mirror itself
    return layer.type, config


def _value(layer: Layer, key: str, major: int, name: str):
    value = getattr(layer, key)
    if key in ("activation", "recurrent_activation"):
        return activation_value(value, major, f"layer '{name}'")
    for suffix, module in _MODULES.items():
        if key.endswith(suffix):
            return None if value is None else keras_object(value, module)
    if key in ("layer", "backward_layer") and value is not None:
        inner = inner_name(layer) if key == "layer" else f"backward_{inner_name(layer)}"
        cls, config = keras_layer(value, major, inner)
        return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}
    return value
