"""One normalized Keras layer config -> one IR layer.

IR layer fields are Keras config names, so most keys carry over as they are; the rest is either
harmless (NEUTRAL: how Keras computes, not what) and dropped, or a setting nnspec cannot honour,
refused with the layer and key named. Activations, initializers, regularizers and constraints go
through the IR's families, which take Keras class names.
"""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from ...ir.functions import ACTIVATIONS, CONSTRAINTS, INITIALIZERS, REGULARIZERS
from ...ir.layers import LAYERS, Layer
from ...ir.validation import messages
from .normalize import Context
from .objects import ANY, from_keras, function

# Keys that say how Keras computes or stores, not what: any value (or the one listed) is fine.
NEUTRAL: dict[str, Any] = {
    "name": ANY, "trainable": ANY, "dtype": ANY,  # layers compute in float32 whatever their policy
    "implementation": ANY, "seed": ANY, "synchronized": ANY, "fused": ANY, "renorm_momentum": ANY,
    "data_format": "channels_last", "time_major": False, "zero_output_for_mask": False, "renorm": False,
    "rms_scaling": False, "sparse": False, "ragged": False, "optional": False,
    "groups": 1,  # Keras 2 writes it for depthwise and separable convolutions too
    "pad_to_aspect_ratio": False, "antialias": False, "fill_mode": ANY, "fill_value": ANY,  # Keras 3's Resizing
    "query_shape": ANY, "key_shape": ANY, "value_shape": ANY, "use_gate": False,  # MultiHeadAttention
    "softmax_robust_masking": False,
}
# Keras 2 writes Conv's kernel settings on separable convs too, which never read them (their kernels
# are depthwise_* and pointwise_*).
_UNUSED = {f"SeparableConv{n}D": {"kernel_initializer", "kernel_regularizer", "kernel_constraint"} for n in (1, 2)}
# A wrapped recurrent layer's zero_output_for_mask is set by Bidirectional itself.
_WRAPPED_NEUTRAL = {**NEUTRAL, "zero_output_for_mask": ANY}

_FAMILIES = {"_initializer": INITIALIZERS, "_regularizer": REGULARIZERS, "_constraint": CONSTRAINTS}
KERAS2_HARD_SIGMOID = 0.2  # Keras 2: clip(0.2 x + 0.5); Keras 3 (the IR default): relu6(x + 3) / 6


def _relu(params: dict) -> tuple[str, dict]:
    """Keras's ReLU(max_value, negative_slope, threshold), in the IR's simplest spelling."""
    top, slope, threshold = params.get("max_value"), params.get("negative_slope") or 0.0, params.get("threshold") or 0.0
    if threshold == 0.0 and top is None:
        return ("leaky_relu", {"alpha": slope}) if slope else ("relu", {})
    if threshold == 0.0 and slope == 0.0 and top == 6.0:
        return "relu6", {}
    return "relu", {"max_value": top, "negative_slope": slope, "threshold": threshold}


def activation(name: str, params: dict | None, version: str, ctx: Context, what: str) -> BaseModel:
    params = dict(params or {})
    for key in ("name", "trainable", "dtype"):
        params.pop(key, None)
    if name == "relu" and params:
        name, params = _relu(params)
    if name == "hard_sigmoid" and version.startswith("2"):
        params.setdefault("slope", KERAS2_HARD_SIGMOID)
    return function(ACTIVATIONS, name, params, ctx, what)


# Activation layers become Activation(<function>): class -> (function name, its parameters).
ACTIVATION_LAYERS: dict[str, Callable[[dict], tuple[str, dict]]] = {
    "ReLU": _relu,
    "ThresholdedReLU": lambda c: ("relu", {"threshold": c.get("theta", 1.0)}),  # Keras 2 only
    "LeakyReLU": lambda c: ("leaky_relu", {"alpha": c.get("negative_slope", 0.3)}),
    "ELU": lambda c: ("elu", {"alpha": c.get("alpha", 1.0)}),
    "Softmax": lambda c: ("softmax", {"axis": _one_axis(c.get("axis", -1))}),
}


def _one_axis(axis):
    if isinstance(axis, list):
        if len(axis) != 1:
            raise ValueError(f"axis {axis}: nnspec normalizes over one axis")
        return axis[0]
    return axis


def layer(class_name: str, config: dict, version: str, ctx: Context, wrapped: bool = False) -> Layer:
    """The IR layer for a normalized Keras layer config (name and trainable included)."""
    if class_name in ACTIVATION_LAYERS:
        try:
            fn_name, params = ACTIVATION_LAYERS[class_name](config)
        except ValueError as exc:
            raise ctx.error(f"{exc} has no nnspec equivalent") from None
        fields = {"activation": activation(fn_name, params, version, ctx, class_name)}
        return _build("Activation", {**fields, **_identity(config)}, ctx)
    try:
        ir_type = LAYERS.canonical(class_name)
    except ValueError:
        raise ctx.error(f"layer class '{class_name}' has no nnspec equivalent") from None
    member = LAYERS.members[ir_type]
    fields = _identity(config)
    neutral = _WRAPPED_NEUTRAL if wrapped else NEUTRAL
    for key, value in config.items():
        if key.endswith("_config") and key[: -len("_config")] in config:
            continue  # an activation's parameters, read with it
        if key in member.model_fields and key not in ("name", "trainable", "type", "inputs"):
            fields[key] = _field(member, key, value, config, version, ctx)
        elif key in _UNUSED.get(ir_type, ()):
            continue
        elif key in neutral:
            allowed = neutral[key]
            if allowed is not ANY and value != allowed and value is not None:
                raise ctx.error(f"{key}={value!r} is not supported (nnspec supports {key}={allowed!r})")
        elif value is not None:
            raise ctx.error(f"option {key}={value!r} of {class_name} is not supported")
    if fields.get("pool_size") is not None and _as_list(fields.get("strides")) == _as_list(fields["pool_size"]):
        fields["strides"] = None  # Keras writes the default (the pool size) out; the IR leaves it implied
    if ir_type == "Bidirectional" and fields.get("backward_layer") is not None:
        mirror = fields["layer"].model_copy(update={"go_backwards": not fields["layer"].go_backwards})
        if fields["backward_layer"] == mirror:  # what the IR assumes when none is given
            fields["backward_layer"] = None
    return _build(ir_type, fields, ctx)


def _as_list(v):
    return v if isinstance(v, list) or v is None else [v]


def _identity(config: dict) -> dict:
    return {"name": config.get("name"), "trainable": config.get("trainable", True)}


def _field(member: type[Layer], key: str, value, config: dict, version: str, ctx: Context):
    if key in ("activation", "recurrent_activation"):
        return activation(value, config.get(f"{key}_config"), version, ctx, key)
    for suffix, family in _FAMILIES.items():
        if key.endswith(suffix):
            return None if value is None else from_keras(family, value, ctx, key)
    if key in ("layer", "backward_layer"):  # wrappers: the inner layer, nameless in the IR
        if value is None:
            return None
        inner = layer(value["class_name"], value["config"], version, ctx, wrapped=True)
        return inner.model_copy(update={"name": None})
    if key == "axis" and isinstance(value, list) and "list" not in str(member.model_fields["axis"].annotation):
        try:
            return _one_axis(value)
        except ValueError as exc:
            raise ctx.error(str(exc)) from None
    return value


def _build(ir_type: str, fields: dict, ctx: Context) -> Layer:
    member = LAYERS.members[ir_type]
    try:
        return member(type=ir_type, **fields)
    except ValidationError as exc:
        loc, msg = messages(exc, member)[0]
        raise ctx.error(f"{'.'.join(map(str, loc)) + ': ' if loc else ''}{msg}") from None
