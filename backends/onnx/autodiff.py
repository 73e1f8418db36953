"""Reverse-mode differentiation of ONNX graphs, written in ONNX.

Every differentiable op has one vector-Jacobian product here, itself made of standard `ai.onnx`
ops (opset 18), so the backward pass is a graph that stock onnxruntime runs on any provider.
`gradients` walks the forward nodes in reverse, asks each op's rule for the cotangents of its
inputs, and sums cotangents that meet (fan-out).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import NodeProto, TensorProto, helper, numpy_helper

VJP: dict[str, Callable] = {}
# Ops whose outputs carry no gradient (integer or boolean results, shape queries, RNG).
NONDIFFERENTIABLE = {"Shape", "Size", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And",
                     "Or", "ArgMax", "ArgMin", "Floor", "Ceil", "Round", "Sign", "RandomUniformLike",
                     "ConstantOfShape", "Constant", "OneHot", "NonZero", "Range"}


def vjp(*op_types: str):
    def register(fn):
        for op in op_types:
            VJP[op] = fn
        return fn
    return register


class Builder:
    """Appends nodes and constants with unique names; knows the static shapes of forward tensors."""

    def __init__(self, shapes: dict[str, tuple], constants: dict[str, np.ndarray] | None = None,
                 prefix: str = "grad"):
        self.constants = dict(constants or {})  # values known when building: axes, starts, ...
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.shapes = shapes
        self.prefix = prefix
        self.count = 0
        self._consts: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}/{hint}_{self.count}"

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> str | list[str]:
        outs = [self.name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type + "_node"), **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=np.float32) -> str:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.name("const")
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def constant_value(self, name: str) -> np.ndarray:
        if name not in self.constants:
            raise NotImplementedError(f"the gradient needs '{name}' to be a constant")
        return self.constants[name]

    def axes(self, axes) -> str:
        return self.const(list(axes), np.int64)

    def rank(self, name: str) -> int:
        return len(self.shapes[name])

    # helpers shared by many rules
    def sum_to(self, grad: str, target: str, source: str) -> str:
        """Undo numpy broadcasting: sum `grad` (shaped like `source`) down to the shape of `target`."""
        t, s = self.shapes[target], self.shapes[source]
        lead = len(s) - len(t)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(t) if d == 1 and s[lead + i] != 1]
        if not axes:
            return grad
        out = self.op("ReduceSum", [grad, self.axes(axes)], keepdims=1)
        return self.op("Reshape", [out, self.shape_of(target)]) if lead else out

    def shape_of(self, name: str) -> str:
        dims = self.shapes[name]
        if all(isinstance(d, int) and d >= 0 for d in dims):
            return self.const(list(dims), np.int64)
        return self.op("Shape", [name])

    def zeros_like(self, name: str) -> str:
        return self.op("Mul", [name, self.const(0.0)])


def infer_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Static shapes of every tensor (a symbolic batch dimension becomes -1)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes = {}
    graph = inferred.graph
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def constants_of(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def gradient_model(model: onnx.ModelProto, loss: str, wrt: list[str]) -> onnx.ModelProto:
    """The forward model plus one output per `wrt` tensor: d loss / d tensor."""
    b = Builder(infer_shapes(model), constants_of(model.graph))
    grads = gradients(list(model.graph.node), loss, wrt, b)
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    graph.node.extend(b.nodes)
    graph.initializer.extend(b.initializers)
    for w in wrt:
        g = grads[w] if grads[w] is not None else b.zeros_like(w)
        if grads[w] is None:
            graph.node.extend(b.nodes[-1:])
        shape = [d if d >= 0 else None for d in b.shapes[w]]
        graph.output.append(helper.make_tensor_value_info(g, TensorProto.FLOAT, shape))
    out = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return out


def gradients(nodes: list[NodeProto], loss: str, wrt: list[str], b: Builder) -> dict[str, str]:
    """Cotangent names for each tensor in `wrt`, given a scalar `loss` computed by `nodes`."""
    grads: dict[str, list[str]] = {loss: [b.const(1.0)]}
    needed = _needed(nodes, set(wrt))
    for node in reversed(nodes):
        outs = [_total(grads.pop(o, None), b) for o in node.output]
        if all(g is None for g in outs) or not any(i in needed for i in node.input):
            continue
        if node.op_type in NONDIFFERENTIABLE:
            continue
        rule = VJP.get(node.op_type)
        if rule is None:
            raise NotImplementedError(f"no gradient for ONNX op {node.op_type} (node {node.name})")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name, g in zip(node.input, rule(b, node, attrs, outs)):
            if g is not None and name in needed:
                grads.setdefault(name, []).append(g)
    return {w: _total(grads.get(w), b) for w in wrt}


def _total(parts: list[str] | None, b: Builder) -> str | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else b.op("Sum", parts)


def _needed(nodes: list[NodeProto], wrt: set[str]) -> set[str]:
    """Tensors that depend on a parameter: only their cotangents are worth computing."""
    needed = set(wrt)
    for node in nodes:
        if node.op_type not in NONDIFFERENTIABLE and any(i in needed for i in node.input):
            needed.update(node.output)
    return needed


def _first(g):
    return g[0]


# ---- elementwise ------------------------------------------------------------------------------------------

@vjp("Identity", "Dropout")
def _identity(b, n, a, g):
    return [g[0]]


@vjp("Neg")
def _neg(b, n, a, g):
    return [b.op("Neg", [g[0]])]


@vjp("Relu")
def _relu(b, n, a, g):
    mask = b.op("Cast", [b.op("Greater", [n.input[0], b.const(0.0)])], to=TensorProto.FLOAT)
    return [b.op("Mul", [g[0], mask])]


@vjp("LeakyRelu")
def _leaky_relu(b, n, a, g):
    alpha = a.get("alpha", 0.01)
    slope = b.op("Where", [b.op("Greater", [n.input[0], b.const(0.0)]), b.const(1.0), b.const(alpha)])
    return [b.op("Mul", [g[0], slope])]


@vjp("Elu")
def _elu(b, n, a, g):
    alpha = a.get("alpha", 1.0)
    # d/dx = 1 for x > 0, else y + alpha
    slope = b.op("Where", [b.op("Greater", [n.input[0], b.const(0.0)]), b.const(1.0),
                           b.op("Add", [n.output[0], b.const(alpha)])])
    return [b.op("Mul", [g[0], slope])]


@vjp("Selu")
def _selu(b, n, a, g):
    alpha, gamma = a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)
    negative = b.op("Mul", [b.op("Exp", [n.input[0]]), b.const(alpha * gamma)])
    slope = b.op("Where", [b.op("Greater", [n.input[0], b.const(0.0)]), b.const(gamma), negative])
    return [b.op("Mul", [g[0], slope])]


@vjp("Sigmoid")
def _sigmoid(b, n, a, g):
    y = n.output[0]
    return [b.op("Mul", [g[0], b.op("Mul", [y, b.op("Sub", [b.const(1.0), y])])])]


@vjp("HardSigmoid")
def _hard_sigmoid(b, n, a, g):
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    z = b.op("Add", [b.op("Mul", [n.input[0], b.const(alpha)]), b.const(beta)])
    inside = b.op("And", [b.op("Greater", [z, b.const(0.0)]), b.op("Less", [z, b.const(1.0)])])
    return [b.op("Mul", [g[0], b.op("Mul", [b.op("Cast", [inside], to=TensorProto.FLOAT), b.const(alpha)])])]


@vjp("Tanh")
def _tanh(b, n, a, g):
    y = n.output[0]
    return [b.op("Mul", [g[0], b.op("Sub", [b.const(1.0), b.op("Mul", [y, y])])])]


@vjp("Exp")
def _exp(b, n, a, g):
    return [b.op("Mul", [g[0], n.output[0]])]


@vjp("Log")
def _log(b, n, a, g):
    return [b.op("Div", [g[0], n.input[0]])]


@vjp("Sqrt")
def _sqrt(b, n, a, g):
    return [b.op("Div", [g[0], b.op("Mul", [n.output[0], b.const(2.0)])])]


@vjp("Reciprocal")
def _reciprocal(b, n, a, g):
    y = n.output[0]
    return [b.op("Neg", [b.op("Mul", [g[0], b.op("Mul", [y, y])])])]


@vjp("Abs")
def _abs(b, n, a, g):
    return [b.op("Mul", [g[0], b.op("Sign", [n.input[0]])])]


@vjp("Softplus")
def _softplus(b, n, a, g):
    return [b.op("Mul", [g[0], b.op("Sigmoid", [n.input[0]])])]


@vjp("Softsign")
def _softsign(b, n, a, g):
    denom = b.op("Add", [b.const(1.0), b.op("Abs", [n.input[0]])])
    return [b.op("Div", [g[0], b.op("Mul", [denom, denom])])]


@vjp("Erf")
def _erf(b, n, a, g):
    x = n.input[0]
    d = b.op("Mul", [b.op("Exp", [b.op("Neg", [b.op("Mul", [x, x])])]), b.const(2.0 / np.sqrt(np.pi))])
    return [b.op("Mul", [g[0], d])]


@vjp("Sin")
def _sin(b, n, a, g):
    return [b.op("Mul", [g[0], b.op("Cos", [n.input[0]])])]


@vjp("Cos")
def _cos(b, n, a, g):
    return [b.op("Neg", [b.op("Mul", [g[0], b.op("Sin", [n.input[0]])])])]


@vjp("Clip")
def _clip(b, n, a, g):
    x = n.input[0]
    keep = None
    for bound, compare in ((n.input[1] if len(n.input) > 1 else "", "GreaterOrEqual"),
                           (n.input[2] if len(n.input) > 2 else "", "LessOrEqual")):
        if bound:
            inside = b.op(compare, [x, bound])
            keep = inside if keep is None else b.op("And", [keep, inside])
    if keep is None:
        return [g[0]]
    return [b.op("Mul", [g[0], b.op("Cast", [keep], to=TensorProto.FLOAT)])]


@vjp("Cast")
def _cast(b, n, a, g):
    return [b.op("Cast", [g[0]], to=TensorProto.FLOAT)]


# ---- broadcasting binary ops --------------------------------------------------------------------------------

@vjp("Add")
def _add(b, n, a, g):
    return [b.sum_to(g[0], i, n.output[0]) for i in n.input]


@vjp("Sum")
def _sum(b, n, a, g):
    return [b.sum_to(g[0], i, n.output[0]) for i in n.input]


@vjp("Sub")
def _sub(b, n, a, g):
    return [b.sum_to(g[0], n.input[0], n.output[0]), b.sum_to(b.op("Neg", [g[0]]), n.input[1], n.output[0])]


@vjp("Mul")
def _mul(b, n, a, g):
    x, y = n.input
    return [b.sum_to(b.op("Mul", [g[0], y]), x, n.output[0]), b.sum_to(b.op("Mul", [g[0], x]), y, n.output[0])]


@vjp("Div")
def _div(b, n, a, g):
    x, y = n.input
    gx = b.op("Div", [g[0], y])
    gy = b.op("Neg", [b.op("Mul", [gx, n.output[0]])])
    return [b.sum_to(gx, x, n.output[0]), b.sum_to(gy, y, n.output[0])]


@vjp("Pow")
def _pow(b, n, a, g):
    x, p = n.input
    # d/dx x**p = p * x**(p-1); d/dp = log(x) * x**p (only where x > 0)
    gx = b.op("Mul", [g[0], b.op("Mul", [p, b.op("Pow", [x, b.op("Sub", [p, b.const(1.0)])])])])
    safe = b.op("Max", [x, b.const(1e-30)])
    gp = b.op("Mul", [g[0], b.op("Mul", [b.op("Log", [safe]), n.output[0]])])
    return [b.sum_to(gx, x, n.output[0]), b.sum_to(gp, p, n.output[0])]


@vjp("Max", "Min")
def _max_min(b, n, a, g):
    # the cotangent goes to the input that won (the first, on ties)
    out = []
    taken = None
    for i in n.input:
        won = b.op("Equal", [i, n.output[0]])
        if taken is not None:
            won = b.op("And", [won, b.op("Not", [taken])])
        taken = won if taken is None else b.op("Or", [taken, won])
        out.append(b.sum_to(b.op("Mul", [g[0], b.op("Cast", [won], to=TensorProto.FLOAT)]), i, n.output[0]))
    return out


@vjp("Where")
def _where(b, n, a, g):
    cond, x, y = n.input
    zero = b.const(0.0)
    return [None, b.sum_to(b.op("Where", [cond, g[0], zero]), x, n.output[0]),
            b.sum_to(b.op("Where", [cond, zero, g[0]]), y, n.output[0])]


# ---- linear algebra -------------------------------------------------------------------------------------------

def _swap_last(b, name: str) -> str:
    r = b.rank(name)
    return b.op("Transpose", [name], perm=list(range(r - 2)) + [r - 1, r - 2])


@vjp("MatMul")
def _matmul(b, n, a, g):
    x, w = n.input
    if b.rank(x) == 1 or b.rank(w) == 1:
        raise NotImplementedError("MatMul gradients need operands of rank 2 or more")
    gx = b.op("MatMul", [g[0], _swap_last(b, w)])
    gw = b.op("MatMul", [_swap_last(b, x), g[0]])
    return [b.sum_to(gx, x, gx_source(b, gx, x, n)), b.sum_to(gw, w, gx_source(b, gw, w, n))]


def gx_source(b, grad: str, target: str, node) -> str:
    """Batched MatMul broadcasts leading dimensions: record the cotangent's shape for sum_to."""
    out = b.shapes[node.output[0]]
    t = b.shapes[target]
    b.shapes[grad] = tuple(out[:-2]) + tuple(t[-2:])
    return grad


@vjp("Gemm")
def _gemm(b, n, a, g):
    x, w = n.input[:2]
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    ta, tb = a.get("transA", 0), a.get("transB", 0)
    gy = g[0] if alpha == 1.0 else b.op("Mul", [g[0], b.const(alpha)])
    # y = op(x) @ op(w): d op(x) = gy @ op(w).T, d op(w) = op(x).T @ gy
    gx = b.op("Gemm", [w, gy], transA=tb, transB=1) if ta else b.op("Gemm", [gy, w], transB=1 - tb)
    gw = b.op("Gemm", [gy, x], transA=1, transB=ta) if tb else b.op("Gemm", [x, gy], transA=1 - ta)
    out = [gx, gw]
    if len(n.input) > 2 and n.input[2]:
        gc = g[0] if beta == 1.0 else b.op("Mul", [g[0], b.const(beta)])
        out.append(b.sum_to(gc, n.input[2], n.output[0]))
    return out


# ---- reductions and normalizations ------------------------------------------------------------------------------

def _reduce_axes(b, n, a) -> list[int]:
    r = b.rank(n.input[0])
    if len(n.input) > 1 and n.input[1]:
        axes = b.constant_value(n.input[1]).tolist()
    else:
        axes = a.get("axes", list(range(r)))
    return sorted(ax % r for ax in axes)


def _expand_back(b, g: str, n, a) -> str:
    """Broadcast a reduced cotangent back over the reduced axes."""
    if not a.get("keepdims", 1):
        g = b.op("Unsqueeze", [g, b.axes(_reduce_axes(b, n, a))])
    return b.op("Expand", [g, b.shape_of(n.input[0])])


@vjp("ReduceSum")
def _reduce_sum(b, n, a, g):
    return [_expand_back(b, g[0], n, a)]


@vjp("ReduceMean")
def _reduce_mean(b, n, a, g):
    x = n.input[0]
    count = int(np.prod([b.shapes[x][ax] for ax in _reduce_axes(b, n, a)]))
    if count <= 0:
        raise NotImplementedError("ReduceMean gradient over the batch axis needs a static batch size")
    return [b.op("Div", [_expand_back(b, g[0], n, a), b.const(float(count))])]


@vjp("ReduceMax", "ReduceMin")
def _reduce_max(b, n, a, g):
    y = n.output[0] if a.get("keepdims", 1) else b.op("Unsqueeze", [n.output[0], b.axes(_reduce_axes(b, n, a))])
    hit = b.op("Cast", [b.op("Equal", [n.input[0], y])], to=TensorProto.FLOAT)
    # ties share the cotangent equally, as TensorFlow does
    ties = b.op("ReduceSum", [hit, b.axes(_reduce_axes(b, n, a))], keepdims=1)
    return [b.op("Mul", [_expand_back(b, g[0], n, a), b.op("Div", [hit, ties])])]


@vjp("Softmax")
def _softmax(b, n, a, g):
    y = n.output[0]
    axis = a.get("axis", -1)
    dot = b.op("ReduceSum", [b.op("Mul", [g[0], y]), b.axes([axis])], keepdims=1)
    return [b.op("Mul", [y, b.op("Sub", [g[0], dot])])]


@vjp("LogSoftmax")
def _log_softmax(b, n, a, g):
    axis = a.get("axis", -1)
    total = b.op("ReduceSum", [g[0], b.axes([axis])], keepdims=1)
    return [b.op("Sub", [g[0], b.op("Mul", [b.op("Exp", [n.output[0]]), total])])]


# ---- shape ops ------------------------------------------------------------------------------------------------

@vjp("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(b, n, a, g):
    return [b.op("Reshape", [g[0], b.shape_of(n.input[0])])]


@vjp("Transpose")
def _transpose(b, n, a, g):
    perm = a.get("perm", list(reversed(range(b.rank(n.input[0])))))
    return [b.op("Transpose", [g[0]], perm=list(np.argsort(perm)))]


@vjp("Expand")
def _expand(b, n, a, g):
    return [b.sum_to(g[0], n.input[0], n.output[0])]


@vjp("Concat")
def _concat(b, n, a, g):
    axis = a["axis"] % b.rank(n.output[0])
    sizes = [b.shapes[i][axis] for i in n.input]
    return b.op("Split", [g[0], b.axes(sizes)], outputs=len(sizes), axis=axis) if len(sizes) > 1 else [g[0]]


@vjp("Split")
def _split(b, n, a, g):
    axis = a.get("axis", 0)
    parts = [gi if gi is not None else b.zeros_like(o) for gi, o in zip(g, n.output)]
    return [b.op("Concat", parts, axis=axis)]


@vjp("Slice")
def _slice(b, n, a, g):
    """Pad the cotangent back to the input's shape (static starts/ends/steps of 1)."""
    x = n.input[0]
    shape = b.shapes[x]
    starts, ends = (b.constant_value(i).tolist() for i in n.input[1:3])
    axes = b.constant_value(n.input[3]).tolist() if len(n.input) > 3 and n.input[3] else list(range(len(starts)))
    steps = b.constant_value(n.input[4]).tolist() if len(n.input) > 4 and n.input[4] else [1] * len(starts)
    if any(s != 1 for s in steps):
        raise NotImplementedError("Slice gradients need steps of 1")
    pads = [0] * (2 * len(shape))
    for s, e, ax in zip(starts, ends, axes):
        ax %= len(shape)
        size = shape[ax]
        if size < 0:
            raise NotImplementedError("Slice gradients along the batch axis are not supported")
        s = max(0, min(size, s + size if s < 0 else s))
        e = max(0, min(size, e + size if e < 0 else e))
        pads[ax], pads[ax + len(shape)] = s, size - e
    return [b.op("Pad", [g[0], b.const(pads, np.int64)])]


@vjp("Gather")
def _gather(b, n, a, g):
    """Embedding lookups: scatter-add the cotangent rows into a zero table."""
    data, indices = n.input
    if a.get("axis", 0) != 0:
        raise NotImplementedError("Gather gradients are supported on axis 0")
    zeros = b.zeros_like(data)
    idx = b.op("Unsqueeze", [b.op("Cast", [indices], to=TensorProto.INT64), b.axes([-1])])
    return [b.op("ScatterND", [zeros, idx, g[0]], reduction="add"), None]


# ---- convolution and pooling ----------------------------------------------------------------------------------

@vjp("Conv")
def _conv(b, n, a, g):
    x, w = n.input[:2]
    xs, ws = b.shapes[x], b.shapes[w]
    spatial = len(xs) - 2
    strides = a.get("strides", [1] * spatial)
    dilations = a.get("dilations", [1] * spatial)
    pads = a.get("pads", [0] * 2 * spatial)
    group = a.get("group", 1)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv gradients need explicit pads")
    ys = b.shapes[n.output[0]]
    # input cotangent: the transposed convolution, with output_padding recovering the exact size
    out_pad = [xs[2 + i] - ((ys[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial]
                            + dilations[i] * (ws[2 + i] - 1) + 1) for i in range(spatial)]
    gx = b.op("ConvTranspose", [g[0], w], strides=strides, dilations=dilations, pads=pads, group=group,
              output_padding=out_pad)
    # kernel cotangent: correlate the input with the output cotangent, batch as channels
    if group != 1:
        raise NotImplementedError("Conv kernel gradients for groups > 1 are not supported")
    xt = b.op("Transpose", [x], perm=[1, 0] + list(range(2, 2 + spatial)))
    gt = b.op("Transpose", [g[0]], perm=[1, 0] + list(range(2, 2 + spatial)))
    gw = b.op("Conv", [xt, gt], strides=dilations, dilations=strides, pads=pads)
    # the correlation may run past the kernel when strides do not divide evenly: crop it
    gw = b.op("Slice", [gw, b.axes([0] * spatial), b.axes(ws[2:]), b.axes(list(range(2, 2 + spatial)))])
    gw = b.op("Transpose", [gw], perm=[1, 0] + list(range(2, 2 + spatial)))
    out = [gx, gw]
    if len(n.input) > 2:
        out.append(b.op("ReduceSum", [g[0], b.axes([0] + list(range(2, 2 + spatial)))], keepdims=0))
    return out


@vjp("MaxPool")
def _max_pool(b, n, a, g):
    """Route each cotangent to the cell that won its window (indices from a second MaxPool output)."""
    x = n.input[0]
    attrs = {k: v for k, v in a.items() if k != "storage_order"}
    _, indices = b.op("MaxPool", [x], outputs=2, **attrs)
    xs = b.shapes[x]
    batch_flat = b.op("Reshape", [b.zeros_like(x), b.const([xs[0] if xs[0] > 0 else -1, int(np.prod(xs[1:]))], np.int64)])
    # indices count over the whole tensor (n*c*h*w); make them per sample
    per_sample = b.op("Mod", [indices, b.const(int(np.prod(xs[1:])), np.int64)])
    ys = b.shapes[n.output[0]]
    flat_idx = b.op("Reshape", [per_sample, b.const([-1, int(np.prod(ys[1:]))], np.int64)])
    flat_g = b.op("Reshape", [g[0], b.const([-1, int(np.prod(ys[1:]))], np.int64)])
    scattered = b.op("ScatterElements", [batch_flat, flat_idx, flat_g], axis=1, reduction="add")
    return [b.op("Reshape", [scattered, b.shape_of(x)])]


@vjp("AveragePool")
def _average_pool(b, n, a, g):
    """Spread each cotangent evenly over its window: a depthwise transposed convolution of ones."""
    x = n.input[0]
    xs = b.shapes[x]
    channels, spatial = xs[1], len(xs) - 2
    kernel = a["kernel_shape"]
    strides = a.get("strides", [1] * spatial)
    pads = a.get("pads", [0] * 2 * spatial)
    ones = b.const(np.ones([channels, 1, *kernel], np.float32))
    ys = b.shapes[n.output[0]]
    count = _window_counts(xs[2:], ys[2:], kernel, strides, pads, a.get("count_include_pad", 0))
    scaled = b.op("Div", [g[0], b.const(count)])
    out_pad = [xs[2 + i] - ((ys[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial] + kernel[i])
               for i in range(spatial)]
    return [b.op("ConvTranspose", [scaled, ones], strides=strides, pads=pads, group=channels,
                 output_padding=out_pad)]


def _window_counts(in_shape, out_shape, kernel, strides, pads, include_pad) -> np.ndarray:
    """How many cells each pooling window averages (padding excluded unless include_pad)."""
    spatial = len(in_shape)
    counts = np.ones(out_shape, np.float32)
    for d in range(spatial):
        starts = np.arange(out_shape[d]) * strides[d] - pads[d]
        ends = starts + kernel[d]
        if include_pad:
            size = np.full(out_shape[d], kernel[d])
        else:
            size = np.minimum(ends, in_shape[d]) - np.maximum(starts, 0)
        shape = [1] * spatial
        shape[d] = out_shape[d]
        counts = counts * size.reshape(shape)
    return counts
