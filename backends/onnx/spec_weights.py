"""The weights of an nnspec-written ONNX file, read through the spec it carries.

Lowering mostly moves weights around (transposes, gate reordering, concatenation with constants),
so compiling the spec with a distinct integer marker in every weight element shows, for each
constant a node reads, which weight element lands where. Two compiles with opposite markers tell
weight elements from the lowering's own constants (only a weight element flips sign). The
weights read back this way are checked by compiling them again: the constants must come out
exactly as the file holds them, else None (a lowering that computes with weights, such as a
folded normalization, is left to the lifter).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ...ir.model import Model
from ...ir.weights import Weights
from .compile import analyzed, compile_onnx
from .emit import DEFAULT_OPSET

EXACT_MARKERS = 2 ** 24  # float32 holds every integer up to here


def weights_from_spec(model: Model, proto: onnx.ModelProto) -> Weights | None:
    """`model`'s weights as `proto` (compiled from it) holds them, or None where they cannot be read back."""
    analysis = analyzed(model)
    shapes = {info.layer.name: [w.shape for w in info.layer.weights(info.inputs)] for info in analysis.layers}
    shapes = {name: s for name, s in shapes.items() if s}
    total = sum(int(np.prod(shape)) for s in shapes.values() for shape in s)
    if total >= EXACT_MARKERS:
        return None
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    with np.errstate(all="ignore"):  # markers are no real weights: constant folding may overflow or sqrt them
        positive, negative = (_read_constants(compile_onnx(model, _numbered(shapes, sign), opset))
                              for sign in (1, -1))
    held = _read_constants(proto)
    if not _same_structure(positive, held):
        return None
    flat = np.full(total, np.nan, np.float32)
    for (_, plus), (_, minus), (_, value) in zip(positive, negative, held):
        if plus is None or value is None or plus.shape != value.shape:
            continue
        is_weight = (plus == -minus) & (plus >= 1) & (plus == np.round(plus))
        flat[plus[is_weight].astype(np.int64) - 1] = value[is_weight]
    if np.isnan(flat).any():  # a weight the graph does not hold as it is
        return None
    weights = _unflatten(flat, shapes)
    again = _read_constants(compile_onnx(model, weights, opset))
    return weights if _same_structure(again, held) and all(
        (a is None) == (b is None) and (a is None or np.array_equal(a, b)) for (_, a), (_, b) in zip(again, held)) \
        else None


def _same_structure(a: list, b: list) -> bool:
    return [where for where, _ in a] == [where for where, _ in b]


def _numbered(shapes: dict[str, list[tuple]], sign: int) -> Weights:
    """Every weight element numbered 1, 2, ... across the model (times `sign`)."""
    total = sum(int(np.prod(shape)) for s in shapes.values() for shape in s)
    return _unflatten(sign * np.arange(1, total + 1, dtype=np.float32), shapes)


def _unflatten(flat: np.ndarray, shapes: dict[str, list[tuple]]) -> Weights:
    out, start = {}, 0
    for name, layer_shapes in shapes.items():
        out[name] = []
        for shape in layer_shapes:
            size = int(np.prod(shape))
            out[name].append(flat[start:start + size].reshape(shape))
            start += size
    return out


def _read_constants(proto: onnx.ModelProto) -> list[tuple[tuple[str, int], np.ndarray | None]]:
    """((op, input slot), the float constant it reads or None), node by node: the graph's structure
    lines up between compiles where initializer names (shared small constants) need not."""
    graph = proto.graph
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            constants[node.output[0]] = node.attribute[0].t
    read = []
    for node in graph.node:
        for slot, name in enumerate(node.input):
            tensor = constants.get(name)
            array = numpy_helper.to_array(tensor) if tensor is not None else None
            read.append(((node.op_type, slot), array if array is not None and array.dtype.kind == "f" else None))
    return read
