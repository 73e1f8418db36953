"""Keras 3 passes a layer's mask as an explicit `mask` argument, computed by op layers
(`not_equal(tokens, 0)` for Embedding(mask_zero=True)); nnspec carries masks implicitly, from the
layer that makes them to the layers that use them. An explicit mask is read when it is the mask
the input carries anyway (then its op layers are left out), and refused otherwise: reading it as
anything else would be silently wrong."""
from __future__ import annotations

from ...ir.model import Analysis
from .normalize import Context

# IR layer name -> (where it was read, the explicit mask tensor of each of its inputs or None)
Explicit = dict[str, tuple[Context, list[str | None]]]


def without_mask_ops(layers: list, explicit: Explicit, outputs: list[str]) -> list:
    """The layers less those whose outputs served only as explicit masks."""
    masks = {m for _, ms in explicit.values() for m in ms if m is not None}
    read = set(outputs) | {t for layer in layers for t in layer.inputs}
    return [layer for layer in layers if layer.name not in masks - read]


def check(analysis: Analysis, every_layer: list, explicit: Explicit) -> None:
    """Each explicit mask must be `tokens != 0` of the Embedding(mask_zero=True) whose mask the input carries."""
    made = {layer.name: layer for layer in every_layer}
    for name, (ctx, masks) in explicit.items():
        inputs = next(info.layer.inputs for info in analysis.layers if info.layer.name == name)
        for tensor, mask in zip(inputs, masks):
            if mask is None:
                continue
            carried = _carried_mask(analysis, made, tensor)
            given = made.get(mask)
            if given is None or given.type != "NotEqual" or carried != (given.inputs[0], given.value):
                raise ctx.error(f"its mask argument ('{mask}') is not the mask its input carries; nnspec reads "
                                "masks made by Embedding(mask_zero=True), and passed on unchanged")


def _carried_mask(analysis: Analysis, made: dict, tensor: str) -> tuple[str, float] | None:
    """(tokens, 0.0) when `tensor` carries the mask of an Embedding(mask_zero=True) reading `tokens`,
    passed on through layers with one masked input; None otherwise."""
    while analysis.tensors[tensor].masked:
        layer = made.get(tensor.split(":")[0])
        if layer is None:
            return None
        if layer.type == "Embedding":
            return layer.inputs[0], 0.0
        masked = [t for t in layer.inputs if analysis.tensors[t].masked]
        if layer.type == "Masking" or len(masked) != 1:
            return None
        tensor = masked[0]
    return None
