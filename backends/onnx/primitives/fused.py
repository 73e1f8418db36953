"""Fused inference ops: one ONNX node each, no VJP (training expands the layers into
differentiable primitives instead)."""
from __future__ import annotations

from ..graph import Aval, Primitive
from .core import onnx_op, same

# x (N, C, ...), then scale, bias, mean, variance (C,): ONNX BatchNormalization in inference mode.
batch_norm = Primitive("batch_norm", same, onnx_op("BatchNormalization"))
# Normalizes over the axes from `axis` to the last one; then scale and (optional) bias.
layer_norm = Primitive("layer_norm", same, onnx_op("LayerNormalization"))


def recurrent(name: str, op_type: str, n_outputs: int) -> Primitive:
    """ONNX RNN/GRU/LSTM: x (T, N, I), W, R, B, sequence_lens, initial_h[, initial_c] (D, N, H)
    -> Y (T, D, N, H), Y_h[, Y_c] (D, N, H)."""
    def shape(x, w, r, b=None, lens=None, *initial_states, hidden_size, direction, **_):
        d = 2 if direction == "bidirectional" else 1
        state = Aval((d, x.shape[1], hidden_size), x.dtype)
        return [Aval((x.shape[0], d, x.shape[1], hidden_size), x.dtype)] + [state] * (n_outputs - 1)

    return Primitive(name, shape, onnx_op(op_type, n_outputs), multiple_results=True)


rnn = recurrent("rnn", "RNN", 2)
gru = recurrent("gru", "GRU", 2)
lstm = recurrent("lstm", "LSTM", 3)
