"""The primitive graph: variables, equations and the `bind` step every primitive call goes through.

A layer expansion calls primitives on `Var`s (`relu(x @ kernel + bias)`); each call appends one
equation to the graph, after three chances to emit less:
- a primitive's `rewrite` rule (transposes cancel, or sink below elementwise ops and reductions,
  so a conv stack stays channels-first between its first and last transpose);
- constant folding with the primitive's numpy `impl` when every input is a constant (weights in
  an inference graph: a conv kernel is stored already transposed, not transposed at run time);
  a large fold of a weight still in its file is `Deferred`: computed when it is written;
- common-subexpression reuse (two layers transposing the same tensor share one transpose).
Nothing is ONNX-specific here; `emit.py` lowers the live equations to ONNX nodes.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np


class Aval(NamedTuple):
    """Abstract value: the full shape (batch first; None where unknown until run time) and dtype."""

    shape: tuple[int | None, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)


class Deferred:
    """A large constant computed when it is written, not when traced: a weight still in its file
    (anything numpy converts, such as an HDF5 dataset), or a fold of one (a conv kernel transposed
    and scaled by a batch normalization). The graph holds only the recipe, so the writer can hold
    one weight at a time; each conversion to an array computes it again."""

    __slots__ = ("compute", "aval")

    def __init__(self, compute: Callable[[], Any], aval: Aval):
        self.compute, self.aval = compute, aval

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = np.asarray(self.compute(), dtype=self.aval.dtype)
        if array.shape != self.aval.shape:
            raise ValueError(f"a deferred constant computed shape {array.shape}, not {self.aval.shape}")
        return array if dtype is None else array.astype(dtype, copy=False)


DEFER_ELEMENTS = 4096  # smaller folds are computed at once: cheap, and rewrite rules may read them


def weight(value: Any, dtype: str) -> np.ndarray | Deferred:
    """A weight array as it is; anything else numpy converts (a dataset still in its file) Deferred."""
    if isinstance(value, np.ndarray) or not hasattr(value, "__array__"):
        return np.asarray(value, dtype)
    return Deferred(lambda: np.asarray(value, dtype), Aval(tuple(value.shape), dtype))


class Var:
    """A tensor in the graph: a model input, a constant (`value`: an array, or a Deferred that
    np.asarray computes), or an equation's output."""

    __slots__ = ("graph", "aval", "eqn", "value", "hint")

    def __init__(self, graph: "Graph", aval: Aval, eqn: "Eqn | None" = None,
                 value: np.ndarray | Deferred | None = None,
                 hint: str | None = None):
        self.graph, self.aval, self.eqn, self.value, self.hint = graph, aval, eqn, value, hint

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    rank = property(lambda self: self.aval.rank)

    @property
    def is_const(self) -> bool:
        return self.value is not None

    def __repr__(self) -> str:
        return f"Var({self.hint or (self.eqn.prim.name if self.eqn else 'input')}, {self.aval})"

    # Arithmetic reads like the formulas it implements: `0.5 * x * (1.0 + erf(x / sqrt2))`.
    def __add__(self, other): return _prims().add(self, other)
    def __radd__(self, other): return _prims().add(other, self)
    def __sub__(self, other): return _prims().sub(self, other)
    def __rsub__(self, other): return _prims().sub(other, self)
    def __mul__(self, other): return _prims().mul(self, other)
    def __rmul__(self, other): return _prims().mul(other, self)
    def __truediv__(self, other): return _prims().div(self, other)
    def __rtruediv__(self, other): return _prims().div(other, self)
    def __pow__(self, other): return _prims().pow(self, other)
    def __rpow__(self, other): return _prims().pow(other, self)
    def __neg__(self): return _prims().neg(self)
    def __matmul__(self, other): return _prims().matmul(self, other)


def _prims():
    from . import primitives

    return primitives


@dataclass(eq=False)
class Eqn:
    prim: "Primitive"
    inputs: list[Var | None]  # None: an optional input left out (a Conv without bias)
    params: dict[str, Any]
    outputs: list[Var]
    scope: str  # the layer it belongs to: ONNX node and tensor names start with it


class Primitive:
    """One operation: its shape/dtype rule, its lowering to ONNX, and optional extras.

    shape(*avals, **params) -> Aval or list of Avals (multiple_results)
    lower(ctx, *input_names, **params) -> output name(s); see emit.Emitter
    impl(*arrays, **params) -> array: numpy, for folding constants
    rewrite(*vars, **params) -> Var(s) or None: an equivalent cheaper expression, or None
    vjp(cotangents, *inputs, outputs=..., **params) -> input cotangents, written in primitives
        (the slot autograd fills; None until then)
    """

    def __init__(self, name: str, shape: Callable, lower: Callable | None = None, impl: Callable | None = None,
                 rewrite: Callable | None = None, multiple_results: bool = False):
        self.name, self.shape, self.lower, self.impl, self.rewrite = name, shape, lower, impl, rewrite
        self.multiple_results = multiple_results
        self.vjp: Callable | None = None

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args: Any, **params: Any) -> Any:
        graph = next(a.graph for a in args if isinstance(a, Var))
        return graph.bind(self, args, params)


@dataclass(eq=False)
class Graph:
    """Equations in the order they were traced (a topological order)."""

    eqns: list[Eqn] = field(default_factory=list)
    inputs: list[Var] = field(default_factory=list)
    _scope: str = ""
    _seen: dict = field(default_factory=dict)  # (primitive, inputs, params) -> outputs, for reuse

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        outer, self._scope = self._scope, name
        try:
            yield
        finally:
            self._scope = outer

    def input(self, name: str, shape: tuple[int | None, ...], dtype: str) -> Var:
        var = Var(self, Aval(tuple(shape), dtype), hint=name)
        self.inputs.append(var)
        return var

    def const(self, value: Any, dtype: str | None = None, hint: str | None = None) -> Var:
        if isinstance(value, Deferred):
            return Var(self, value.aval, value=value, hint=hint)
        array = np.asarray(value, dtype=dtype)
        return Var(self, Aval(array.shape, str(array.dtype)), value=array, hint=hint)

    def bind(self, prim: Primitive, args: tuple, params: dict) -> Any:
        # A Python number takes the dtype of the tensors it meets (a boolean condition aside).
        dtype = next((a.dtype for a in args if isinstance(a, Var) and a.dtype != "bool"), "bool")
        ins = [a if a is None or isinstance(a, Var) else self.const(a, dtype) for a in args]
        if prim.rewrite is not None:
            out = prim.rewrite(*ins, **params)
            if out is not None:
                return out
        avals = prim.shape(*[None if v is None else v.aval for v in ins], **params)
        avals = avals if prim.multiple_results else [avals]
        if prim.impl is not None and all(v is not None and v.is_const for v in ins):
            hint = next((v.hint for v in ins if v.hint), None)
            if _defers(prim, ins, avals):
                fold = Deferred(lambda: prim.impl(*[np.asarray(v.value) for v in ins], **params), avals[0])
                return self.const(fold, hint=hint)
            values = prim.impl(*[np.asarray(v.value) for v in ins], **params)
            values = values if prim.multiple_results else [values]
            outs = [self.const(np.asarray(x, a.dtype), hint=hint) for x, a in zip(values, avals)]
        else:
            key = (prim, tuple(id(v) for v in ins), _freeze(params))
            if key in self._seen:
                outs = self._seen[key]
            else:
                eqn = Eqn(prim, ins, params, [], self._scope)
                eqn.outputs = outs = [Var(self, a, eqn) for a in avals]
                self.eqns.append(eqn)
                self._seen[key] = outs  # the key holds ids of inputs the equation keeps alive
        return outs if prim.multiple_results else outs[0]


def _defers(prim: Primitive, ins: list[Var], avals: list[Aval]) -> bool:
    return (not prim.multiple_results and any(isinstance(v.value, Deferred) for v in ins)
            and int(np.prod(avals[0].shape)) >= DEFER_ELEMENTS)


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def live_equations(graph: Graph, outputs: list[Var]) -> list[Eqn]:
    """The equations the outputs depend on, in trace order: dead code never reaches the file."""
    live, stack = set(), [v.eqn for v in outputs if v.eqn is not None]
    while stack:
        eqn = stack.pop()
        if id(eqn) in live:
            continue
        live.add(id(eqn))
        stack.extend(v.eqn for v in eqn.inputs if v is not None and v.eqn is not None)
    return [e for e in graph.eqns if id(e) in live]
