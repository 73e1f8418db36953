"""Model configs (Sequential or Functional, Keras 2 or 3) -> KerasModel skeletons (no weights).

Sequential and Functional end up looking alike: every model lists its InputLayer(s) first
(synthesized for old Keras 2 Sequential configs that have none, as Keras itself would,
named "<first layer>_input"), and every non-input layer has ``inbound`` links (synthesized
for Sequential: each layer consumes the previous one).

A model used as a layer stays nested: a KerasLayer whose class_name is "Functional" or
"Sequential", whose ``config`` is ``{"name", "trainable", "model": KerasModel}`` and whose
own ``weights`` are empty (the weights live on the nested model's layers).
"""
from __future__ import annotations

from . import call_args, catalog, op_layers
from .errors import KerasFormatError
from .model import KerasLayer, KerasModel, TensorRef
from .normalize import Context, check_class, layer_config
from .ranks import negative_axes


# A config is untrusted data: a value of the wrong type anywhere is a format error.
_MALFORMED = (AttributeError, TypeError, KeyError, ValueError, IndexError, RecursionError)


def parse_model(doc: dict, ctx: Context, keras_version: str) -> KerasModel:
    """doc: {"class_name": "Sequential"|"Functional"|"Model", "config": {...}}."""
    try:
        return _parse_model(doc, ctx, keras_version)
    except KerasFormatError:
        raise
    except _MALFORMED as exc:
        raise ctx.error(f"malformed model config ({type(exc).__name__}: {exc})") from None


def _parse_model(doc: dict, ctx: Context, keras_version: str) -> KerasModel:
    cls = catalog.canonical_class(doc.get("class_name", "")) if isinstance(doc, dict) else None
    if cls not in catalog.MODEL_CLASSES:
        raise ctx.error("not a Keras model config (expected class_name Sequential or Functional, "
                        f"found {doc.get('class_name') if isinstance(doc, dict) else type(doc).__name__!r})")
    check_class(doc, ctx)  # refuses custom (subclassed) model classes
    config = doc.get("config")
    model = (_sequential if cls == "Sequential" else _functional)(config, ctx, keras_version)
    negative_axes(model)
    return model


def _layer(entry: dict, ctx: Context, keras_version: str, name: str) -> KerasLayer:
    lctx = ctx.at(name)
    try:
        return _make_layer(entry, lctx, keras_version, name)
    except KerasFormatError:
        raise
    except _MALFORMED as exc:
        raise lctx.error(f"malformed layer config ({type(exc).__name__}: {exc})") from None


def _make_layer(entry: dict, lctx: Context, keras_version: str, name: str) -> KerasLayer:
    cls = check_class(entry, lctx)
    if cls in catalog.MODEL_CLASSES:
        nested = parse_model(entry, lctx, keras_version)
        raw = entry.get("config") or {}
        config = {"name": name, "trainable": raw.get("trainable", True) if isinstance(raw, dict) else True,
                  "model": nested}
        return KerasLayer(name=name, class_name=cls, config=config)
    config = layer_config(cls, entry.get("config") or {}, lctx)
    config["name"] = name
    return KerasLayer(name=name, class_name=cls, config=config)


def _layer_name(entry, ctx: Context) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if name is None and isinstance(entry, dict) and isinstance(entry.get("config"), dict):
        name = entry["config"].get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error("a layer without a name")
    return name


def _unique(layers: list[KerasLayer], ctx: Context) -> None:
    seen = set()
    for layer in layers:
        if layer.name in seen:
            raise ctx.error("two layers share this name", f"layer '{layer.name}'")
        seen.add(layer.name)


def _sequential(config, ctx: Context, keras_version: str) -> KerasModel:
    # Keras 2.0/2.1 stored a Sequential's config as the bare list of layers.
    if isinstance(config, list):
        config = {"name": "sequential", "layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ctx.error("Sequential config without a list of layers")
    entries = config["layers"]
    if not entries:
        raise ctx.error("Sequential model has no layers")
    layers = [_layer(e, ctx, keras_version, _layer_name(e, ctx)) for e in entries]
    if layers[0].class_name != "InputLayer":
        layers.insert(0, _synthesized_input(entries[0], layers[0], config, ctx))
    _unique(layers, ctx)
    for prev, layer in zip(layers, layers[1:]):
        if layer.class_name == "InputLayer":
            raise ctx.error("an InputLayer in the middle of a Sequential model", f"layer '{layer.name}'")
        layer.inbound = [[(prev.name, 0, 0)]]
    return KerasModel(name=str(config.get("name", "sequential")), layers=layers,
                      inputs=[(layers[0].name, 0, 0)], outputs=[(layers[-1].name, 0, 0)],
                      sequential=True, keras_version=keras_version)


def _synthesized_input(entry: dict, first: KerasLayer, config: dict, ctx: Context) -> KerasLayer:
    raw = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    shape = raw.get("batch_input_shape") or config.get("build_input_shape")
    if shape is None and isinstance(entry.get("build_config"), dict):
        shape = entry["build_config"].get("input_shape")
    if shape is None:
        raise ctx.error("Sequential model has no input shape (it was never built); "
                        "cannot tell what it consumes")
    dtype = first.config.get("dtype")  # what Keras 2's Sequential.add used
    name = f"{first.name}_input"
    return KerasLayer(name=name, class_name="InputLayer",
                      config={"name": name, "batch_shape": list(shape), "dtype": dtype or "float32",
                              "sparse": False, "ragged": False})


def _functional(config, ctx: Context, keras_version: str) -> KerasModel:
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ctx.error("Functional config without a list of layers")
    layers, skipped = [], set()
    for entry in config["layers"]:
        file_class = ""
        if op_layers.is_op_layer(entry):
            file_class = entry.get("class_name", "")
            entry = op_layers.rewrite(entry, ctx)
        name = _layer_name(entry, ctx)
        layer = _layer(entry, ctx, keras_version, name)
        layer.file_class = file_class
        layer.inbound = [_node(n, ctx.at(name)) for n in entry.get("inbound_nodes") or []]
        layer.masks = [_mask_refs(n, ctx.at(name)) for n in entry.get("inbound_nodes") or []]
        if call_args.takes_call_arguments(layer.class_name):
            call_args.read(layer, entry.get("inbound_nodes") or [], ctx.at(name))
        layers.append(layer)
        if keras_version.startswith("2") and _built_from_input(entry):
            skipped.add(name)
    _unique(layers, ctx)
    model = KerasModel(name=str(config.get("name", "model")), layers=layers,
                       inputs=_refs(config.get("input_layers"), ctx, "input_layers"),
                       outputs=_refs(config.get("output_layers"), ctx, "output_layers"),
                       sequential=False, keras_version=keras_version)
    if skipped:
        _skip_first_nodes(model, skipped)
    _check_links(model, ctx)
    return model


def _built_from_input(entry: dict) -> bool:
    """A nested model whose own layers start with an InputLayer: Keras 2 made a node of that
    construction (its call 0), left it out of the file, and still counts it in node indices."""
    config = entry.get("config")
    nested = config.get("layers") if isinstance(config, dict) else None
    return (catalog.canonical_class(entry.get("class_name", "")) in catalog.MODEL_CLASSES and isinstance(nested, list)
            and bool(nested) and isinstance(nested[0], dict) and nested[0].get("class_name") == "InputLayer")


def _skip_first_nodes(model: KerasModel, names: set[str]) -> None:
    """Keras 2 node indices of models built from an Input, counted without their construction."""
    def shift(ref: TensorRef) -> TensorRef:
        return (ref[0], ref[1] - 1, ref[2]) if ref[0] in names and ref[1] > 0 else ref
    for layer in model.layers:
        layer.inbound = [[shift(ref) for ref in node] for node in layer.inbound]
    model.outputs = [shift(ref) for ref in model.outputs]


def _node(node, ctx: Context) -> list[TensorRef]:
    """One call of a layer -> the tensors it consumed, in argument order."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        refs: list[TensorRef] = []
        _keras_tensors(node.get("args", []), refs, ctx)
        _keras_tensors({k: v for k, v in (node.get("kwargs") or {}).items() if k != "mask"}, refs, ctx)
        return refs
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        refs = [_triple(item, ctx) for item in node]
        for item in node:  # tf.keras may keep a call's initial_state tensors in its kwargs
            kwargs = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
            refs += _state_refs(kwargs.get("initial_state"), ctx)
        return refs
    raise ctx.error(f"unreadable inbound node {node!r}")


def _mask_refs(node, ctx: Context) -> list[TensorRef | None]:
    """Keras 3's `mask` argument of one call (a tensor, or a list with None for a merge layer's inputs)."""
    mask = (node.get("kwargs") or {}).get("mask") if isinstance(node, dict) else None
    if mask is None:
        return []
    refs: list[TensorRef | None] = []
    for item in mask if isinstance(mask, list) else [mask]:
        found: list[TensorRef] = []
        _keras_tensors(item, found, ctx)
        refs.append(found[0] if found else None)
    return refs


def _state_refs(value, ctx: Context) -> list[TensorRef]:
    """Keras 2's serialized initial_state: one [name, node, index] or a list of them."""
    if value is None:
        return []
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(f"unreadable initial_state {value!r}")
    return [_triple(v, ctx) for v in value]


def _keras_tensors(value, out: list, ctx: Context) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config")
            history = cfg.get("keras_history") if isinstance(cfg, dict) else None
            out.append(_triple(history, ctx))
            return
        for v in value.values():
            _keras_tensors(v, out, ctx)
    elif isinstance(value, list):
        for v in value:
            _keras_tensors(v, out, ctx)


def _triple(item, ctx: Context) -> TensorRef:
    if (isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str)
            and isinstance(item[1], int) and isinstance(item[2], int)):
        return (item[0], item[1], item[2])
    raise ctx.error(f"unreadable tensor reference {item!r}")


def _refs(value, ctx: Context, key: str) -> list[TensorRef]:
    # Keras 3 writes a single input/output as a bare triple, several as a list of triples
    # (or a dict for dict-valued inputs).
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        raise ctx.error(f"Functional config without {key}")
    if isinstance(value[0], str):
        value = [value]
    return [_triple(v, ctx) for v in value]


def _check_links(model: KerasModel, ctx: Context) -> None:
    calls = {layer.name: (1 if layer.class_name == "InputLayer" else len(layer.inbound))
             for layer in model.layers}
    for layer in model.layers:
        for node in layer.inbound + layer.masks:
            for ref in node:
                if ref is not None:
                    _check_ref(ref, calls, ctx, f"layer '{layer.name}'")
    for ref in model.inputs + model.outputs:
        _check_ref(ref, calls, ctx, f"model '{model.name}'")


def _check_ref(ref: TensorRef, calls: dict, ctx: Context, where: str) -> None:
    name, node, _ = ref
    if name not in calls:
        raise ctx.error(f"refers to unknown layer '{name}'", where)
    if not 0 <= node < max(calls[name], 1):
        raise ctx.error(f"refers to call {node} of layer '{name}', which has {calls[name]}", where)
