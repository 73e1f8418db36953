"""One handler per ONNX op, for lift.py: each sets the values of its node's outputs (a view of a
tensor, a constant, a probe) and records the layers it stands for. See lift_graph.py for views."""
from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ...ir import windows
from ...ir.functions import ACTIVATIONS
from .lift_graph import PROBE_BATCHES, Probe, Record, Tensor, View
from .recurrent import ONNX_GATE_ORDER

HANDLERS: dict[str, Callable] = {}
INT64_MAX = np.iinfo(np.int64).max
INT32_MAX = np.iinfo(np.int32).max


def handles(*ops: str):
    def register(fn):
        for op in ops:
            HANDLERS[op] = fn
        return fn
    return register


def _attrs(node: onnx.NodeProto) -> dict:
    """A node's attributes as Python values, strings decoded."""
    def plain(v):
        return v.decode() if isinstance(v, bytes) else v

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = [plain(x) for x in v] if isinstance(v, list) else plain(v)
    return out


def _same_layout(r: Record, src: View, shape=None) -> View:
    """The record's new output, laid out in ONNX as its input `src` is."""
    t = r.output(src.tensor.shape if shape is None else shape, src.tensor.dtype)
    return View(t, src.axes)


# ---- constants and shapes ------------------------------------------------------------------


def _fold(lf, node: onnx.NodeProto) -> bool:
    """Evaluate a node whose inputs are all constants or probes; False if one is a tensor."""
    ins = [lf.value(n) for n in node.input]
    if any(isinstance(v, View) for v in ins):
        return False
    evaluator = ReferenceEvaluator(node, opsets={"": lf.opset})
    runs = []
    for k in range(len(PROBE_BATCHES)):
        feeds = {n: (v.values[k] if isinstance(v, Probe) else v) for n, v in zip(node.input, ins) if n}
        runs.append(evaluator.run(None, feeds))
    for i, name in enumerate(node.output):
        results = [np.asarray(run[i]) for run in runs]
        same = all(r.shape == results[0].shape and np.array_equal(r, results[0]) for r in results)
        lf.values[name] = results[0] if same else Probe(tuple(results))
    return True


def _folding(fn):
    """A handler that folds constant inputs first."""
    def handler(lf, node):
        if not _fold(lf, node):
            fn(lf, node)
    return handler


@handles("Constant", "ConstantOfShape", "Range", "Equal", "Less", "Greater", "Not", "And", "Or", "Mod",
         "Floor", "Ceil", "Sqrt", "Neg", "Abs", "Reciprocal", "Pow", "Log", "Where", "ReduceProd", "ReduceSum",
         "ReduceMin", "Size", "NonZero", "ScatterND", "Cos", "Sin", "Erf", "Sign", "Trilu", "CumSum", "Expand")
def _constant_only(lf, node):
    if not _fold(lf, node):
        raise lf.fail(f"{node.op_type} of a tensor has no nnspec layer")


@handles("Shape")
def _shape(lf, node):
    v = lf.view(node.input[0])
    a = _attrs(node)
    dims = v.dims()
    if any(d is None for p, d in enumerate(dims) if v.axes[p] != 0):
        raise lf.fail("the shape of a tensor of unknown size")
    start, end = a.get("start", 0), a.get("end", len(dims))
    lf.values[node.output[0]] = Probe(tuple(
        np.array([b if (ax == 0) else d for ax, d in zip(v.axes, dims)], np.int64)[start:end] for b in PROBE_BATCHES))


@handles("Identity", "Dropout")
def _identity(lf, node):
    lf.values[node.output[0]] = lf.value(node.input[0])
    if len(node.output) > 1 and node.output[1]:
        raise lf.fail("the dropout mask has no nnspec equivalent")


@handles("Cast")
def _cast(lf, node):
    if _fold(lf, node):
        return
    v = lf.view(node.input[0])
    to = np.dtype(helper.tensor_dtype_to_np_dtype(_attrs(node)["to"]))
    if (to.kind == "f") != (np.dtype(v.tensor.dtype).kind == "f"):
        raise lf.fail(f"a cast from {v.tensor.dtype} to {to.name} has no nnspec layer")
    lf.values[node.output[0]] = v  # layers compute in float32 whatever float comes in


# ---- layout: views only ----------------------------------------------------------------------


def _axes_input(lf, node, rank: int, index: int = 1) -> list[int]:
    a = _attrs(node)
    axes = a.get("axes") if "axes" in a else (lf.const(node.input[index]).tolist()
                                               if len(node.input) > index and node.input[index] else None)
    return None if axes is None else [int(x) % rank for x in axes]


@handles("Transpose")
@_folding
def _transpose(lf, node):
    v = lf.view(node.input[0])
    perm = _attrs(node).get("perm", list(reversed(range(v.rank))))
    lf.values[node.output[0]] = v.permuted(perm)


@handles("Unsqueeze")
@_folding
def _unsqueeze(lf, node):
    v = lf.view(node.input[0])
    n = len(_axes_input(lf, node, 1))  # the count, then the positions in the output's rank
    lf.values[node.output[0]] = v.inserted(_axes_input(lf, node, v.rank + n))


@handles("Squeeze")
@_folding
def _squeeze(lf, node):
    v = lf.view(node.input[0])
    axes = _axes_input(lf, node, v.rank)
    if axes is None:
        axes = [p for p, d in enumerate(v.dims()) if d == 1]
    try:
        lf.values[node.output[0]] = v.removed(axes)
    except ValueError as exc:
        raise lf.fail(str(exc)) from None


@handles("Reshape")
@_folding
def _reshape(lf, node):
    """A reshape that only adds or drops size-1 dimensions is a view; else a Flatten/Reshape layer."""
    v = lf.view(node.input[0])
    target = lf.value(node.input[1])
    shapes = target.values if isinstance(target, Probe) else (target,) * len(PROBE_BATCHES)
    ins = [[b if a == 0 else d for a, d in zip(v.axes, v.dims())] for b in PROBE_BATCHES]
    outs = []
    for shape, dims in zip(shapes, ins):
        out = [dims[i] if (d == 0 and not _attrs(node).get("allowzero")) else int(d) for i, d in enumerate(shape)]
        if None in dims:
            raise lf.fail("reshaping a tensor of unknown size")
        if -1 in out:
            known = math.prod(d for d in out if d != -1)
            out[out.index(-1)] = math.prod(dims) // known
        outs.append(out)
    batch = [p for p in range(len(outs[0])) if outs[0][p] != outs[1][p]]
    if len(batch) != 1:
        raise lf.fail("a reshape that merges or splits the batch dimension has no nnspec layer")
    marked_in = [("b" if a == 0 else d) for a, d in zip(v.axes, ins[0]) if a == 0 or d != 1]
    marked_out = [("b" if p == batch[0] else d) for p, d in enumerate(outs[0]) if p == batch[0] or d != 1]
    if marked_in == marked_out:  # the same data, size-1 dimensions moved
        kept = iter([a for a, d in zip(v.axes, ins[0]) if a == 0 or d != 1])
        lost = iter(a for a, d in zip(v.axes, ins[0]) if a is not None and a != 0 and d == 1)
        axes = [next(kept) if (p == batch[0] or d != 1) else next(lost, None) for p, d in enumerate(outs[0])]
        lf.values[node.output[0]] = View(v.tensor, tuple(axes))
        return
    if batch[0] != 0:
        raise lf.fail("a reshape that moves the batch dimension has no nnspec layer")
    t = lf.materialize(v)
    shape = outs[0][1:]
    if len(shape) == 1 and t.rank > 2:
        r = lf.record("Flatten", {}, {}, [t])
    else:
        r = lf.record("Reshape", {"target_shape": shape}, {}, [t])
    lf.values[node.output[0]] = View.of(r.output(tuple(shape), t.dtype))


@handles("Flatten")
@_folding
def _flatten(lf, node):
    if _attrs(node).get("axis", 1) != 1:
        raise lf.fail("Flatten other than from axis 1 has no nnspec layer")
    t = lf.materialize(lf.view(node.input[0]))
    if None in t.shape:
        raise lf.fail("flattening a tensor of unknown size")
    r = lf.record("Flatten", {}, {}, [t])
    lf.values[node.output[0]] = View.of(r.output((math.prod(t.shape),), t.dtype))


@handles("Slice")
@_folding
def _slice(lf, node):
    """The last step of a recurrent layer's sequence is its last output (tf2onnx takes it so)."""
    v = lf.view(node.input[0])
    starts, ends = lf.const(node.input[1]).tolist(), lf.const(node.input[2]).tolist()
    axes = lf.const(node.input[3]).tolist() if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
    steps = lf.const(node.input[4]).tolist() if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    r = v.tensor.layer
    if len(axes) == 1 and steps == [1] and r is not None and r.states and v.tensor is r.outputs[0]:
        length = v.tensor.shape[0]  # the sequence (batch, time, units): its last step is the state h
        if v.axes[axes[0] % v.rank] == 1 and starts[0] in (-1, (length or 0) - 1) \
                and ends[0] >= (length or INT64_MAX) and not r.fields.get("go_backwards"):
            lf.values[node.output[0]] = View(r.states[0], tuple({0: 0, 2: 1}.get(a) for a in v.axes))
            return
    if steps != [1] * len(axes):
        raise lf.fail("slicing a tensor with steps has no nnspec layer")
    dims = v.dims()
    cuts = {}
    for p, start, end in zip(axes, starts, ends):
        p %= v.rank
        size = dims[p]
        to_end = end >= INT32_MAX or (size is not None and end >= size)  # tf2onnx ends at 2**31 - 1
        after = -end if end < 0 else 0 if to_end else size - end if size is not None else None
        if start < 0 or after is None:
            raise lf.fail("slicing from the end, or to a fixed index of an unknown size, has no nnspec layer")
        cuts[p] = (start, after)
    lf.values[node.output[0]] = _margins(lf, node, v, "Cropping", cuts, sign=-1)


def _margins(lf, node, v: View, kind: str, pairs: dict[int, tuple[int, int]], sign: int) -> View:
    """Cells added or cut at the ends of spatial axes (ONNX position -> (before, after)):
    ZeroPadding or Cropping over the tensor's spatial axes."""
    t = v.tensor
    r = t.rank - 2
    spatial = {p: v.axes[p] for p, pair in pairs.items() if any(pair)}
    if not 1 <= r <= 3 or any(a is None or not 1 <= a <= r for a in spatial.values()):
        raise lf.fail(f"{'padding' if sign > 0 else 'slicing'} other than over the spatial axes of a "
                      "(batch, spatial..., channels) tensor has no nnspec layer")
    keras = [[0, 0] for _ in range(r)]
    for p, a in spatial.items():
        keras[a - 1] = list(pairs[p])
    shape = tuple(None if d is None else d + sign * sum(keras[i]) for i, d in enumerate(t.shape[:-1]))
    rec = lf.record(f"{kind}{r}D", {"padding" if sign > 0 else "cropping": keras[0] if r == 1 else keras}, {}, [t])
    return View(rec.output((*shape, t.shape[-1]), t.dtype), v.axes)


@handles("Pad")
@_folding
def _pad(lf, node):
    v = lf.view(node.input[0])
    mode = _attrs(node).get("mode", "constant")
    value = lf.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
    if mode != "constant" or np.any(value != 0):
        raise lf.fail(f"padding in mode '{mode}' or with a value other than 0 has no nnspec layer")
    pads = lf.const(node.input[1]).tolist()
    axes = _axes_input(lf, node, v.rank, index=3) or list(range(v.rank))
    n = len(axes)
    if any(d < 0 for d in pads):
        raise lf.fail("negative padding has no nnspec layer")
    lf.values[node.output[0]] = _margins(lf, node, v, "ZeroPadding", {a: (pads[i], pads[i + n]) for i, a in enumerate(axes)},
                                         sign=1)


# ---- elementwise ---------------------------------------------------------------------------


def _fn(name: str, **params):
    return ACTIVATIONS.make(name, **params)


def _hard_sigmoid(a):
    if not math.isclose(a.get("beta", 0.5), 0.5):
        return None
    return _fn("hard_sigmoid", slope=a.get("alpha", 0.2))


def _selu(a):
    keras = (1.6732632423543772, 1.0507009873554805)
    ok = math.isclose(a.get("alpha", keras[0]), keras[0], rel_tol=1e-6) and \
        math.isclose(a.get("gamma", keras[1]), keras[1], rel_tol=1e-6)
    return _fn("selu") if ok else None


# ONNX op -> IR activation from its attributes (None: settings Keras has no name for).
ACTIVATION_OPS: dict[str, Callable[[dict], object]] = {
    "Relu": lambda a: _fn("relu"), "Sigmoid": lambda a: _fn("sigmoid"), "Tanh": lambda a: _fn("tanh"),
    "Softplus": lambda a: _fn("softplus"), "Softsign": lambda a: _fn("softsign"),
    "Exp": lambda a: _fn("exponential"), "Selu": _selu, "HardSigmoid": _hard_sigmoid,
    "Elu": lambda a: _fn("elu", alpha=a.get("alpha", 1.0)),
    "LeakyRelu": lambda a: _fn("leaky_relu", alpha=a.get("alpha", 0.01)),  # ONNX's default slope
    "Gelu": lambda a: _fn("gelu", approximate=a.get("approximate", "none") == "tanh"),
}


def _activation_layer(lf, node, fn, v: View) -> None:
    r = lf.record("Activation", {"activation": fn}, {}, [v.tensor])
    lf.values[node.output[0]] = _same_layout(r, v)


@handles(*ACTIVATION_OPS)
@_folding
def _unary_activation(lf, node):
    fn = ACTIVATION_OPS[node.op_type](_attrs(node))
    if fn is None:
        raise lf.fail(f"{node.op_type} with these attributes has no Keras activation")
    _activation_layer(lf, node, fn, lf.view(node.input[0]))


@handles("Clip")
@_folding
def _clip(lf, node):
    a = _attrs(node)
    bounds = [a.get("min"), a.get("max")] if "min" in a or "max" in a else \
        [float(lf.const(n)) if n else None for n in (list(node.input[1:]) + ["", ""])[:2]]
    if bounds == [0.0, 6.0]:
        fn = _fn("relu6")
    elif bounds[0] == 0.0 and bounds[1] is None:
        fn = _fn("relu")
    else:
        raise lf.fail(f"Clip to {bounds} has no Keras activation")
    _activation_layer(lf, node, fn, lf.view(node.input[0]))


@handles("Softmax")
@_folding
def _softmax(lf, node):
    v = lf.view(node.input[0])
    axis = _attrs(node).get("axis", -1 if lf.opset >= 13 else 1)
    if lf.opset < 13 and axis % v.rank != v.rank - 1:
        raise lf.fail("Softmax before opset 13 over several axes has no Keras activation")
    try:
        k = v.keras_axis(axis)
    except ValueError as exc:
        raise lf.fail(f"softmax over {exc}") from None
    _activation_layer(lf, node, _fn("softmax", axis=k), v)


def _per_channel(lf, v: View, c: np.ndarray) -> tuple[int, np.ndarray]:
    """A constant broadcast against a view as (Keras axis from the end, one value per element)."""
    c = np.asarray(c, np.float32)
    if c.ndim > v.rank:
        raise lf.fail("a constant of higher rank than the tensor")
    full = c.reshape((1,) * (v.rank - c.ndim) + c.shape)
    spread = [p for p, d in enumerate(full.shape) if d != 1]
    if not spread:
        size = v.tensor.shape[-1]
        if size is None:
            raise lf.fail("a scalar applied to a tensor of unknown size")
        return -1, np.full(size, full.item(), np.float32)
    dims = v.dims()
    if len(spread) != 1 or v.axes[spread[0]] in (None, 0) or dims[spread[0]] != full.shape[spread[0]]:
        raise lf.fail("an elementwise constant other than one number per channel has no nnspec layer")
    return v.keras_axis(spread[0]), full.reshape(-1)


def _affine(lf, node, v: View, scale=None, shift=None) -> None:
    axis, values = _per_channel(lf, v, scale if scale is not None else shift)
    fields = {"axis": axis, "scale": None if scale is None else values, "shift": None if shift is None else values}
    r = lf.record("Affine", fields, {}, [v.tensor])
    lf.values[node.output[0]] = _same_layout(r, v)


_MERGES = {"Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum", "Min": "Minimum", "Sum": "Add"}


def _merge(lf, node, kind: str, views: list[View]) -> None:
    if len({v.tensor.shape for v in views}) > 1:
        raise lf.fail("broadcasting between tensors has no nnspec merge layer")
    if any(v.axes != views[0].axes for v in views):
        views = [View.of(lf.materialize(v)) for v in views]
    r = lf.record(kind, {}, {}, [v.tensor for v in views])
    lf.values[node.output[0]] = _same_layout(r, views[0])


@handles("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum")
@_folding
def _binary(lf, node):
    ins = [lf.value(n) for n in node.input]
    views = [v for v in ins if isinstance(v, View)]
    if len(views) == len(ins):
        if node.op_type == "Div":
            raise lf.fail("dividing tensors has no nnspec layer")
        _merge(lf, node, _MERGES[node.op_type], views)
        return
    if len(ins) != 2 or not all(isinstance(v, (View, np.ndarray)) for v in ins):
        raise lf.fail("an elementwise op on a tensor of unknown size")
    (v,), c = views, next(x for x in ins if isinstance(x, np.ndarray)).astype(np.float32)
    tensor_first = isinstance(ins[0], View)
    if node.op_type == "Add":
        _affine(lf, node, v, shift=c)
    elif node.op_type == "Mul":
        _affine(lf, node, v, scale=c)
    elif node.op_type == "Sub" and tensor_first:
        _affine(lf, node, v, shift=-c)
    elif node.op_type == "Div" and tensor_first:
        _affine(lf, node, v, scale=(1.0 / c).astype(np.float32))
    else:
        raise lf.fail(f"{node.op_type} of a tensor and a constant in this order has no nnspec layer")


@handles("Concat")
@_folding
def _concat(lf, node):
    ins = [lf.value(n) for n in node.input]
    if not all(isinstance(v, View) for v in ins):
        raise lf.fail("concatenating a tensor with a constant has no nnspec layer")
    if any(v.axes != ins[0].axes for v in ins):
        ins = [View.of(lf.materialize(v)) for v in ins]
    position = _attrs(node)["axis"] % ins[0].rank
    try:
        k = ins[0].keras_axis(position)
    except ValueError as exc:
        raise lf.fail(f"concatenation over {exc}") from None
    shape = list(ins[0].tensor.shape)
    sizes = [v.tensor.shape[k] for v in ins]
    shape[k] = None if None in sizes else sum(sizes)
    r = lf.record("Concatenate", {"axis": k}, {}, [v.tensor for v in ins])
    lf.values[node.output[0]] = _same_layout(r, ins[0], tuple(shape))


# ---- layers with weights -------------------------------------------------------------------


@handles("Gather")
@_folding
def _gather(lf, node):
    table, idx = lf.value(node.input[0]), lf.value(node.input[1])
    if not (isinstance(table, np.ndarray) and table.ndim == 2 and isinstance(idx, View)) or _attrs(node).get("axis", 0):
        raise lf.fail("only a lookup of rows of a constant table (an Embedding) is supported")
    t = lf.materialize(idx)
    r = lf.record("Embedding", {"input_dim": table.shape[0], "output_dim": table.shape[1]},
                  {"embeddings": table}, [t])
    lf.values[node.output[0]] = View.of(r.output((*t.shape, table.shape[1])))


def _dense(lf, node, v: View, kernel: np.ndarray, bias: np.ndarray | None) -> None:
    t = lf.materialize(v)
    fields = {"units": kernel.shape[1], "use_bias": bias is not None}
    weights = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}
    r = lf.record("Dense", fields, weights, [t])
    lf.values[node.output[0]] = View.of(r.output((*t.shape[:-1], kernel.shape[1])))


@handles("MatMul")
@_folding
def _matmul(lf, node):
    v, w = lf.value(node.input[0]), lf.value(node.input[1])
    if not (isinstance(v, View) and isinstance(w, np.ndarray) and w.ndim == 2):
        raise lf.fail("only a tensor times a constant matrix (a Dense layer) is supported")
    _dense(lf, node, v, w, None)


@handles("Gemm")
@_folding
def _gemm(lf, node):
    a = _attrs(node)
    v, w = lf.view(node.input[0]), lf.const(node.input[1])
    if a.get("transA", 0):
        raise lf.fail("Gemm with transA has no Dense equivalent")
    kernel = w.T if a.get("transB", 0) else w
    if a.get("alpha", 1.0) != 1.0:
        kernel = (kernel * np.float32(a["alpha"])).astype(np.float32)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = lf.const(node.input[2]) * np.float32(a.get("beta", 1.0))
        bias = np.broadcast_to(c.astype(np.float32).reshape(-1) if c.size > 1 else c.reshape(()),
                               (kernel.shape[1],)).copy()
    _dense(lf, node, v, np.ascontiguousarray(kernel), bias)


# ---- convolution and pooling --------------------------------------------------------------


def _window_layout(lf, v: View, kernel: list[int], strides: list[int], pads: list[int], dilations: list[int]):
    """(Keras rank r, ONNX spatial positions of the r Keras spatial axes) for a channels-first
    window op on a view; extra spatial positions must be size-1 ones the window leaves alone."""
    t, s = v.tensor, v.rank - 2
    r = t.rank - 2
    if r not in (1, 2, 3) or s < r:
        raise lf.fail(f"a {s}-D window over a tensor of rank {t.rank} has no nnspec layer")
    for units in _choices(s, s - r):
        positions = [p for p in range(s) if p not in units]
        # a unit kernel over an unpadded size-1 dimension leaves it alone, whatever its stride
        trivial = all(kernel[u] == 1 and pads[u] == pads[u + s] == 0 for u in units)
        wanted = [0, t.rank - 1] + [None if p in units else positions.index(p) + 1 for p in range(s)]
        if trivial and v.fits(wanted):
            return r, positions
    raise lf.fail("the tensor is not laid out channels-first as a window op needs")


def _choices(n: int, k: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return list(combinations(range(n), k))


def _padding(lf, v: View, positions, kernel, strides, pads, dilations, auto_pad: str, causal_ok: bool) -> str | None:
    """Keras's name for the pads; None: none fits."""
    s = len(kernel)
    if auto_pad in ("SAME_UPPER",):
        return "same"
    if auto_pad == "VALID" or all(pads[p] == pads[p + s] == 0 for p in positions):
        return "valid"
    dims = v.dims()[2:]
    begin = [pads[p] for p in positions]
    end = [pads[p + s] for p in positions]
    same = [windows.same_pads(dims[p], kernel[p], strides[p], dilations[p]) for p in positions]
    same = None if None in same else same
    if same is not None and begin == [b for b, _ in same] and end == [e for _, e in same]:
        return "same"
    if causal_ok and begin == [windows.causal_pads(kernel[p], dilations[p])[0] for p in positions] and not any(end):
        return "causal"
    return None


def _window(lf, node, kernel_shape) -> tuple:
    a = _attrs(node)
    v = lf.view(node.input[0])
    s = v.rank - 2
    strides = list(a.get("strides", [1] * s))
    dilations = list(a.get("dilations", [1] * s))
    pads = list(a.get("pads", [0] * 2 * s))
    if a.get("ceil_mode", 0):
        raise lf.fail("ceil_mode has no Keras equivalent")
    r, positions = _window_layout(lf, v, kernel_shape, strides, pads, dilations)
    padding = _padding(lf, v, positions, kernel_shape, strides, pads, dilations, a.get("auto_pad", "NOTSET"),
                       causal_ok=node.op_type == "Conv" and r == 1)
    if padding is None and node.op_type != "Conv":
        raise lf.fail(f"padding {pads} is neither Keras's 'valid' nor 'same'")
    if padding is None:  # other pads (a ZeroPadding that nnspec or tf2onnx merged): ZeroPadding, then 'valid'
        v = _margins(lf, node, v, "ZeroPadding", {2 + p: (pads[p], pads[p + s]) for p in range(s)}, sign=1)
        lf.records[-1].scope = None  # the node's name names the conv
        padding = "valid"
    pick = lambda xs: [int(xs[p]) for p in positions]
    return v, r, positions, pick(kernel_shape), pick(strides), pick(dilations), padding


def _window_output(rec: Record, v: View, r: int, positions, kernel, strides, dilations, padding, channels):
    """The window op's output tensor, laid out as its input (channels-first, size-1 dims kept)."""
    dims = v.dims()[2:]
    spatial = tuple(windows.keras_output_size(dims[p], k, st, padding, d)
                    for p, k, st, d in zip(positions, kernel, strides, dilations))
    out = rec.output((*spatial, channels))
    axes = [0, r + 1] + [positions.index(p) + 1 if p in positions else None for p in range(v.rank - 2)]
    return View(out, tuple(axes))


@handles("Conv")
@_folding
def _conv(lf, node):
    w = lf.const(node.input[1])
    v, r, positions, kernel, strides, dilations, padding = _window(lf, node, list(w.shape[2:]))
    keras_kernel = w.reshape(w.shape[:2] + tuple(w.shape[2 + p] for p in positions))  # unit dims dropped
    # (F, C/g, *k) -> Keras's (*k, C/g, F)
    keras_kernel = np.ascontiguousarray(np.transpose(keras_kernel, (*range(2, r + 2), 1, 0)))
    bias = lf.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    group, channels = int(_attrs(node).get("group", 1)), v.tensor.shape[-1]
    if group > 1 and group == channels and w.shape[1] == 1:  # one group per channel: depthwise
        multiplier = int(w.shape[0]) // group
        # ONNX's (C * m, 1, *k) -> Keras's (*k, C, m)
        kernel_cm = keras_kernel.reshape(*keras_kernel.shape[:r], group, multiplier)
        fields = {"kernel_size": kernel, "strides": strides, "padding": padding, "dilation_rate": dilations,
                  "depth_multiplier": multiplier, "use_bias": bias is not None}
        rec = lf.record(f"DepthwiseConv{r}D", fields, {"kernel": np.ascontiguousarray(kernel_cm)}
                        | ({} if bias is None else {"bias": bias}), [v.tensor])
        lf.values[node.output[0]] = _window_output(rec, v, r, positions, kernel, strides, dilations, padding,
                                                   int(w.shape[0]))
        return
    fields = {"filters": int(w.shape[0]), "kernel_size": kernel, "strides": strides, "padding": padding,
              "dilation_rate": dilations, "groups": int(_attrs(node).get("group", 1)), "use_bias": bias is not None}
    weights = {"kernel": keras_kernel} if bias is None else {"kernel": keras_kernel, "bias": bias}
    rec = lf.record(f"Conv{r}D", fields, weights, [v.tensor])
    lf.values[node.output[0]] = _window_output(rec, v, r, positions, kernel, strides, dilations, padding,
                                               int(w.shape[0]))


@handles("ConvTranspose")
@_folding
def _conv_transpose(lf, node):
    a = _attrs(node)
    w = lf.const(node.input[1])
    v = lf.view(node.input[0])
    s = v.rank - 2
    strides, dilations = list(a.get("strides", [1] * s)), list(a.get("dilations", [1] * s))
    pads, extra = list(a.get("pads", [0] * 2 * s)), list(a.get("output_padding", [0] * s))
    if a.get("group", 1) != 1 or "output_shape" in a or a.get("auto_pad", "NOTSET") != "NOTSET":
        raise lf.fail("groups, output_shape or auto_pad on a transposed conv have no Keras equivalent")
    r, positions = _window_layout(lf, v, list(w.shape[2:]), strides, pads, dilations)
    pick = lambda xs: [int(xs[p]) for p in positions]  # noqa: E731
    kernel, strides, dilations = pick(w.shape[2:]), pick(strides), pick(dilations)
    onnx_pads = [(pads[p], pads[p + s], extra[p]) for p in positions]
    padding, output_padding = _transposed_padding(lf, kernel, strides, dilations, onnx_pads)
    keras_kernel = w.reshape(w.shape[:2] + tuple(kernel))  # (C, F, *k) -> Keras's (*k, F, C)
    keras_kernel = np.ascontiguousarray(np.transpose(keras_kernel, (*range(2, r + 2), 1, 0)))
    bias = lf.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    filters = int(w.shape[1])
    fields = {"filters": filters, "kernel_size": kernel, "strides": strides, "padding": padding,
              "output_padding": output_padding, "dilation_rate": dilations, "use_bias": bias is not None}
    rec = lf.record(f"Conv{r}DTranspose", fields, {"kernel": keras_kernel} | ({} if bias is None else {"bias": bias}),
                    [v.tensor])
    dims = v.dims()[2:]
    spatial = tuple(windows.keras_transposed_output_size(dims[p], k, st, padding, d, op) for p, k, st, d, op in
                    zip(positions, kernel, strides, dilations, output_padding or [None] * r))
    axes = [0, r + 1] + [positions.index(p) + 1 if p in positions else None for p in range(s)]
    lf.values[node.output[0]] = View(rec.output((*spatial, filters)), tuple(axes))


def _transposed_padding(lf, kernel, strides, dilations, onnx_pads) -> tuple[str, list[int] | None]:
    """The Keras padding and output_padding whose ONNX pads (windows.keras_transposed_pads) these are."""
    for padding in ("valid", "same"):
        for output_padding in [None, *map(list, itertools.product(*[range(st) for st in strides]))]:
            wanted = [windows.keras_transposed_pads(k, st, padding, d, op) for k, st, d, op in
                      zip(kernel, strides, dilations, output_padding or [None] * len(kernel))]
            # an end pad below zero (tf2onnx) is output_padding: compare what is cut before and after
            if [(b, a - op) for b, a, op in wanted] == [(b, a - op) for b, a, op in onnx_pads]:
                return padding, output_padding
    raise lf.fail(f"transposed-conv pads {onnx_pads} are not Keras's 'valid' or 'same' with any output_padding")


# (mode, coordinate_transformation_mode, nearest_mode) of a Resize that computes as TF 2 does
_TF_RESIZES = {("linear", "half_pixel", None): "bilinear", ("nearest", "half_pixel", "round_prefer_ceil"): "nearest",
               ("nearest", "tf_half_pixel_for_nn", "floor"): "nearest"}


@handles("Resize")
@_folding
def _resize(lf, node):
    """UpSampling (whole factors) or, in 2-D, Resizing."""
    a = _attrs(node)
    v = lf.view(node.input[0])
    t, dims = v.tensor, v.dims()
    r = t.rank - 2
    key = (a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel"),
           a.get("nearest_mode", "round_prefer_floor") if a.get("mode", "nearest") == "nearest" else None)
    if key not in _TF_RESIZES or a.get("antialias", 0) or a.get("exclude_outside", 0):
        raise lf.fail(f"a resize with {key} has no Keras equivalent (Keras resizes with half-pixel centres)")
    axes = [x % v.rank for x in a.get("axes", range(v.rank))]
    if len(node.input) > 3 and node.input[3]:
        out = {p: int(n) for p, n in zip(axes, lf.const(node.input[3]))}
    else:
        out = {p: None if dims[p] is None else int(np.floor(dims[p] * s)) for p, s in zip(axes, lf.const(node.input[2]))}
    changed = {p: n for p, n in out.items() if n != dims[p]}
    keras = {v.axes[p]: n for p, n in changed.items()}
    if not 1 <= r <= 3 or None in changed.values() or any(k is None or not 1 <= k <= r or t.size(k) is None
                                                         for k in keras):
        raise lf.fail("resizing other than of the known spatial axes of a (batch, spatial..., channels) tensor "
                      "has no Keras layer")
    sizes = [keras.get(k, t.size(k)) for k in range(1, r + 1)]
    factors = [n // t.size(k) if n % t.size(k) == 0 else None for k, n in enumerate(sizes, start=1)]
    interpolation = _TF_RESIZES[key]
    if None not in factors and (interpolation == "nearest" or r == 2):
        fields = {"size": factors} | ({"interpolation": interpolation} if r == 2 else {})
        rec = lf.record(f"UpSampling{r}D", fields, {}, [t])
    elif r == 2:
        rec = lf.record("Resizing", {"height": sizes[0], "width": sizes[1], "interpolation": interpolation}, {}, [t])
    else:
        raise lf.fail(f"resizing a {r}-D tensor by other than whole factors has no Keras layer")
    lf.values[node.output[0]] = View(rec.output((*sizes, t.shape[-1]), t.dtype), v.axes)


@handles("MaxPool", "AveragePool")
@_folding
def _pool(lf, node):
    a = _attrs(node)
    if len(node.output) > 1 and node.output[1]:
        raise lf.fail("MaxPool's indices have no nnspec equivalent")
    if a.get("storage_order", 0):
        raise lf.fail("storage_order has no Keras equivalent")
    v, r, positions, kernel, strides, dilations, padding = _window(lf, node, list(a["kernel_shape"]))
    if node.op_type == "AveragePool" and a.get("count_include_pad", 0) and padding != "valid":
        raise lf.fail("averages that count the padding have no Keras equivalent")
    kind = "MaxPooling" if node.op_type == "MaxPool" else "AveragePooling"
    fields = {"pool_size": kernel, "strides": None if strides == kernel else strides, "padding": padding}
    rec = lf.record(f"{kind}{r}D", fields, {}, [v.tensor])
    lf.values[node.output[0]] = _window_output(rec, v, r, positions, kernel, strides, dilations, padding,
                                               v.tensor.shape[-1])


def _global_pool(lf, node, kind: str, reduced: list[int], keepdims: bool) -> None:
    """A reduction over every spatial axis of a (channels-last) tensor: Global{kind}Pooling."""
    v = lf.view(node.input[0])
    t = v.tensor
    r = t.rank - 2
    spatial = set(range(1, t.rank - 1))
    covered = {v.axes[p] for p in reduced if not v.free(p)}
    kept_bad = any(v.axes[p] in spatial and not v.free(p) for p in range(v.rank) if p not in reduced)
    if r not in (1, 2) or kept_bad or not covered <= spatial or any(v.axes[p] in (0, t.rank - 1) for p in reduced):
        raise lf.fail("a reduction other than over all spatial axes (global pooling) has no nnspec layer")
    rec = lf.record(f"Global{kind}Pooling{r}D", {}, {}, [t])
    out = rec.output((t.shape[-1],), t.dtype)
    axes = [0 if v.axes[p] == 0 else 1 if v.axes[p] == t.rank - 1 else None for p in range(v.rank)
            if keepdims or p not in reduced]
    lf.values[node.output[0]] = View(out, tuple(axes))


@handles("GlobalAveragePool", "GlobalMaxPool")
@_folding
def _global(lf, node):
    v = lf.view(node.input[0])
    _global_pool(lf, node, "Average" if node.op_type == "GlobalAveragePool" else "Max", list(range(2, v.rank)), True)


@handles("ReduceMean", "ReduceMax")
@_folding
def _reduce(lf, node):
    v = lf.view(node.input[0])
    a = _attrs(node)
    axes = _axes_input(lf, node, v.rank)
    if axes is None:
        raise lf.fail("a reduction over every axis has no nnspec layer")
    _global_pool(lf, node, "Average" if node.op_type == "ReduceMean" else "Max", axes, bool(a.get("keepdims", 1)))


@handles("Tile")
@_folding
def _tile(lf, node):
    """(batch, 1, features) tiled along the middle: RepeatVector."""
    v, reps = lf.view(node.input[0]), lf.const(node.input[1]).tolist()
    t = v.tensor
    if t.rank != 2 or v.rank != 3 or not v.fits([0, None, 1]) or reps[0] != 1 or reps[2] != 1:
        raise lf.fail("tiling other than a RepeatVector has no nnspec layer")
    rec = lf.record("RepeatVector", {"n": int(reps[1])}, {}, [t])
    lf.values[node.output[0]] = View.of(rec.output((int(reps[1]), t.shape[0]), t.dtype))


# ---- normalization ---------------------------------------------------------------------------


@handles("BatchNormalization")
@_folding
def _batch_norm(lf, node):
    a = _attrs(node)
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise lf.fail("training-mode batch normalization has no inference layer")
    v = lf.view(node.input[0])
    gamma, beta, mean, var = (lf.const(n) for n in node.input[1:5])
    try:
        axis = v.keras_axis(1)
    except ValueError as exc:
        raise lf.fail(f"normalizing {exc}") from None
    fields = {"axis": axis, "epsilon": float(a.get("epsilon", 1e-5)), "momentum": float(a.get("momentum", 0.9))}
    rec = lf.record("BatchNormalization", fields,
                    {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var}, [v.tensor])
    lf.values[node.output[0]] = _same_layout(rec, v)


@handles("LayerNormalization")
@_folding
def _layer_norm(lf, node):
    a = _attrs(node)
    v = lf.view(node.input[0])
    if a.get("axis", -1) % v.rank != v.rank - 1 or len([o for o in node.output if o]) > 1:
        raise lf.fail("layer normalization over several axes has no nnspec layer")
    gamma = lf.const(node.input[1])
    beta = lf.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros_like(gamma)
    try:
        axis = v.keras_axis(-1)
    except ValueError as exc:
        raise lf.fail(f"normalizing {exc}") from None
    rec = lf.record("LayerNormalization", {"axis": axis, "epsilon": float(a.get("epsilon", 1e-5))},
                    {"gamma": gamma, "beta": beta}, [v.tensor])
    lf.values[node.output[0]] = _same_layout(rec, v)


# ---- recurrent -------------------------------------------------------------------------------

_RNN_TYPES = {"RNN": "SimpleRNN", "GRU": "GRU", "LSTM": "LSTM"}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_TAKES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
_TAKES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
# ONNX RNN activation -> IR activation, given its alpha and beta
_RNN_ACTIVATIONS = {
    "Tanh": lambda al, be: _fn("tanh"), "Sigmoid": lambda al, be: _fn("sigmoid"), "Relu": lambda al, be: _fn("relu"),
    "Softsign": lambda al, be: _fn("softsign"), "Softplus": lambda al, be: _fn("softplus"),
    "LeakyRelu": lambda al, be: _fn("leaky_relu", alpha=al), "Elu": lambda al, be: _fn("elu", alpha=al),
    "HardSigmoid": lambda al, be: _fn("hard_sigmoid", slope=al) if math.isclose(be, 0.5) else None,
    "Affine": lambda al, be: _fn("linear") if al == 1.0 and be == 0.0 else None,
}


def _rnn_activations(lf, op: str, a: dict) -> list:
    names = a.get("activations") or _DEFAULT_ACTIVATIONS[op]
    alphas, betas = iter(a.get("activation_alpha", [])), iter(a.get("activation_beta", []))
    out = []
    for name in names:
        alpha = next(alphas, 0.01 if name == "LeakyRelu" else 0.2 if name == "HardSigmoid" else 1.0) \
            if name in _TAKES_ALPHA else None
        beta = next(betas, 0.5 if name == "HardSigmoid" else 0.0) if name in _TAKES_BETA else None
        fn = _RNN_ACTIVATIONS[name](alpha, beta) if name in _RNN_ACTIVATIONS else None
        if fn is None:
            raise lf.fail(f"recurrent activation {name} has no Keras equivalent")
        out.append(fn)
    return out


def _keras_gates(op: str, m: np.ndarray, units: int) -> np.ndarray:
    """ONNX gate blocks (rows) -> Keras's order: LSTM iofc -> ifco; GRU zrh and RNN as they are."""
    order = ONNX_GATE_ORDER[_RNN_TYPES[op]]
    blocks = [m[i * units:(i + 1) * units] for i in range(len(order))]
    return np.concatenate([blocks[order.index(k)] for k in range(len(order))])


def _zeros(value) -> bool:
    if value is None:
        return True
    arrays = value.values if isinstance(value, Probe) else (value,) if isinstance(value, np.ndarray) else None
    return arrays is not None and all(not np.any(x) for x in arrays)


@handles("RNN", "GRU", "LSTM")
def _recurrent(lf, node):
    op, a = node.op_type, _attrs(node)
    ins = list(node.input) + [""] * (8 - len(node.input))
    if a.get("direction", "forward") not in ("forward", "reverse"):
        raise lf.fail("bidirectional recurrent ops are not lifted; nnspec writes each direction as its own op")
    if a.get("clip") is not None or a.get("input_forget", 0) or a.get("layout", 0) or (op == "LSTM" and ins[7]):
        raise lf.fail("clip, input_forget, layout 1 and peepholes have no Keras equivalent")
    if lf.value(ins[4]) is not None:
        raise lf.fail("sequence lengths (masks) are not lifted")
    states = _initial_states(lf, ins[5:7] if op == "LSTM" else ins[5:6])
    v = lf.view(ins[0])
    if v.tensor.rank != 3 or not v.fits([1, 0, 2]):
        raise lf.fail("the input is not laid out time-major as ONNX recurrent ops need")
    w, rw = lf.const(ins[1])[0], lf.const(ins[2])[0]
    units = int(a["hidden_size"])
    gates = w.shape[0] // units
    kernel, recurrent = (np.ascontiguousarray(_keras_gates(op, m, units).T) for m in (w, rw))
    fns = _rnn_activations(lf, op, a)
    fields = {"units": units, "activation": fns[0] if op == "RNN" else fns[1],
              "go_backwards": a.get("direction") == "reverse"}
    if op != "RNN":
        fields["recurrent_activation"] = fns[0]
    if op == "LSTM" and fns[2] != fns[1]:
        raise lf.fail("an LSTM whose cell and output activations differ has no Keras equivalent")
    weights = {"kernel": kernel, "recurrent_kernel": recurrent}
    b = lf.value(ins[3])
    fields["use_bias"] = b is not None
    if b is not None:
        b = lf.const(ins[3])[0]
        wb, rb = b[:gates * units], b[gates * units:]
        if op == "GRU" and a.get("linear_before_reset", 0):
            weights["bias"] = np.stack([_keras_gates(op, wb, units), _keras_gates(op, rb, units)])
        else:
            weights["bias"] = _keras_gates(op, (wb + rb).astype(np.float32), units)
    if op == "GRU":
        fields["reset_after"] = bool(a.get("linear_before_reset", 0))
    rec = lf.record(_RNN_TYPES[op], fields, weights, [v.tensor, *states])
    _recurrent_outputs(lf, node, rec, v.tensor, units, n_states=2 if op == "LSTM" else 1)


def _initial_states(lf, names: list[str]) -> list[Tensor]:
    """initial_h (and initial_c) (1, batch, units) -> Keras's initial_state tensors; none if zeros."""
    if all(_zeros(lf.value(n)) for n in names if n):
        return []
    if not all(names):
        raise lf.fail("an LSTM given initial_h or initial_c alone has no Keras equivalent")
    views = [lf.view(n) for n in names]
    if any(v.tensor.rank != 2 or not v.fits([None, 0, 1]) for v in views):
        raise lf.fail("initial states other than (1, batch, units) have no Keras equivalent")
    return [v.tensor for v in views]


def _recurrent_outputs(lf, node, rec: Record, x: Tensor, units: int, n_states: int) -> None:
    """Y (time, 1, batch, units) is the sequence; Y_h, Y_c (1, batch, units) the states."""
    seq = rec.output((x.shape[0], units))
    rec.states = [Tensor((units,), "float32", rec) for _ in range(n_states)]
    outs = list(node.output) + [""] * 3
    if outs[0]:
        if rec.fields.get("go_backwards"):
            raise lf.fail("the sequence of a reversed recurrent op (Keras go_backwards) is not lifted")
        lf.values[outs[0]] = View(seq, (1, None, 0, 2))
    for name, state in zip(outs[1:1 + n_states], rec.states):
        if name:
            lf.values[name] = View(state, (None, 0, 1))


@handles("Loop")
def _loop(lf, node):
    """tf2onnx writes a Keras SimpleRNN as a Loop over time steps (lift_loop.py)."""
    from .lift_loop import simple_rnn_loop

    simple_rnn_loop(lf, node)
