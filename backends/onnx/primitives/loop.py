"""A recurrence as one ONNX Scan, and its VJP as a second Scan that runs the steps backwards.

Unrolled, a loop of T steps is T copies of its step's nodes forward and more backward, and
onnxruntime's session creation grows faster than linearly with the node count (two LSTM(128)
layers over 100 steps: 12,403 nodes, 30 s to a session). A Scan holds the step once. Only
training and evaluation graphs use it: model files written for users stay free of Loop/Scan.

The step is a Python function traced once on per-step shapes into its own primitive graph (a
`Body`): step(carry, xs, consts) -> (new carry, ys), where xs are one time step of each sequence
and consts (weights) are read from the outer graph. The backward step recomputes the forward step
from the carry saved at each step (the forward Scan's `residuals`) rather than storing every
intermediate, and sums the consts' cotangents over the steps in its own carry. A step that knows its
own gradient (`Body.vjp`: the LSTM and GRU cells in recurrent.py) stacks what that needs as ys and
skips the recomputation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ....ir.base import ShapeError
from ..emit import Emitter, lower_graph
from ..graph import Aval, Graph, Primitive, Var
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import defvjp

Step = Callable[[list[Var], list[Var], list[Var]], tuple[list[Var], list[Var]]]


@dataclass(eq=False)
class Body:
    step: Step
    graph: Graph
    carry: list[Var]
    xs: list[Var]
    consts: list[Var]
    new_carry: list[Var]
    ys: list[Var]
    # the scan's VJP for this step, vjp(cts, *ins, outputs=...), in place of recomputing the step
    vjp: Callable | None = None


def trace_body(step: Step, carry: list[Aval], xs: list[Aval], consts: list[Aval]) -> Body:
    graph = Graph()
    ins = [[graph.input(f"{kind}{i}", a.shape, a.dtype) for i, a in enumerate(avals)]
           for kind, avals in (("carry", carry), ("x", xs), ("const", consts))]
    new_carry, ys = step(*ins)
    return Body(step, graph, *ins, list(new_carry), list(ys))


def _stacked(a: Aval, axis: int, steps: int | None) -> Aval:
    return Aval(a.shape[:axis] + (steps,) + a.shape[axis:], a.dtype)


def _scan_shape(*avals, body: Body, axis: int, in_reverse, out_reverse, residuals: bool):
    steps = avals[len(body.carry)].shape[axis]
    stacked = body.ys + (body.carry if residuals else [])
    return [v.aval for v in body.new_carry] + [_stacked(v.aval, axis, steps) for v in stacked]


def _scan_lower(ctx, *names, body: Body, axis: int, in_reverse, out_reverse, residuals: bool):
    n_carry, n_xs = len(body.carry), len(body.xs)
    node = ctx.fresh(f"{ctx.scope}/Scan" if ctx.scope else "Scan")
    sub = Emitter(ctx.opset, prefix=f"{node}/")
    inner = {id(v): sub.fresh(v.hint) for v in body.carry + body.xs}
    inner.update({id(v): outer for v, outer in zip(body.consts, names[n_carry + n_xs:])})  # outer-scope reads
    results = body.new_carry + body.ys + (body.carry if residuals else [])
    outputs = {sub.fresh(f"out{i}"): v for i, v in enumerate(results)}
    graph = lower_graph(sub, body.graph, inner, outputs, "step", inputs=body.carry + body.xs)
    n_stacked = len(results) - n_carry
    return ctx.op("Scan", *names[:n_carry + n_xs], outputs=len(results), body=graph, num_scan_inputs=n_xs,
                  scan_input_axes=[axis] * n_xs, scan_input_directions=[int(r) for r in in_reverse],
                  scan_output_axes=[axis] * n_stacked,
                  scan_output_directions=[int(r) for r in out_reverse] + [0] * (n_stacked - len(out_reverse)))


# scan(*carry, *sequences, *consts) -> final carry, each y stacked along `axis` (and with `residuals`,
# the carry each step started from, in processing order): `in_reverse` per sequence, `out_reverse` per y
scan = Primitive("scan", _scan_shape, _scan_lower, multiple_results=True)


@defvjp(scan)
def _scan(cts, *ins, outputs, body: Body, axis: int, in_reverse, out_reverse, residuals: bool):
    from ..autograd import vjp

    if body.vjp is not None:
        return body.vjp(cts, *ins, outputs=outputs)
    n_carry, n_xs, n_ys = len(body.carry), len(body.xs), len(body.ys)
    if not residuals or any(c is not None for c in cts[n_carry + n_ys:]):
        raise ShapeError("the gradient of a scan needs the carry of every step (residuals) and none of theirs")
    seqs, consts = ins[n_carry:n_carry + n_xs], ins[n_carry + n_xs:]
    present = [j for j in range(n_ys) if cts[n_carry + j] is not None]
    real = [i for i, v in enumerate(body.xs) if v.dtype != "bool"]  # a mask takes no cotangent
    by_products = [i for i, k in enumerate(body.consts) if _products(body.graph, k) is not None]
    summed = [i for i in range(len(consts)) if i not in by_products]
    pairs: list[int] = []  # per const in by_products, how many products read it

    def backward(carry, xs, ks):
        ct_carry, sums = carry[:n_carry], carry[n_carry:]
        ct_ys, x, started = xs[:len(present)], xs[len(present):len(present) + n_xs], xs[len(present) + n_xs:]
        new_carry, ys = body.step(started, x, ks)
        products = [_products(x[0].graph, ks[i]) for i in by_products]
        pairs[:] = [len(p) for p in products]
        wrt = started + [x[i] for i in real] + [ks[i] for i in summed] + [m for p in products for _, m in p]
        d = vjp(x[0].graph, new_carry + [ys[j] for j in present], ct_carry + ct_ys, wrt)
        d = [_zeros_as(v) if c is None else c for c, v in zip(d, wrt)]
        d_carry, d_x = d[:n_carry], d[n_carry:n_carry + len(real)]
        d_ks, d_products = d[n_carry + len(real):n_carry + len(real) + len(summed)], d[n_carry + len(real) + len(summed):]
        factors = [a for p in products for a, _ in p]
        return d_carry + [s + c for s, c in zip(sums, d_ks)], d_x + [v for pair in zip(factors, d_products) for v in pair]

    carry_avals, const_avals = [v.aval for v in body.carry], [k.aval for k in consts]
    back = trace_body(backward, carry_avals + [const_avals[i] for i in summed],
                      [body.ys[j].aval for j in present] + [v.aval for v in body.xs] + carry_avals, const_avals)
    final = [_zeros_as(v) if c is None else c for c, v in zip(cts[:n_carry], outputs[:n_carry])]
    sums = [consts[i].graph.const(np.zeros(consts[i].shape, np.float32)) for i in summed]
    n_pairs = sum(pairs)
    outs = scan(*final, *sums, *[cts[n_carry + j] for j in present], *seqs, *outputs[n_carry + n_ys:], *consts,
                body=back, axis=axis,
                in_reverse=tuple(not out_reverse[j] for j in present) + tuple(not r for r in in_reverse)
                + (True,) * n_carry,
                out_reverse=tuple(not in_reverse[i] for i in real) + (False,) * (2 * n_pairs), residuals=False)
    stacked = outs[n_carry + len(summed) + len(real):]
    d_ks = dict(zip(summed, outs[n_carry:n_carry + len(summed)]))
    for i, count in zip(by_products, pairs):  # sum_t a_t^T g_t as one product over every step
        taken, stacked = stacked[:2 * count], stacked[2 * count:]
        for a, g in zip(taken[::2], taken[1::2]):
            a, g = (P.reshape(v, shape=(-1, v.shape[-1])) for v in (a, g))
            d = P.transpose(a, perm=(1, 0)) @ g
            d_ks[i] = d if i not in d_ks else d_ks[i] + d
    d_xs = dict(zip(real, outs[n_carry + len(summed):n_carry + len(summed) + len(real)]))
    return outs[:n_carry] + [d_xs.get(i) for i in range(n_xs)] + [d_ks[i] for i in range(len(consts))]


def _products(graph: Graph, k: Var) -> list[tuple[Var, Var]] | None:
    """(a, a @ k) for every use of k in the step when each is a product of a matrix with k, else None:
    then k's cotangent, sum over steps of a^T d(a @ k), is one product over the stacked steps."""
    uses = [e for e in graph.eqns if any(v is k for v in e.inputs)]
    if not uses or k.rank != 2 or any(e.prim is not P.matmul or e.inputs[1] is not k or e.inputs[0] is k
                                      or e.inputs[0].rank != 2 for e in uses):
        return None
    return [(e.inputs[0], e.outputs[0]) for e in uses]


def _zeros_as(v: Var) -> Var:
    if None in v.shape[1:]:
        raise ShapeError("a scan's carry and step inputs need known sizes after the batch dimension")
    return P.zeros(v, shape=(0, *v.shape[1:])) if v.shape[0] is None else v.graph.const(np.zeros(v.shape, np.float32))
