"""Reverse-mode differentiation of a traced primitive graph.

Walks the equations that lead to the outputs in reverse, asks each primitive's `vjp` (defined beside it in
primitives/) for the cotangents of its inputs and sums the cotangents that meet. The backward equations join
the same graph, so one lowering emits forward and backward together.
"""
from __future__ import annotations

from . import primitives as P
from .graph import Graph, Var, live_equations

# Piecewise-constant or integer-valued: their inputs receive no gradient.
ZERO_GRADIENT = {P.floor, P.ceil, P.sign, P.argmax, P.equal, P.ne, P.greater, P.greater_equal, P.less,
                 P.logical_and, P.max_pool_indices, P.zeros, P.size}


def grad(graph: Graph, loss: Var, wrt: list[Var]) -> list[Var | None]:
    """d loss / d v for each v in `wrt` (None where the loss does not depend on it)."""
    return vjp(graph, [loss], [graph.const(1.0, "float32")], wrt)


def vjp(graph: Graph, outputs: list[Var], seeds: list[Var | None], wrt: list[Var]) -> list[Var | None]:
    """The cotangent of each v in `wrt` (inputs or intermediates) given the outputs' cotangents `seeds`
    (None: no cotangent)."""
    eqns = live_equations(graph, outputs)
    depends = {id(v) for v in wrt}
    for eqn in eqns:
        if eqn.prim not in ZERO_GRADIENT and any(v is not None and id(v) in depends for v in eqn.inputs):
            depends.update(id(o) for o in eqn.outputs)
    cotangents: dict[int, Var] = {}
    for v, c in zip(outputs, seeds):
        if c is not None:
            cotangents[id(v)] = c if id(v) not in cotangents else cotangents[id(v)] + c
    wanted, found = {id(v) for v in wrt}, {}  # an intermediate in `wrt`: its cotangent once complete
    for eqn in reversed(eqns):
        outs = [cotangents.pop(id(o), None) for o in eqn.outputs]
        found.update((id(o), c) for o, c in zip(eqn.outputs, outs) if id(o) in wanted)
        if all(c is None for c in outs) or eqn.prim in ZERO_GRADIENT:
            continue
        if not any(v is not None and id(v) in depends for v in eqn.inputs):
            continue
        if eqn.prim.vjp is None:
            raise NotImplementedError(f"no gradient for primitive '{eqn.prim.name}' (layer {eqn.scope})")
        with graph.scope(f"{eqn.scope}/grad" if eqn.scope else "grad"):
            ins = eqn.prim.vjp(outs, *eqn.inputs, outputs=eqn.outputs, **eqn.params)
            for v, c in zip(eqn.inputs, ins):
                if v is None or c is None or id(v) not in depends:
                    continue
                previous = cotangents.get(id(v))
                cotangents[id(v)] = c if previous is None else previous + c
    return [found[id(v)] if id(v) in found else cotangents.get(id(v)) for v in wrt]
