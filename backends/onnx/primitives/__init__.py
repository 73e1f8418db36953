"""Every primitive, defined once with all its rules read together (JAX style): shape/dtype rule,
ONNX lowering, numpy impl (for folding constants), layout rewrite and VJP. One module per family:

    core         shared shape rules, `onnx_op` (a one-node lowering), `defvjp`
    layout       transpose sinking and cancelling (the rewrite rules)
    elementwise  unary/binary/comparison ops and `where`
    structure    transpose, reshape, concat, slice, pad, crop, tile, gather and cotangent helpers
    reductions   reduce_*, softmax, log_softmax, argmax, size, batch_norm_train; `sum_to` (undoes broadcasting)
    linear       matmul, gemm
    convolution  conv, conv_transpose, max_pool, avg_pool (channels-first, as in ONNX)
    fused        inference-only single-node ops: batch_norm, layer_norm, rnn/gru/lstm
    steps        index math along time for masked sequences: kept_first, cumsum, gather_steps
    loop         scan: a recurrence as one ONNX Scan (training and evaluation graphs)

Layers use them as `P.name` (`from . import primitives as P`); a new primitive goes in its
family's module with its VJP right below it, e.g.

    exp = unary("exp", "Exp", np.exp, derivative=lambda x, y: y)   # d exp(x) = exp(x) dx
"""
from ..graph import Primitive  # noqa: F401
from .core import broadcast_shapes, defvjp, onnx_op  # noqa: F401
from .structure import (  # noqa: F401
    INT64_MIN, concat, crop, expand_like, gather, pad, reshape, reshape_like, resize, rev, scatter_add_rows, slice_, split,
    tile, transpose, unsqueeze, zeros)
from .layout import free_transpose, inverse, transposed  # noqa: F401
from .reductions import (  # noqa: F401
    argmax, batch_norm_train, log_softmax, reduce_max, reduce_mean, reduce_sum, reduction, size, softmax, sum_to)
from .elementwise import (  # noqa: F401
    abs, add, as_float, cast, ceil, clip, cos, div, elu, equal, erf, exp, floor, greater, greater_equal,
    hard_sigmoid, leaky_relu, less, log, logical_and, maximum, minimum, mul, ne, neg, pointwise, pow, reciprocal,
    relu, select, selu, sigmoid, sign, sin, softplus, softsign, sqrt, sub, tanh, where)
from .linear import gemm, matmul  # noqa: F401
from .convolution import (  # noqa: F401
    avg_pool, conv, conv_transpose, explicit_pads, max_pool, max_pool_indices, scatter_add_flat)
from .steps import cumsum, gather_steps, kept_first, scatter_add_steps  # noqa: F401
from .fused import batch_norm, layer_norm, lstm, recurrent, rnn, gru  # noqa: F401
from .loop import Body, scan, trace_body  # noqa: F401
