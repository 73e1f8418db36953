"""An IR model -> .nn text that reads as if a person wrote it, formatted by `nnspec fmt`.

A layer is written as a statement reading the tensor before it (`dense(10)`) where that is all
its output feeds, and as a named tensor (`h = dense(x, 10)`) where the graph branches, so a
chain reads as a sequential stack and a graph as named tensors. Arguments equal to their
defaults are left out; required ones come first, without keywords. A layer's name is written
(`name="dense_9"`) only where nnspec would not give it that name by itself.
"""
from __future__ import annotations

import copy
import json
import re

import numpy as np
from pydantic import BaseModel

from .formatter import format_text
from .ir.layers import ActivationLayer, Layer, Lambda, _Spatial
from .ir.model import Analysis, Model, Namer, analyze, is_chain
from .ir.training import TrainConfig

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = {"let", "block", "model", "input", "output", "repeat", "train", "true", "True", "false", "False",
             "none", "None", "null"}
_TUPLES = {"kernel_size", "strides", "pool_size", "dilation_rate", "target_shape", "dims", "noise_shape"}


def write_nn(model: Model, comments: list[str] = ()) -> str:
    """The model as formatted .nn text; `comments` go on top, one `#` line each."""
    analysis, problems = analyze(model)
    if problems:
        raise ValueError(f"cannot write an invalid model: {problems[0]}")
    lines = [f"# {c}" for c in comments] + [f"model {_identifier(model.name, 'model')} {{"]
    for i in model.inputs:
        dims = ", ".join("?" if d is None else str(d) for d in i.shape)
        lines.append(f"input {_identifier(i.name, 'input')}: {i.dtype}[{dims}]")
    lines += _Statements(analysis).lines()
    lines.append("}")
    if model.train is not None:
        lines += ["", *_train(model.train)]
    return format_text("\n".join(lines) + "\n")


def _identifier(name: str, fallback: str) -> str:
    if _IDENTIFIER.match(name) and name not in _KEYWORDS:
        return name
    cleaned = re.sub(r"\W", "_", name).lstrip("0123456789") or fallback
    return cleaned if cleaned not in _KEYWORDS else f"{cleaned}_"


class _Statements:
    """The model's layers as statements, in an order where every tensor is named before use."""

    def __init__(self, analysis: Analysis):
        self.analysis, self.model = analysis, analysis.model
        self.consumers: dict[str, list[int]] = {}
        for i, info in enumerate(analysis.layers):
            for t in info.layer.inputs:
                self.consumers.setdefault(t, []).append(i)
        self.ids = {i.name: _identifier(i.name, "input") for i in self.model.inputs}
        self.namer = Namer(set(self.ids.values()))
        self.graph = not is_chain(analysis)

    def lines(self) -> list[str]:
        out, layers = [], self.analysis.layers
        current = self.model.inputs[0].name if len(self.model.inputs) == 1 else None
        for i, info in enumerate(layers):
            layer = info.layer
            tensors = [layer.name if k == 0 else f"{layer.name}:{k}" for k in range(len(info.outputs))]
            following = layers[i + 1].layer if i + 1 < len(layers) else None
            named = [t for t in tensors if self._named(t, i, following)]
            # a tensor read by this statement alone, made by the one before, is read implicitly
            implicit = layer.inputs == [current] and self.consumers.get(current) == [i]
            inputs = [] if implicit else [self.ids[t] for t in layer.inputs]
            if not named and self.graph and not self._automatic(layer, claim=False):
                named = tensors[:1]  # `cat = concatenate(...)` rather than `concatenate(..., name="cat")`
            if named:  # `h = dense(x, 10)`, or all outputs unpacked where a state is read
                bound = tensors if named != tensors[:1] else tensors[:1]
                lhs = [self._bind(t, layer.name if k == 0 else None) for k, t in enumerate(bound)]
                self.namer.claim(layer.name)
                call = layer_call(layer, inputs, None if lhs[0] == layer.name else layer.name)
                out.append(f"{', '.join(lhs)} = {call}")
            else:  # `dense(10)`, its output read only by the statement after it
                out.append(layer_call(layer, inputs, None if self._automatic(layer) else layer.name))
            current = tensors[0]
        if self.model.outputs != [current]:
            out.append(f"output {', '.join(self.ids[t] for t in self.model.outputs)}")
        return out

    def _named(self, tensor: str, index: int, following: Layer | None) -> bool:
        """A tensor needs a name unless only the next statement reads it (implicitly), or it is the
        model's one output made by the last statement."""
        if self.model.outputs == [tensor]:
            return following is not None
        users = self.consumers.get(tensor, [])
        implicit = following is not None and users == [index + 1] and following.inputs == [tensor]
        return tensor in self.model.outputs or (bool(users) and not implicit)

    def _automatic(self, layer: Layer, claim: bool = True) -> bool:
        """Whether nnspec would give the layer its name by itself, given the names so far; with
        `claim`, the name is taken either way."""
        trial = copy.deepcopy(self.namer)
        automatic = trial.new(layer.type) == layer.name
        if claim:
            self.namer = trial if automatic else self.namer
            self.namer.claim(layer.name)
        return automatic

    def _bind(self, tensor: str, preferred: str | None) -> str:
        """The identifier a statement binds to a tensor: the layer's name where it is one."""
        base = _identifier(preferred or tensor.replace(":", "_state"), "t")
        ident, k = base, 1
        while ident in self.ids.values():
            ident, k = f"{base}_{k}", k + 1
        self.ids[tensor] = ident
        return ident


# ---- calls and values -----------------------------------------------------------------------


def layer_call(layer: Layer, tensors: list[str], name: str | None = None) -> str:
    """`dense(x, 10, activation=relu, name="d")`; an Activation layer as its function (`relu()`)."""
    extra = {} if name is None else {"name": json.dumps(name)}
    if not layer.trainable:
        extra["trainable"] = "false"
    if isinstance(layer, ActivationLayer) and layer.trainable:  # `relu(trainable=false)` is not a layer
        args, kwargs = _fn_args(layer.activation)
        return _call(layer.activation.name, tensors + args, {**kwargs, **extra})
    if isinstance(layer, Lambda):
        return _call("lambda", tensors + [layer.expression], extra)
    args, kwargs = _layer_args(layer)
    return _call(layer.aliases[0], tensors + args, {**kwargs, **extra})


def _call(name: str, args: list[str], kwargs: dict[str, str]) -> str:
    return f"{name}({', '.join(args + [f'{k}={v}' for k, v in kwargs.items()])})"


def _layer_args(layer: Layer) -> tuple[list[str], dict[str, str]]:
    """Leading required fields positionally; other non-default fields as keywords (rendered)."""
    fields = {k: f for k, f in type(layer).model_fields.items() if k not in ("type", "name", "inputs", "trainable")}
    required = {k: getattr(layer, k) for k, f in fields.items() if f.is_required()}
    baseline = type(layer)(**required)  # the defaults, normalized as the layer's own values are
    positional = []
    for key in layer.positional:
        if key not in required:
            break
        positional.append(key)
    args = [_field_value(layer, k, getattr(layer, k)) for k in positional]
    ordered = [*layer.positional, *fields]  # keywords in the order a call would give them
    kwargs = {k: _field_value(layer, k, getattr(layer, k)) for k in dict.fromkeys(ordered)
              if k not in positional and (k in required or getattr(layer, k) != getattr(baseline, k))}
    return args, kwargs


def _field_value(layer: Layer, key: str, v) -> str:
    if isinstance(layer, _Spatial) and isinstance(v, list) and all(isinstance(x, int) for x in v) and len(set(v)) == 1:
        return value(v[0])  # conv2d(8, 3): one size for every dimension
    if key in _TUPLES and isinstance(v, list):
        return "(" + ", ".join(value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return value(v)


def _fn_args(fn: BaseModel) -> tuple[list[str], dict[str, str]]:
    """An IR function's non-default parameters: leading positional numbers without keywords."""
    params = {k: getattr(fn, k) for k, f in type(fn).model_fields.items()
              if k != "name" and (f.is_required() or getattr(fn, k) != f.default)}
    args = []
    for key in getattr(fn, "positional", ()):
        if key not in params or key == "axis" or isinstance(params[key], (bool, str)):
            break
        args.append(value(params.pop(key)))
    return args, {k: value(v) for k, v in params.items()}


def value(v) -> str:
    """A value in the spec language: numbers, true/false/none, names, strings, lists, calls."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _float(float(v))
    if isinstance(v, Layer):
        args, kwargs = _layer_args(v)
        return _call(v.aliases[0], args, kwargs)
    if isinstance(v, BaseModel):
        args, kwargs = _fn_args(v)
        return v.name if not args and not kwargs else _call(v.name, args, kwargs)
    if isinstance(v, str):
        return v if _IDENTIFIER.match(v) and v not in _KEYWORDS else json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict) and sorted(v) == list(range(len(v))):
        return value([v[k] for k in range(len(v))])  # class_weight: one weight per class
    raise TypeError(f"no spec syntax for {v!r}")


def _float(v: float) -> str:
    """The shortest text for v; a float32 value (Keras stores hyperparameters so) as float32 prints it."""
    text = str(np.float32(v))
    return text if np.isfinite(v) and float(np.float32(v)) == v and float(np.float32(text)) == v else repr(v)


# ---- training ------------------------------------------------------------------------------


def _train(train: TrainConfig) -> list[str]:
    """Settings that differ from Keras's defaults; the optimizer always, it is the one people look for."""
    defaults = TrainConfig()
    return ["train {"] + [f"  {key} {value(getattr(train, key))}" for key in TrainConfig.model_fields
                          if key == "optimizer" or getattr(train, key) != getattr(defaults, key)] + ["}"]
