"""A Keras SimpleRNN as tf2onnx writes it: an ONNX Loop over the time steps whose body is

    h' = act(x[t] @ W + b + h @ U);  t' = t + 1;  cond' = t' < T;  scan output: h'

with x the time-major input (an outer value), h starting at zeros, and W, b, U constants passed
through the loop. The body is matched as an expression, whatever the order of its nodes."""
from __future__ import annotations

import numpy as np
import onnx

from .lift_graph import Probe, Tensor, View
from .lift_ops import ACTIVATION_OPS, _attrs, _zeros


class _Body:
    """The loop body's values as expressions: ("in", k), ("const", array), ("outer", value) or a node."""

    def __init__(self, lf, graph: onnx.GraphProto):
        self.lf = lf
        self.inputs = {vi.name: k for k, vi in enumerate(graph.input)}
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = {o: n for n in graph.node for o in n.output}

    def get(self, name: str):
        while name in self.nodes and self.nodes[name].op_type == "Identity":
            name = self.nodes[name].input[0]
        if name in self.inputs:
            return ("in", self.inputs[name])
        if name in self.consts:
            return ("const", self.consts[name])
        if name in self.nodes:
            return self.nodes[name]
        return ("outer", self.lf.value(name))

    def terms(self, name: str) -> list:
        """The operands of a tree of Adds."""
        e = self.get(name)
        if isinstance(e, onnx.NodeProto) and e.op_type == "Add":
            return self.terms(e.input[0]) + self.terms(e.input[1])
        return [e]


def simple_rnn_loop(lf, node: onnx.NodeProto) -> None:
    body = _Body(lf, _attrs(node)["body"])
    graph = _attrs(node)["body"]
    carried = len(graph.input) - 2
    init = [lf.value(n) for n in node.input[2:2 + carried]]
    outs = [o.name for o in graph.output]
    if len(outs) != 2 + carried:
        raise lf.fail("a Loop with other than one scan output is not a SimpleRNN")

    def constant(e):
        """A constant, or a loop-carried value passed through unchanged from a constant."""
        if e[0] == "const" or (e[0] == "outer" and isinstance(e[1], np.ndarray)):
            return e[1]
        if e[0] == "in" and e[1] >= 2 and body.get(outs[e[1] - 1]) == e and isinstance(init[e[1] - 2], np.ndarray):
            return init[e[1] - 2]
        return None

    state = next((k for k in range(carried) if isinstance(body.get(outs[1 + k]), onnx.NodeProto)
                  and body.get(outs[1 + k]).op_type in ACTIVATION_OPS and _zeros(init[k])), None)
    if state is None or body.get(outs[-1]) is not body.get(outs[1 + state]):
        raise lf.fail("the Loop body is not a SimpleRNN step (no state updated by an activation)")
    act = body.get(outs[1 + state])
    fn = ACTIVATION_OPS[act.op_type](_attrs(act))
    kernel = recurrent = bias = x = None
    counter = None
    for term in body.terms(act.input[0]):
        if isinstance(term, onnx.NodeProto) and term.op_type == "MatMul":
            left, right = body.get(term.input[0]), constant(body.get(term.input[1]))
            if left == ("in", 2 + state):
                recurrent = right
            elif isinstance(left, onnx.NodeProto) and left.op_type == "Gather":
                x, counter = body.get(left.input[0]), body.get(left.input[1])
                kernel = right
        elif constant(term) is not None:
            bias = constant(term)
    if kernel is None or recurrent is None or fn is None or x[0] != "outer" or not isinstance(x[1], View):
        raise lf.fail("the Loop body is not a SimpleRNN step (x[t] @ W + b + h @ U)")
    x = x[1]
    steps = x.tensor.shape[0]
    step = counter[1] - 2 if counter[0] == "in" else None
    advance = body.get(outs[1 + step]) if step is not None and step >= 0 else None
    if not (isinstance(advance, onnx.NodeProto) and advance.op_type == "Add" and _counts_from_zero(init[step])
            and _runs(lf, node, init, steps)):
        raise lf.fail("the Loop does not step once through every time step")
    if x.tensor.rank != 3 or not x.fits([1, 0, 2]):
        raise lf.fail("the Loop's sequence is not time-major")
    units = recurrent.shape[0]
    fields = {"units": units, "activation": fn, "use_bias": bias is not None}
    weights = {"kernel": kernel, "recurrent_kernel": recurrent}
    if bias is not None:
        weights["bias"] = np.broadcast_to(bias, (units,)).astype(np.float32)
    rec = lf.record("SimpleRNN", fields, weights, [x.tensor])
    seq = rec.output((steps, units))
    rec.states = [Tensor((units,), "float32", rec)]
    lf.values[node.output[state]] = View(rec.states[0], (0, 1))
    lf.values[node.output[carried]] = View(seq, (1, 0, 2))


def _counts_from_zero(value) -> bool:
    return isinstance(value, np.ndarray) and value.size == 1 and value.item() == 0


def _runs(lf, node, init, steps) -> bool:
    """The trip count and the carried bound allow exactly `steps` iterations (checked loosely:
    no trip count or one of at least `steps`, and some carried value equal to `steps`)."""
    trip = lf.value(node.input[0]) if node.input[0] else None
    if trip is not None and not (isinstance(trip, np.ndarray) and trip.item() >= (steps or 0)):
        return False
    return any(isinstance(v, (np.ndarray, Probe)) and all(np.size(a) == 1 and int(np.asarray(a).item()) == steps
               for a in (v.values if isinstance(v, Probe) else (v,))) for v in init)
