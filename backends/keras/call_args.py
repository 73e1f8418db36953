"""Arguments of a Keras layer call, read for the layer kinds that take them.

Keras writes a call's keyword arguments in the inbound node, not in the layer's config:
MultiHeadAttention's `value`, `key` and `attention_mask` tensors, and flags such as
`use_causal_mask` and `return_attention_scores`. Keras 2 puts them in a dict as the fourth item of
an inbound tensor (tensors as [layer, node, index]); Keras 3 in the node's "kwargs" (tensors as
__keras_tensor__ objects). The flags become the IR fields of the same names (`call_arguments`), the
tensors the layer's inputs in the IR's order; any other tensor argument (an explicit `mask`) is
refused by name.
"""
from __future__ import annotations

from ...ir.layers import LAYERS
from . import topology
from .layer_export import ExportError
from .model import KerasLayer, TensorRef
from .normalize import Context

# Keras argument names of a kind's inputs, in the IR's input order (positional arguments first).
NAMED_INPUTS = {"MultiHeadAttention": ("query", "value", "key", "attention_mask")}


def takes_call_arguments(class_name: str) -> bool:
    member = LAYERS.members.get(class_name)
    return bool(getattr(member, "call_arguments", ()))


def read(layer: KerasLayer, nodes: list, ctx: Context) -> None:
    """Set `layer`'s inputs and call flags from its raw inbound nodes (one call: a shared attention
    layer would need its flags per call, which the IR does not have)."""
    if len(nodes) != 1:
        raise ctx.error(f"{layer.class_name} called {len(nodes)} times; nnspec reads attention layers called once")
    tensors, named, flags = _split(nodes[0], ctx)
    allowed = LAYERS.members[layer.class_name].call_arguments
    for key, value in flags.items():
        if key in allowed:
            layer.config[key] = value
    order = NAMED_INPUTS.get(layer.class_name)
    extra = sorted(set(named) - set(order or ()))
    if extra:
        raise ctx.error(f"call argument '{extra[0]}' of {layer.class_name} is not supported "
                        "(nnspec takes masks from the inputs' Keras masks)")
    if order:
        given = dict(zip(order, tensors))
        given.update(named)
        if "attention_mask" in given and "key" not in given:
            given["key"] = given["value"]  # Keras's default; the IR gives the mask as the fourth input
        tensors = [given[name] for name in order if name in given]
    layer.inbound = [tensors]


def _split(node, ctx: Context) -> tuple[list[TensorRef], dict[str, TensorRef], dict]:
    """(positional tensors, named tensors, other keyword arguments) of one inbound node."""
    if isinstance(node, dict):  # Keras 3
        args, kwargs = node.get("args", []), dict(node.get("kwargs") or {})
        positional = _flatten(args, ctx)
    elif isinstance(node, list):  # Keras 2
        positional, kwargs = [], {}
        for item in node:
            if not (isinstance(item, list) and len(item) >= 3):
                raise ctx.error(f"unreadable inbound node {node!r}")
            positional.append(topology._triple(item, ctx))
            if len(item) > 3 and isinstance(item[3], dict):
                kwargs.update(item[3])
    else:
        raise ctx.error(f"unreadable inbound node {node!r}")
    named, flags = {}, {}
    for key, value in kwargs.items():
        refs = _flatten(value, ctx)
        if refs:
            if len(refs) != 1:
                raise ctx.error(f"call argument '{key}' holds {len(refs)} tensors; nnspec reads one")
            named[key] = refs[0]
        elif value is not None:
            flags[key] = value
    return positional, named, flags


def _flatten(value, ctx: Context) -> list[TensorRef]:
    """The tensors in a Keras 3 argument structure, or a Keras 2 [layer, node, index]."""
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str):
        return [topology._triple(value, ctx)]
    refs: list[TensorRef] = []
    topology._keras_tensors(value, refs, ctx)
    return refs


def _written(layer) -> tuple[dict, tuple[str, ...] | None]:
    """The call's flags that differ from their default, and the Keras names of its inputs (None:
    Keras takes them as one list)."""
    defaults = type(layer).model_fields
    flags = {k: getattr(layer, k) for k in layer.call_arguments if getattr(layer, k) != defaults[k].default}
    return flags, NAMED_INPUTS.get(layer.type)


def keras2_node(layer, refs: list[list]) -> list:
    """A Keras 2 inbound node: [layer, node, index, kwargs] per positional tensor."""
    flags, names = _written(layer)
    if names:  # the query positional, the rest by name
        return [[*refs[0], {**dict(zip(names[1:], refs[1:])), **flags}]]
    return [[*ref, dict(flags)] for ref in refs]


def keras3_node(layer, tensors: list[dict]) -> dict:
    """A Keras 3 inbound node: {"args": [...], "kwargs": {...}}."""
    flags, names = _written(layer)
    if names:  # query and value positional, the rest by name
        return {"args": tensors[:2], "kwargs": {**dict(zip(names[2:], tensors[2:])), **flags}}
    return {"args": [tensors], "kwargs": flags}


def implied_config(layer, in_types: list, major: int) -> dict:
    """Config keys a call implies: tf.keras 2 rebuilds a MultiHeadAttention from its call's shapes.
    A layer whose masks may leave a query no key is refused for the Keras version that would
    compute that row otherwise (see MultiHeadAttention.empty_rows)."""
    if layer.type != "MultiHeadAttention":
        return {}
    if layer.may_leave_queries_without_keys(in_types) and layer.empty_rows != layer.keras_empty_rows(major):
        raise ExportError(f"layer '{layer.name}'", f"Keras {major} would compute the outputs of queries masked from "
                          f"every key otherwise (this model gives them {layer.empty_rows} attention)")
    if major == 3:
        return {}
    query, value, key = in_types[0], in_types[1], in_types[2] if len(in_types) > 2 else in_types[1]
    return {f"{name}_shape": [None, *t.shape] for name, t in (("query", query), ("key", key), ("value", value))}
