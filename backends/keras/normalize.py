"""Layer configs in one form, whatever Keras version wrote them.

The conventions (Keras 3 spellings win where the versions differ):

* every serialized Keras object (initializer, regularizer, constraint, wrapped layer,
  optimizer, loss, ...) is ``{"class_name": <Keras class name>, "config": {...}}``; the
  Keras 3 wrapper keys ``module``, ``registered_name``, ``shared_object_id`` and
  ``build_config`` are dropped; Keras 3 value markers (``__numpy__``, ``__tensor__``,
  ``__bytes__``) become their plain value;
* ``*_initializer`` / ``*_regularizer`` / ``*_constraint`` given as a string
  (``"glorot_uniform"``) become ``{"class_name": "GlorotUniform", "config": {}}``;
* ``dtype`` is a plain string (a DTypePolicy / mixed-precision Policy becomes its name);
* ``activation`` / ``recurrent_activation`` are stock activation names (``"relu"``; None ->
  ``"linear"``; ``swish`` -> ``"silu"``); an activation given as a layer object (LeakyReLU,
  ReLU, ELU, Softmax) becomes its function name and its parameters go to
  ``activation_config`` / ``recurrent_activation_config`` (LeakyReLU's Keras 2 ``alpha``
  is renamed ``negative_slope``); those ``*_config`` keys exist only when there are
  parameters;
* InputLayer has ``batch_shape`` (Keras 2's ``batch_input_shape`` renamed); other layers
  never carry ``batch_input_shape``;
* the LeakyReLU layer's ``alpha`` is ``negative_slope``;
* BatchNormalization / LayerNormalization ``axis`` is a list of ints, negative (counted
  from the end) whenever the file tells the input rank (Keras 2 writes ``[1]`` where
  Keras 3 writes ``-1``);
* wrappers keep their inner layers normalized the same way: Bidirectional has ``layer``
  and always ``backward_layer`` (synthesized from ``layer`` as Keras does when absent),
  TimeDistributed has ``layer``, RNN has ``cell``.
"""
from __future__ import annotations

import copy

from . import catalog
from .errors import KerasFormatError

_WRAPPER_KEYS = {"module", "registered_name", "shared_object_id", "build_config",
                 "compile_config", "spec_name"}
_VALUE_MARKERS = {"__numpy__", "__tensor__", "__bytes__"}

STOCK_ACTIVATIONS = {
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "softplus",
    "softsign", "tanh", "elu", "selu", "exponential", "silu", "gelu", "hard_silu", "leaky_relu",
    "mish", "celu", "glu", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink",
    "sparse_plus", "squareplus", "sparsemax", "threshold", "log_sigmoid", "sparse_sigmoid",
}
_ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
_ACTIVATION_LAYERS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax"}
_LAYER_BOOKKEEPING = {"name", "trainable", "dtype"}


class Context:
    """Where we are, for error messages: the file and the layer being read."""

    def __init__(self, source: str, layer: str | None = None, where: str | None = None):
        self.source, self.layer, self.where = source, layer, where or (f"layer '{layer}'" if layer else None)

    def at(self, layer: str, where: str | None = None) -> "Context":
        """Errors in a layer: named `layer 'name'`, or as `where` says (`layer 'name' (Class)`)."""
        return Context(self.source, layer, where)

    def error(self, problem: str, where: str | None = None) -> KerasFormatError:
        place = where or self.where
        return KerasFormatError(self.source, place, problem)


def is_object(value) -> bool:
    """A serialized Keras object: {"class_name": ..., "config": ...} plus wrapper keys."""
    return (isinstance(value, dict) and isinstance(value.get("class_name"), str)
            and set(value) <= {"class_name", "config"} | _WRAPPER_KEYS)


def plain(value, ctx: Context):
    """Strip Keras 3 wrappers everywhere in a JSON value (see the module docstring)."""
    if isinstance(value, list):
        return [plain(v, ctx) for v in value]
    if not isinstance(value, dict):
        return value
    if is_object(value):
        cls, cfg = value["class_name"], value.get("config")
        if cls == "__lambda__":
            raise ctx.error("holds a marshalled Python lambda; refusing to unmarshal or run it")
        if cls in _VALUE_MARKERS and isinstance(cfg, dict):
            return plain(cfg.get("value"), ctx)
        return {"class_name": cls, "config": plain(cfg if cfg is not None else {}, ctx)}
    return {k: plain(v, ctx) for k, v in value.items() if k != "shared_object_id"}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _keras_object(value):
    """Initializer / regularizer / constraint -> {"class_name", "config"} or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"class_name": _camel(value), "config": {}}
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        cls = value["class_name"]
        return {"class_name": _camel(cls) if cls.islower() else cls, "config": value.get("config") or {}}
    return value


def _dtype(value):
    if isinstance(value, dict):  # DTypePolicy / Policy object
        cfg = value.get("config")
        value = cfg.get("name") if isinstance(cfg, dict) else value.get("name")
    return value if isinstance(value, str) or value is None else str(value)


def _activation(value, ctx: Context) -> tuple[str, dict | None]:
    if value is None or isinstance(value, str):
        name = _ACTIVATION_ALIASES.get(value, value)
        if name not in STOCK_ACTIVATIONS:
            raise ctx.error(f"unknown activation '{value}' (a custom Python function?); "
                            "only stock Keras activations can be read")
        return name, None
    if isinstance(value, dict):
        cls, cfg = value.get("class_name"), value.get("config")
        if cls == "__lambda__":
            raise ctx.error("activation is a marshalled Python lambda; refusing to unmarshal or run it")
        module = value.get("module")
        if cls == "function" and isinstance(cfg, str):  # Keras 3 serialized function
            if isinstance(module, str) and not module.startswith("keras"):
                raise ctx.error(f"custom activation function '{cfg}' from module '{module}'; "
                                "only stock Keras activations can be read")
            return _activation(cfg, ctx)
        if _is_custom(value):
            raise ctx.error(f"custom activation class '{cls}'; only stock Keras activations can be read")
        if cls == "Activation" and isinstance(cfg, dict):
            return _activation(cfg.get("activation"), ctx)
        if cls in _ACTIVATION_LAYERS and isinstance(cfg, dict):
            params = {k: v for k, v in cfg.items() if k not in _LAYER_BOOKKEEPING}
            if cls == "LeakyReLU" and "alpha" in params:
                params["negative_slope"] = params.pop("alpha")
            return _ACTIVATION_LAYERS[cls], (params or None)
        raise ctx.error(f"unsupported activation object '{cls}'")
    raise ctx.error(f"unreadable activation {value!r}")


def _is_custom(entry: dict) -> bool:
    # Stock objects come from a keras module and are registered under their own class
    # name (or not at all); custom ones say "Custom>Name" / "package>Name".
    module, registered = entry.get("module"), entry.get("registered_name")
    return ((isinstance(module, str) and not module.startswith(("keras", "tf_keras")))
            or registered not in (None, entry.get("class_name")))


def check_class(entry: dict, ctx: Context) -> str:
    """The canonical class name of a serialized layer, refusing anything not stock Keras."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ctx.error("layer entry without a class_name")
    raw = entry["class_name"]
    if raw == "Lambda":
        raise ctx.error("is a Lambda layer; its Python code is never unmarshalled or run. "
                        "Rewrite it with nnspec's safe `lambda(<expr>)` layer")
    cls = catalog.canonical_class(raw)
    registered = entry.get("registered_name")
    if cls not in catalog.STOCK_LAYERS or _is_custom(entry):
        how = f" (registered as '{registered}')" if registered not in (None, raw) else ""
        raise ctx.error(f"unknown or custom layer class '{raw}'{how}; only stock Keras layers can be read")
    return cls


def layer_config(cls: str, raw: dict, ctx: Context) -> dict:
    """Normalize one layer's inner config (see the module docstring)."""
    if not isinstance(raw, dict):
        raise ctx.error(f"config of a {cls} layer is not an object")
    raw = dict(raw)
    # Activations and inner layers are checked before plain() drops their module /
    # registered_name, which is what tells a custom class from a stock one.
    activations = {k: raw.pop(k) for k in ("activation", "recurrent_activation") if k in raw}
    inner = {k: raw.pop(k) for k in ("layer", "backward_layer", "cell") if isinstance(raw.get(k), dict)}
    cells = raw.pop("cells") if isinstance(raw.get("cells"), list) else None
    cfg = plain(raw, ctx)
    for key in list(cfg):
        if key == "dtype":
            cfg[key] = _dtype(cfg[key])
        elif key.endswith(("_initializer", "_regularizer", "_constraint")):
            cfg[key] = _keras_object(cfg[key])
    for key, value in activations.items():
        cfg[key], params = _activation(value, ctx)
        if params:
            cfg[f"{key}_config"] = plain(params, ctx)
    if cls == "InputLayer":
        if "batch_shape" not in cfg:
            if "batch_input_shape" in cfg:
                cfg["batch_shape"] = cfg["batch_input_shape"]
            elif cfg.get("input_shape") is not None or cfg.get("shape") is not None:
                cfg["batch_shape"] = [None] + list(cfg.get("input_shape") or cfg["shape"])
        for old in ("batch_input_shape", "input_shape", "shape"):
            cfg.pop(old, None)
    else:
        cfg.pop("batch_input_shape", None)
    if cls == "LeakyReLU" and "alpha" in cfg:
        cfg["negative_slope"] = cfg.pop("alpha")
    if cls in ("BatchNormalization", "LayerNormalization") and "axis" in cfg:
        # made negative where the input rank is known: see topology.negative_axes()
        cfg["axis"] = list(cfg["axis"]) if isinstance(cfg["axis"], (list, tuple)) else [cfg["axis"]]
    for key, value in inner.items():
        cfg[key] = inner_layer(value, ctx)
    if cells is not None:
        cfg["cells"] = [inner_layer(c, ctx) for c in cells]
    if cls == "Bidirectional" and cfg.get("backward_layer") is None and "layer" in cfg:
        cfg["backward_layer"] = _backward_copy(cfg["layer"])
    return cfg


def inner_layer(entry: dict, ctx: Context) -> dict:
    """A layer held inside another layer's config (wrappers, RNN cells)."""
    cls = check_class(entry, ctx)
    if cls in catalog.MODEL_CLASSES:
        raise ctx.error(f"a {cls} model wrapped inside a layer is not supported")
    return {"class_name": cls, "config": layer_config(cls, entry.get("config") or {}, ctx)}


def _backward_copy(forward: dict) -> dict:
    # What Keras' Bidirectional does when no backward_layer is given.
    back = copy.deepcopy(forward)
    cfg = back["config"]
    cfg["go_backwards"] = not cfg.get("go_backwards", False)
    cfg["name"] = "backward_" + str(cfg.get("name", "layer")).removeprefix("forward_")
    return back
