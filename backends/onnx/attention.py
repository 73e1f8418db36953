"""Attention, AdditiveAttention and MultiHeadAttention as primitives (MatMul, Softmax, Where ...),
so that their gradients are those of the primitives. Masks follow Keras: the causal mask, the
value's (and for MultiHeadAttention the query's and key's) Keras mask and MultiHeadAttention's
`attention_mask` input all say which keys a query may attend to.
"""
from __future__ import annotations

import math

import numpy as np

from . import primitives as P
from .graph import Var
from .layers import MASKS, LayerCall, expands
from .noise import Draw

NEG = -1e9  # what Keras adds to the scores of masked keys
for _kind in ("Attention", "AdditiveAttention", "MultiHeadAttention"):
    MASKS[_kind] = lambda c: c.masks[0]  # Keras passes the query's mask on


@expands("Attention", "AdditiveAttention")
def _attention(c: LayerCall):
    q, v = c.inputs[:2]
    k = c.inputs[2] if len(c.inputs) > 2 else v
    layer, scale = c.layer, c.w("scale")
    if layer.type == "Attention" and layer.score_mode == "dot":
        scores = q @ P.transpose(k, perm=(0, 2, 1))
        scores = scores if scale is None else scores * scale
    else:
        pairs = P.unsqueeze(q, axis=2) + P.unsqueeze(k, axis=1)  # (batch, Tq, Tv, dim)
        if layer.type == "Attention":  # concat: weight * sum(tanh(scale * (q + k)))
            summed = P.reduce_sum(P.tanh(pairs if scale is None else pairs * scale), axes=(3,), keepdims=False)
            scores = summed * c.w("concat_score_weight")
        else:
            tanh = P.tanh(pairs)
            scores = P.reduce_sum(tanh if scale is None else tanh * scale, axes=(3,), keepdims=False)
    allowed = _allowed(c, q, k, value_mask=c.masks[1], query_mask=None)
    if allowed is not None:
        scores = scores + P.select(allowed, 0.0, NEG)  # Keras's scores - 1e9, exactly
    weights = _dropout(c, P.softmax(scores, axis=-1))
    out = weights @ v
    if c.masks[0] is not None:  # Keras zeroes the outputs of masked queries
        out = P.select(P.unsqueeze(c.masks[0], axis=2), out, 0.0)
    return [out, weights] if layer.return_attention_scores else out


@expands("MultiHeadAttention")
def _multi_head_attention(c: LayerCall):
    layer = c.layer
    query, value = c.inputs[:2]
    key = c.inputs[2] if len(c.inputs) > 2 else value
    key_dim, value_dim = layer.head_sizes()
    # Keras scales the projected query by 1/sqrt(key_dim) (not folded into the kernel: the file
    # keeps the weights as they are, so that they read back through the spec)
    q = _heads(c, "query", query, key_dim) * query.graph.const(1.0 / math.sqrt(key_dim), "float32")
    k = _heads(c, "key", key, key_dim)
    v = _heads(c, "value", value, value_dim)
    scores = q @ P.transpose(k, perm=(0, 1, 3, 2))  # (batch, heads, Tq, Tk)
    mask_input = c.inputs[3] if len(c.inputs) > 3 else None
    allowed = _allowed(c, query, key, value_mask=_key_mask(c), query_mask=c.masks[0], mask_input=mask_input)
    if allowed is None:
        weights = P.softmax(scores, axis=-1)
    elif layer.empty_rows == "mean":  # -1e9 added: a row with no key left is uniform, as in Keras
        weights = P.softmax(scores + P.select(P.unsqueeze(allowed, axis=1), 0.0, NEG), axis=-1)
    else:  # Keras 3 returning scores: masked scores replaced by -1e9, and a row with no key left is zero
        allowed = P.unsqueeze(allowed, axis=1)
        weights = P.select(allowed, P.softmax(P.select(allowed, scores, NEG), axis=-1), 0.0)
    attended = _dropout(c, weights) @ v  # (batch, heads, Tq, value_dim)
    merged = P.reshape(P.transpose(attended, perm=(0, 2, 1, 3)), shape=(0, 0, layer.num_heads * value_dim))
    kernel = c.w("attention_output/kernel")
    out = merged @ P.reshape(kernel, shape=(layer.num_heads * value_dim, kernel.shape[-1]))
    bias = c.w("attention_output/bias")
    out = out if bias is None else out + bias
    return [out, weights] if layer.return_attention_scores else out


def _heads(c: LayerCall, part: str, x: Var, size: int) -> Var:
    """x (batch, T, features) projected by Keras's EinsumDense kernel (features, heads, size) and
    split into heads: (batch, heads, T, size)."""
    heads = c.layer.num_heads
    kernel = P.reshape(c.w(f"{part}/kernel"), shape=(x.shape[-1], heads * size))
    bias = c.w(f"{part}/bias")
    bias = None if bias is None else P.reshape(bias, shape=(heads * size,))
    projected = x @ kernel
    projected = projected if bias is None else projected + bias
    return P.transpose(P.reshape(projected, shape=(0, 0, heads, size)), perm=(0, 2, 1, 3))


def _key_mask(c: LayerCall) -> Var | None:
    """Keras ANDs the value's and the key's masks (the key is the value when not given)."""
    masks = [m for m in c.masks[1:3] if m is not None]
    return masks[0] if len(masks) == 1 else P.logical_and(*masks) if masks else None


def _allowed(c: LayerCall, query: Var, key: Var, *, value_mask: Var | None, query_mask: Var | None,
             mask_input: Var | None = None) -> Var | None:
    """Which keys each query may attend to, bool (batch or 1, Tq or 1, Tk or 1); None: all."""
    parts = []
    if query_mask is not None:
        parts.append(P.unsqueeze(query_mask, axis=2))
    if value_mask is not None:
        parts.append(P.unsqueeze(value_mask, axis=1))
    if c.layer.use_causal_mask:
        tq, tk = query.shape[1], key.shape[1]
        if tq is None or tk is None:
            raise c.fail("use_causal_mask needs the query's and the key's lengths known")
        parts.append(query.graph.const(np.tril(np.ones((1, tq, tk), bool))))  # query i sees keys 0..i
    if mask_input is not None:
        parts.append(mask_input if mask_input.dtype == "bool" else P.cast(mask_input, dtype="bool"))
    if not parts:
        return None
    allowed = parts[0]
    for part in parts[1:]:
        allowed = P.logical_and(allowed, part)
    return allowed


def _dropout(c: LayerCall, weights: Var) -> Var:
    """Keras drops attention weights while training."""
    if c.train is None or c.layer.dropout == 0:
        return weights
    rate = c.layer.dropout
    return weights * c.train.noise(c.layer, weights, Draw("bernoulli", rate=rate, value=1.0 / (1.0 - rate)))
