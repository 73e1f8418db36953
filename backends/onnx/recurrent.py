"""SimpleRNN, GRU, LSTM and Bidirectional.

Two lowerings that give the same numbers (tests hold both to the numpy reference):
- fused: one ONNX RNN/GRU/LSTM node, gates reordered from Keras's to ONNX's. Under a Keras mask the
  kept steps are gathered to the front and counted as the node's `sequence_lens`, and the outputs
  gathered back to their steps: exact for every mask pattern (pre- and post-padding, holes);
- unrolled: the Keras loop step by step in primitives, exact for any mask but needing a known
  sequence length. Used where an activation has no ONNX RNN name, and without fusion;
- scanned: in step and evaluation graphs (weights are graph inputs) the same loop is one ONNX Scan
  (primitives/loop.py), its gradient a Scan backwards: the step's nodes once, not once per time
  step. An unmasked LSTM or GRU (reset_after) runs time-major and stacks what its own VJP needs,
  whose backward Scan then holds only the recurrence of the states' cotangents. Model files
  written for users never hold a Scan.

A missing state (before the first step) is None rather than a zeros tensor: a zeros tensor
would need the batch size, which is only known at run time.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from ...ir.layers import _Recurrent
from . import primitives as P
from .activations import ROW_WISE, activation, rnn_activations
from .graph import Aval, Var
from .layers import FUSED, LayerCall, expands

GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
ONNX_GATE_ORDER = {"SimpleRNN": (0,), "GRU": (0, 1, 2), "LSTM": (0, 3, 1, 2)}  # Keras [i f c o] -> ONNX [i o f c]
STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}


def _plus(*terms: Var | None) -> Var | None:
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else None


def _times(a: Var, b: Var | None) -> Var | None:
    return None if b is None else a * b


def _gates(v: Var | None, units: int, n: int) -> list[Var | None]:
    if v is None:
        return [None] * n
    return P.split(v, axis=v.rank - 1, sizes=(units,) * n) if n > 1 else [v]


def _weights(layer: _Recurrent, ws: list[Var]) -> tuple[Var, Var, Var | None]:
    return ws[0], ws[1], ws[2] if layer.use_bias else None


# ---- unrolled --------------------------------------------------------------------------------

# step(p, states) -> (output, new states), p being the step's input projection (`projection`), the
# part of the gates that does not depend on the states: one product for every step at once in a Scan
Step = Callable[[Var, list[Var | None]], tuple[Var, list[Var]]]


def _bias_parts(layer: _Recurrent, bias: Var | None) -> tuple[Var | None, Var | None]:
    """(input bias, recurrent bias): GRU reset_after keeps them as the rows of a (2, 3u) bias."""
    if bias is not None and layer.type == "GRU" and layer.reset_after:
        return tuple(P.reshape(P.slice_(bias, axis=0, start=i, stop=i + 1), shape=(-1,)) for i in (0, 1))
    return bias, None


def projection(layer: _Recurrent, ws: list[Var], x: Var) -> Var:
    kernel, _, bias = _weights(layer, ws)
    return _plus(x @ kernel, _bias_parts(layer, bias)[0])


def recurrence(layer: _Recurrent, ws: list[Var]) -> list[Var]:
    """The weights a step reads: the recurrent kernel, and GRU reset_after's recurrent bias."""
    _, recurrent, bias = _weights(layer, ws)
    b_rec = _bias_parts(layer, bias)[1]
    return [recurrent] if b_rec is None else [recurrent, b_rec]


def _simple_rnn_cell(layer, weights) -> Step:
    (recurrent,) = weights

    def step(p, states):
        (h,) = states
        h = activation(layer.activation, _plus(p, None if h is None else h @ recurrent))
        return h, [h]
    return step


def _gru_step(layer: _Recurrent, recurrent: Var, b_rec: Var | None, p: Var, h: Var | None) -> tuple[Var | None, Var]:
    """Columns [z | r | h]; reset_after: bias (2, 3u) = input bias, recurrent bias, and the
    candidate is act(x Wh + b_in + r * (h Uh + b_rec)); otherwise act(x Wh + b + (r * h) Uh).
    (h U (+ b_rec), the new h)."""
    u = layer.units
    xz, xr, xh = _gates(p, u, 3)
    q = None if h is None else h @ recurrent
    if layer.reset_after:
        q = _plus(q, b_rec)
        hz, hr, hh = _gates(q, u, 3)
    else:
        hz, hr, _ = _gates(q, u, 3)
    z = activation(layer.recurrent_activation, _plus(xz, hz))
    r = activation(layer.recurrent_activation, _plus(xr, hr))
    if layer.reset_after:
        candidate = _plus(xh, _times(r, hh))
    else:
        candidate = _plus(xh, None if h is None else (r * h) @ P.slice_(recurrent, axis=1, start=2 * u, stop=3 * u))
    return q, _plus(_times(z, h), (1.0 - z) * activation(layer.activation, candidate))


def _gru_cell(layer, weights) -> Step:
    recurrent, b_rec = weights[0], weights[1] if len(weights) > 1 else None

    def step(p, states):
        _, h = _gru_step(layer, recurrent, b_rec, p, *states)
        return h, [h]
    return step


def _lstm_step(layer: _Recurrent, recurrent: Var, p: Var, h: Var | None, cell: Var | None) -> tuple[Var, Var, Var]:
    """Columns [i | f | c | o]: (the gates before their activations, h, c)."""
    z = _plus(p, None if h is None else h @ recurrent)
    i, f, g, o = _gates(z, layer.units, 4)
    gate = lambda v: activation(layer.recurrent_activation, v)
    cell = _plus(_times(gate(f), cell), gate(i) * activation(layer.activation, g))
    return z, gate(o) * activation(layer.activation, cell), cell


def _lstm_cell(layer, weights) -> Step:
    """States [h, c]."""
    (recurrent,) = weights

    def step(p, states):
        _, h, cell = _lstm_step(layer, recurrent, p, *states)
        return h, [h, cell]
    return step


CELLS: dict[str, Callable[[_Recurrent, list[Var]], Step]] = {
    "SimpleRNN": _simple_rnn_cell, "GRU": _gru_cell, "LSTM": _lstm_cell,
}


def unrolled(c: LayerCall, layer: _Recurrent, ws: list[Var], zero_output_for_mask: bool,
             initial: list[Var]) -> list[Var]:
    """Keras's RNN loop: masked steps keep the states and repeat the previous output (zeros
    before the first unmasked step, or always zeros with zero_output_for_mask, as in
    Bidirectional); go_backwards gives the outputs in processing order. `initial`: the
    initial states (Keras's initial_state), or none."""
    x, mask = c.x, c.mask
    if x.shape[1] is None:
        raise c.fail("an unrolled recurrent layer needs a known sequence length")
    states: list[Var | None] = list(initial) or [None] * STATES[layer.type]
    carried = c.train is not None and layer.stateful and not initial  # a stateful layer starts where the last batch ended
    key = c.layer.name if layer is c.layer else f"{c.layer.name}/{'backward' if layer.go_backwards else 'forward'}"
    if carried:
        states = [c.train.recurrent_state(key, i, layer.units) for i in range(len(states))]
    if not any(w.is_const for w in ws):  # weights are inputs: a step or evaluation graph
        outputs, states = _scanned(c, layer, ws, states, zero_output_for_mask)
    else:
        outputs, states = _unrolled_steps(c, layer, ws, states, zero_output_for_mask)
    if carried:
        for i, v in enumerate(states):
            c.train.carry_state(key, i, v)
    return [outputs, *states] if layer.return_state else [outputs]


def _masked(keep: Var, y: Var, new: list[Var], states: list[Var | None], previous: Var | None,
            zero_output_for_mask: bool) -> tuple[Var, list[Var]]:
    """A masked step keeps the states and repeats the previous output (or gives zeros)."""
    new = [P.where(keep, a, 0.0 if b is None else b) for a, b in zip(new, states)]
    return P.where(keep, y, 0.0 if zero_output_for_mask or previous is None else previous), new


def _scanned(c: LayerCall, layer: _Recurrent, ws: list[Var], states: list[Var | None],
             zero_output_for_mask: bool) -> tuple[Var, list[Var]]:
    """The loop as one Scan (primitives/loop.py): the step's nodes once, not once per time step.
    With a mask, the mask is a second sequence and the last output part of the carry."""
    x, mask, u, n = c.x, c.mask, layer.units, len(states)
    if (mask is None and layer.type in _STACKED and (layer.type != "GRU" or layer.reset_after)
            and not ROW_WISE & {layer.activation.name, layer.recurrent_activation.name}):
        return _stacked(layer, ws, x, states)
    p = projection(layer, ws, x)  # (batch, time, gates * units): one product for every step
    weights = recurrence(layer, ws)
    masked = mask is not None

    def step(carry, xs, weights):
        y, new = CELLS[layer.type](layer, weights)(xs[0], carry[:n])
        if masked:
            y, new = _masked(P.reshape(xs[1], shape=(-1, 1)), y, new, carry[:n], carry[n], zero_output_for_mask)
        return new + [y] * masked, [y]

    carry = [P.zeros(x, shape=(0, u)) if s is None else s for s in states] + [P.zeros(x, shape=(0, u))] * masked
    seqs = [p] if mask is None else [p, mask]
    body = P.trace_body(step, [Aval((None, u), "float32")] * len(carry),
                        [Aval((None, *v.shape[2:]), v.dtype) for v in seqs], [w.aval for w in weights])
    outs = P.scan(*carry, *seqs, *weights, body=body, axis=1, in_reverse=(layer.go_backwards,) * len(seqs),
                  out_reverse=(False,), residuals=True)
    ys, states = outs[len(carry)], outs[:n]
    return ys if layer.return_sequences else outs[n] if masked else states[0], states


def _stacked(layer: _Recurrent, ws: list[Var], x: Var, states: list[Var | None]) -> tuple[Var, list[Var]]:
    """An unmasked LSTM's or GRU's Scan also stacks what its VJP needs (`_STACKED`: the LSTM's c and
    gate pre-activations, the GRU's h U + b_rec), so that the gradient recomputes no step.
    Time-major: onnxruntime's Scan transposes every sequence scanned along another axis, in and out,
    each time it runs; stacked layers stay time-major in between (the transposes there cancel)."""
    u, n = layer.units, len(states)
    x = P.transpose(x, perm=(1, 0, 2))
    p = projection(layer, ws, x)  # (time, batch, gates * units)
    if layer.go_backwards:  # the steps in processing order, the order Keras gives the outputs in
        p = P.rev(p, axis=0)
    weights = recurrence(layer, ws)
    step, rule = _STACKED[layer.type]
    # the batch size read from the time-major input: read from the batch-major one, it would keep the
    # previous layer's transpose back to batch-major alive for its shape alone
    zeros = P.reshape(P.zeros(x, shape=(1, 0, u)), shape=(-1, u))
    carry = [zeros if s is None else s for s in states]
    body = P.trace_body(partial(step, layer), [Aval((None, u), "float32")] * n, [Aval((None, p.shape[-1]), "float32")],
                        [w.aval for w in weights])
    body.vjp = partial(rule, layer)
    outs = P.scan(*carry, p, *weights, body=body, axis=0, in_reverse=(False,), out_reverse=(False,), residuals=False)
    return P.transpose(outs[n], perm=(1, 0, 2)) if layer.return_sequences else outs[0], outs[:n]


def _lstm_stacking(layer, carry, xs, weights):
    z, h, cell = _lstm_step(layer, weights[0], xs[0], *carry)
    return [h, cell], [h, cell, z]


def _before(first: Var, seq: Var) -> Var:
    """Each step's previous value: `first`, then the (time-major) sequence but its last step."""
    return P.concat(P.unsqueeze(first, axis=0), P.slice_(seq, axis=0, start=0, stop=-1), axis=0)


def _chain(y: Var, x: Var, factor: Var) -> Var:
    """factor * dy/dx for an elementwise activation y(x), every step at once."""
    from .autograd import vjp

    return vjp(y.graph, [y], [factor], [x])[0]


def _rows(v: Var) -> Var:
    return P.reshape(v, shape=(-1, v.shape[-1]))


def _backward_scan(step, start: list[Var], seqs: list[Var], weights: list[Var]) -> list[Var]:
    """A Scan over the steps backwards, stacking its ys in time order."""
    body = P.trace_body(step, [Aval((None, *v.shape[1:]), "float32") for v in start],
                        [Aval((None, *v.shape[2:]), "float32") for v in seqs],
                        [w.aval for w in weights])
    return P.scan(*start, *seqs, *weights, body=body, axis=0, in_reverse=(True,) * len(seqs),
                  out_reverse=(True,) * len(body.ys), residuals=False)


def _lstm_vjp(layer: _Recurrent, cts, h0, c0, p, recurrent, outputs):
    """What does not depend on the incoming cotangents (the gate activations and their derivatives)
    is computed for every step at once; a backward Scan runs only the recurrence of dh and dc (a
    product with the recurrent kernel and four elementwise ops per step); the recurrent kernel's
    cotangent is one product over every step."""
    u = layer.units
    ct_h, ct_c, ct_hs = cts[:3]
    _, _, hs, cs, z = outputs
    gate = lambda v: activation(layer.recurrent_activation, v)
    act = lambda v: activation(layer.activation, v)
    zi, zf, zg, zo = _gates(z, u, 4)
    i, f, g, o = gate(zi), gate(zf), act(zg), gate(zo)
    act_c = act(cs)
    k_c = _chain(act_c, cs, o)  # dc += dh * k_c
    k = P.concat(_chain(i, zi, g), _chain(f, zf, _before(c0, cs)), _chain(g, zg, i), _chain(o, zo, act_c), axis=2)
    seqs = [k_c, k, f] + ([ct_hs] if ct_hs is not None else [])

    def step(carry, xs, weights):
        dh, dc = carry
        if ct_hs is not None:
            dh = dh + xs[3]
        dc = dc + dh * xs[0]
        dz = P.concat(dc, dc, dc, dh, axis=1) * xs[1]
        return [dz @ weights[0], dc * xs[2]], [dz]

    start = [P.zeros(h0, shape=(0, u)) if ct is None else ct for ct in (ct_h, ct_c)]
    dh0, dc0, dz = _backward_scan(step, start, seqs, [P.transpose(recurrent, perm=(1, 0))])
    return [dh0, dc0, dz, P.transpose(_rows(_before(h0, hs)), perm=(1, 0)) @ _rows(dz)]


def _gru_stacking(layer, carry, xs, weights):
    q, h = _gru_step(layer, weights[0], weights[1] if len(weights) > 1 else None, xs[0], *carry)
    return [h], [h, q]


def _gru_vjp(layer: _Recurrent, cts, h0, p, recurrent, *b_rec, outputs):
    """reset_after, as `_lstm_vjp`: every step's d(new h)/d(gates) at once, a backward Scan of dh
    alone (dh_prev = dh * z + (dh * k) U^T), the kernels' cotangents after it."""
    u = layer.units
    ct_h, ct_hs = cts[:2]
    _, hs, q = outputs
    gate = lambda v: activation(layer.recurrent_activation, v)
    h_prev = _before(h0, hs)
    (xz, xr, xh), (hz, hr, hh) = _gates(p, u, 3), _gates(q, u, 3)
    pre_z, pre_r = xz + hz, xr + hr
    z, r = gate(pre_z), gate(pre_r)
    pre_c = xh + r * hh
    candidate = activation(layer.activation, pre_c)
    k_c = _chain(candidate, pre_c, 1.0 - z)  # d pre_c = dh * k_c
    k_z, k_r = _chain(z, pre_z, h_prev - candidate), _chain(r, pre_r, k_c * hh)
    seqs = [P.concat(k_z, k_r, k_c * r, axis=2), z] + ([ct_hs] if ct_hs is not None else [])

    def step(carry, xs, weights):
        (dh,) = carry
        if ct_hs is not None:
            dh = dh + xs[2]
        dq = P.concat(dh, dh, dh, axis=1) * xs[0]
        return [dq @ weights[0] + dh * xs[1]], [dq, dh]

    start = [P.zeros(h0, shape=(0, u)) if ct_h is None else ct_h]
    dh0, dq, dh = _backward_scan(step, start, seqs, [P.transpose(recurrent, perm=(1, 0))])
    dp = P.concat(dh, dh, dh, axis=2) * P.concat(k_z, k_r, k_c, axis=2)
    d_rec = P.transpose(_rows(h_prev), perm=(1, 0)) @ _rows(dq)
    return [dh0, dp, d_rec] + [P.sum_to(dq, b.shape) for b in b_rec]


_STACKED = {"LSTM": (_lstm_stacking, _lstm_vjp), "GRU": (_gru_stacking, _gru_vjp)}


def _unrolled_steps(c: LayerCall, layer: _Recurrent, ws: list[Var], states: list[Var | None],
                    zero_output_for_mask: bool) -> tuple[Var, list[Var]]:
    x, mask = c.x, c.mask
    step = CELLS[layer.type](layer, recurrence(layer, ws))
    previous, outputs = None, []
    times = range(x.shape[1])
    for t in reversed(times) if layer.go_backwards else times:
        y, new = step(projection(layer, ws, P.reshape(P.slice_(x, axis=1, start=t, stop=t + 1), shape=(0, -1))), states)
        if mask is not None:
            keep = P.slice_(mask, axis=1, start=t, stop=t + 1)  # (batch, 1)
            y, new = _masked(keep, y, new, states, previous, zero_output_for_mask)
        states, previous = new, y
        outputs.append(y)
    if layer.return_sequences:
        previous = P.concat(*[P.reshape(y, shape=(0, 1, -1)) for y in outputs], axis=1)
    return previous, states


# ---- fused -------------------------------------------------------------------------------------


def _onnx_weights(layer: _Recurrent, ws: list[Var]) -> tuple[Var, Var, Var | None]:
    """Keras kernels (in, gates*u) -> ONNX W, R (1, gates*u, in); bias -> B (1, 2*gates*u)."""
    kernel, recurrent, bias = _weights(layer, ws)
    u, order = layer.units, ONNX_GATE_ORDER[layer.type]

    def reorder(m: Var) -> Var:
        gates = _gates(m, u, len(order))
        return P.concat(*[gates[i] for i in order], axis=m.rank - 1) if len(order) > 1 else m

    w, r = (P.reshape(P.transpose(reorder(m), perm=(1, 0)), shape=(1, -1, m.shape[0])) for m in (kernel, recurrent))
    if bias is None:
        return w, r, None
    if bias.rank == 2:  # GRU reset_after: [input bias; recurrent bias], ONNX's Wb and Rb
        return w, r, P.reshape(bias, shape=(1, -1))
    no_recurrent_bias = bias * 0.0  # Keras has none; ONNX's B holds both
    return w, r, P.reshape(P.concat(reorder(bias), no_recurrent_bias, axis=0), shape=(1, -1))


_ONNX_OPS = {"SimpleRNN": P.rnn, "GRU": P.gru, "LSTM": P.lstm}


def _kept_steps(x: Var, mask: Var) -> tuple[Var, Var]:
    """Keras skips masked steps: the kept steps moved to the front in order, and their count (the
    ONNX node's sequence_lens), so that the native node runs exactly the steps Keras runs."""
    lengths = P.reduce_sum(P.cast(mask, dtype="int32"), axes=(1,), keepdims=False)
    return P.gather_steps(x, P.kept_first(mask)), lengths


def _spread_steps(y: Var, mask: Var, zero_output_for_mask: bool) -> Var:
    """Outputs of the kept steps (batch, kept, u) back at their steps: a masked step repeats the
    last kept step's output (zeros before the first), or is zeros with zero_output_for_mask."""
    seen = P.cumsum(P.cast(mask, dtype="int64"), axis=1)  # kept steps up to and including each step
    out = P.gather_steps(y, P.maximum(seen - 1, 0))
    keep = mask if zero_output_for_mask else P.greater(seen, 0)
    return P.where(P.reshape(keep, shape=(0, 0, 1)), out, 0.0)


def fused(c: LayerCall, layer: _Recurrent, ws: list[Var], zero_output_for_mask: bool,
          initial: list[Var]) -> list[Var] | None:
    fns = [layer.activation] if layer.type == "SimpleRNN" else [layer.recurrent_activation, layer.activation]
    attrs = rnn_activations(fns + [layer.activation] * (layer.type == "LSTM"))  # LSTM: f, g, h
    if attrs is None:
        return None
    if layer.type == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    x, mask, u = c.x, c.mask, layer.units
    lengths, reverse = None, layer.go_backwards
    if mask is not None:
        if layer.go_backwards:  # in processing order, where Keras's mask semantics are stated
            x, mask, reverse = P.rev(x, axis=1), P.rev(mask, axis=1), False
        x, lengths = _kept_steps(x, mask)
    initial_states = [P.reshape(s, shape=(1, -1, u)) for s in initial]  # (batch, u) -> ONNX's (1, batch, u)
    y, *states = _ONNX_OPS[layer.type](
        P.transpose(x, perm=(1, 0, 2)), *_onnx_weights(layer, ws), lengths, *initial_states, hidden_size=u,
        direction="reverse" if reverse else "forward", **attrs)
    states = [P.reshape(s, shape=(-1, u)) for s in states]  # (1, batch, u) -> (batch, u)
    out = states[0]
    if layer.return_sequences:
        out = P.transpose(P.reshape(y, shape=(0, -1, u)), perm=(1, 0, 2))  # (time, 1, batch, u) -> (batch, time, u)
        if mask is not None:
            out = _spread_steps(out, mask, zero_output_for_mask)
        elif reverse:  # ONNX gives input order; Keras gives processing order
            out = P.rev(out, axis=1)
    return [out, *states] if layer.return_state else [out]


@expands("SimpleRNN", "GRU", "LSTM")
def _recurrent(c):
    return unrolled(c, c.layer, c.weights, zero_output_for_mask=False, initial=c.inputs[1:])


@expands("SimpleRNN", "GRU", "LSTM", table=FUSED)
def _recurrent_fused(c):
    return fused(c, c.layer, c.weights, zero_output_for_mask=False, initial=c.inputs[1:])


def _direction(c: LayerCall, layer: _Recurrent, ws: list[Var], initial: list[Var]) -> list[Var]:
    """One direction of a Bidirectional: Keras zeroes its masked sequence outputs (zero_output_for_mask)."""
    zero = layer.return_sequences
    out = fused(c, layer, ws, zero, initial) if c.fused else None
    return out if out is not None else unrolled(c, layer, ws, zero, initial)


_MERGE_MODES = {
    "concat": lambda a, b: [P.concat(a, b, axis=a.rank - 1)],
    "sum": lambda a, b: [a + b],
    "mul": lambda a, b: [a * b],
    "ave": lambda a, b: [(a + b) / 2.0],
    None: lambda a, b: [a, b],
}


@expands("Bidirectional")
def _bidirectional(c):
    """The backward layer's sequence is turned back to input order, then the two are merged;
    states follow: the forward layer's, then the backward layer's."""
    layer = c.layer
    n = len(layer.layer.weights(c.in_types[:1]))
    forward_states, backward_states = layer.split_states(c.inputs[1:])
    (yf, *sf), (yb, *sb) = (_direction(c, sub, ws, initial) for sub, ws, initial in (
        (layer.layer, c.weights[:n], forward_states), (layer._backward(), c.weights[n:], backward_states)))
    if layer.layer.return_sequences:
        yb = P.rev(yb, axis=1)
    return _MERGE_MODES[layer.merge_mode](yf, yb) + sf + sb
