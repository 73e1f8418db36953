"""Weights from an HDF5 file onto a KerasModel skeleton, matched to layers by name and
checked against what each layer's config implies.

Two layouts exist, and neither depends on the Keras version that wrote the file:

* legacy (``model.save("x.h5")`` under ``model_weights/``, Keras 2 ``save_weights("x.h5")``
  at the root): a group per layer *name*, listed in attr ``layer_names``; each group's attr
  ``weight_names`` gives get_weights() order, and each name is the dataset path inside it;
* Keras 3 ``.weights.h5`` / a ``.keras`` archive's ``model.weights.h5`` (also what tf_keras
  writes for ``save_weights("x.weights.h5")``): ``layers/<group>/vars/0, 1, ...`` where
  <group> is the snake_case *class* name plus a per-model counter (dense, dense_1, ...) in
  the model's layer order, sub-objects below it (``cell``, ``forward_layer``, ``layer``),
  and nested models under ``layers/<group>/layers/``. Recent Keras 3 adds the layer name as
  attr ``name`` on each ``vars`` group; when present it must match.
"""
from __future__ import annotations

import h5py

from . import catalog, h5safe
from .model import KerasLayer, KerasModel
from .normalize import Context


# ---------------------------------------------------------------- checking one layer

def _shape_text(pattern) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in pattern) + ")"


def _short(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _relative(name: str, layer_name: str) -> str:
    # "sequential/mha/query/kernel:0" -> "query/kernel"
    parts = _short(name).split("/")
    head = parts[:-1]
    if layer_name in head:
        parts = parts[len(head) - head[::-1].index(layer_name):]
    return "/".join(parts)


def _expected(layer: KerasLayer, ctx: Context):
    try:
        return catalog.expected_weights(layer.class_name, layer.config)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ctx.error(f"{layer.class_name} config is missing or has a bad value for {exc}") from None


def _reorder_by_name(spec, arrays, names, layer, ctx, where):
    """Arrays in the spec's order, using the file's names; None when they do not match."""
    want = [n.split("/")[-1] for n, _ in spec]
    got = [_short(n).split("/")[-1] for n in names]
    if layer.class_name.startswith("DepthwiseConv"):  # Keras 2 spelling of the same weight
        got = ["kernel" if g == "depthwise_kernel" else g for g in got]
    if want == got:
        return arrays
    if sorted(want) != sorted(got):
        raise ctx.error(f"the file's weights are {got} ({where}), but a {layer.class_name} "
                        f"with this config has {want}")
    used: set[int] = set()
    out = []
    for w in want:
        i = next(i for i, g in enumerate(got) if g == w and i not in used)
        used.add(i)
        out.append(arrays[i])
    return out


def settle(layer: KerasLayer, arrays: list, names: list[str] | None, ctx: Context, where: str) -> None:
    """Check a layer's weights against its config and store them on the layer."""
    ctx = ctx.at(layer.name)
    spec = _expected(layer, ctx)
    if spec is None:  # stock layer whose weight layout we do not spell out: keep file order
        layer.weights = list(arrays)
        layer.weight_names = ([_relative(n, layer.name) for n in names] if names
                              else [f"var{i}" for i in range(len(arrays))])
        return
    if len(arrays) != len(spec):
        raise ctx.error(f"the file has {len(arrays)} weights ({where}), but a {layer.class_name} "
                        f"with this config has {len(spec)}: {[n for n, _ in spec]}")
    if names:
        arrays = _reorder_by_name(spec, arrays, names, layer, ctx, where)
    for (name, pattern), array in zip(spec, arrays):
        if pattern is None:
            continue
        if array.ndim != len(pattern) or any(p is not None and p != d for p, d in zip(pattern, array.shape)):
            raise ctx.error(f"weight '{name}' has shape {tuple(array.shape)} in the file ({where}), "
                            f"but the config implies {_shape_text(pattern)}")
    layer.weights = list(arrays)
    layer.weight_names = [n for n, _ in spec]


def _needs_weights(layer: KerasLayer, ctx: Context) -> bool:
    if layer.class_name in catalog.MODEL_CLASSES:
        return any(_needs_weights(sub, ctx) for sub in layer.config["model"].layers)
    spec = _expected(layer, ctx.at(layer.name))
    return spec is None or len(spec) > 0


# ---------------------------------------------------------------- legacy layout

def from_legacy(model: KerasModel, group: h5py.Group, ctx: Context) -> None:
    src = ctx.source
    names = h5safe.attr_names(group, "layer_names", src)
    if names is None:
        raise ctx.error("no 'layer_names' attribute: not a Keras weights group", group.name)
    available, used = set(names), set()
    for layer in model.layers:
        if layer.name not in available:
            if _needs_weights(layer, ctx):
                raise ctx.error(f"no weights for this layer in the file (no group '{layer.name}' "
                                f"under {group.name})", f"layer '{layer.name}'")
            settle_empty(layer, ctx)
            continue
        used.add(layer.name)
        sub = group.get(layer.name)
        if not isinstance(sub, h5py.Group):
            raise ctx.error("listed in layer_names but missing", f"{group.name}/{layer.name}")
        wnames = h5safe.attr_names(sub, "weight_names", src) or []
        pairs = [(w, h5safe.stored(sub, w, src)) for w in wnames]
        if layer.class_name in catalog.MODEL_CLASSES:
            _distribute(layer.config["model"], [(_short(w), a) for w, a in pairs], ctx, sub.name)
        else:
            settle(layer, [a for _, a in pairs], wnames, ctx, sub.name)
    for name in names:
        sub = group.get(name)
        if name not in used and isinstance(sub, h5py.Group) and h5safe.attr_names(sub, "weight_names", src):
            raise ctx.error(f"the file has weights for layer '{name}', which the model does not have "
                            "(weights of a different model?)", sub.name)


def settle_empty(layer: KerasLayer, ctx: Context) -> None:
    if layer.class_name in catalog.MODEL_CLASSES:
        for sub in layer.config["model"].layers:
            settle_empty(sub, ctx)
    else:
        settle(layer, [], None, ctx, "no weights")


def _distribute(model: KerasModel, pairs, ctx: Context, where: str) -> None:
    """A nested model's weights arrive as one list named like "inner/dense/kernel"; each goes
    to the sublayer named in its path (file order is kept within a sublayer)."""
    by_name = {layer.name: [] for layer in model.layers}
    for path, array in pairs:
        parts = path.split("/")
        hit = next((i for i, p in enumerate(parts[:-1]) if p in by_name), None)
        if hit is None:
            raise ctx.error(f"cannot tell which layer of nested model '{model.name}' owns weight '{path}'", where)
        by_name[parts[hit]].append(("/".join(parts[hit + 1:]), array))
    for layer in model.layers:
        got = by_name[layer.name]
        if layer.class_name in catalog.MODEL_CLASSES:
            _distribute(layer.config["model"], got, ctx, where)
        else:
            settle(layer, [a for _, a in got], [n for n, _ in got] or None, ctx, where)


# ---------------------------------------------------------------- Keras 3 layout

def from_keras3(model: KerasModel, f: h5py.File, ctx: Context) -> None:
    container = f.get("layers")
    if container is None:  # tf.keras 2.13 wrote this name
        container = f.get("_layer_checkpoint_dependencies")
    if not isinstance(container, h5py.Group):
        raise ctx.error("no 'layers' group: not a Keras weights file")
    consumed: set[str] = set()
    _k3_model(model, container, ctx, consumed)
    leftover = []
    container.visititems(lambda n, o: leftover.append(o.name)
                         if isinstance(o, h5py.Dataset) and o.name not in consumed else None)
    if leftover:
        raise ctx.error("weights for something the model does not have (weights of a different model?)",
                        sorted(leftover)[0])


def _k3_model(model: KerasModel, container: h5py.Group, ctx: Context, consumed: set) -> None:
    counts: dict[str, int] = {}
    for layer in model.layers:
        if model.sequential and layer.class_name == "InputLayer":
            continue  # Keras' Sequential.layers leaves it out
        key = catalog.snake_case(layer.class_name)
        n = counts.get(key, 0)
        counts[key] = n + 1
        path = key if n == 0 else f"{key}_{n}"
        group = container.get(path)
        if not isinstance(group, h5py.Group):
            if _needs_weights(layer, ctx):
                raise ctx.error(f"no weights for this layer in the file (expected group {container.name}/{path})",
                                f"layer '{layer.name}'")
            settle_empty(layer, ctx)
            continue
        own = group.get("vars")
        stored = h5safe.attr_text(own, "name", ctx.source) if isinstance(own, h5py.Group) else None
        if stored is not None and stored != layer.name:
            raise ctx.error(f"the file's group {group.name} holds layer '{stored}', but the model's "
                            f"{path} is '{layer.name}' (weights of a different model?)", f"layer '{layer.name}'")
        if layer.class_name in catalog.MODEL_CLASSES:
            inner = group.get("layers")
            if isinstance(inner, h5py.Group):
                _k3_model(layer.config["model"], inner, ctx, consumed)
            elif _needs_weights(layer, ctx):
                raise ctx.error(f"no weights for this nested model (expected {group.name}/layers)",
                                f"layer '{layer.name}'")
            else:
                settle_empty(layer, ctx)
            continue
        arrays = _collect(layer.class_name, layer.config, group, ctx.at(layer.name), consumed)
        settle(layer, arrays, None, ctx, group.name)


def _own_vars(group: h5py.Group, ctx: Context, consumed: set) -> list:
    own = group.get("vars")
    if not isinstance(own, h5py.Group):
        return []
    keys = list(own.keys())
    if not all(k.isdigit() for k in keys):
        raise ctx.error("variables not numbered 0, 1, ...", own.name)
    out = []
    for k in sorted(keys, key=int):
        out.append(h5safe.stored(own, k, ctx.source))
        consumed.add(f"{own.name}/{k}")
    return out


def _holds_data(group: h5py.Group) -> bool:
    found = []
    group.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
    return bool(found)


def _child(cls: str, config: dict, child: str) -> tuple[str, dict]:
    inner = config.get({"forward_layer": "layer"}.get(child, child))
    if isinstance(inner, dict) and "class_name" in inner:
        return inner["class_name"], inner.get("config") or {}
    return "", {}


def _collect(cls: str, config: dict, group: h5py.Group, ctx: Context, consumed: set) -> list:
    """Own variables first, then sub-objects in get_weights() order."""
    arrays = _own_vars(group, ctx, consumed)
    order = catalog.CHILD_ORDER.get(cls, [])
    for child in order:
        sub = group.get(child)
        if isinstance(sub, h5py.Group):
            sub_cls, sub_cfg = _child(cls, config, child)
            arrays += _collect(sub_cls, sub_cfg, sub, ctx, consumed)
    for name in group:
        sub = group[name]
        if name != "vars" and name not in order and isinstance(sub, h5py.Group) and _holds_data(sub):
            raise ctx.error(f"weights under {sub.name} that a {cls or 'layer'} is not known to have; "
                            "cannot tell their order")
    return arrays
