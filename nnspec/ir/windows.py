"""Sliding-window arithmetic, once for the IR shape rules, the ONNX lowering and VJPs, the lift
and the Keras code: output sizes, Keras 'valid'/'same'/'causal' padding amounts, and the sizes of
transposed convolutions. Sizes may be None (unknown until run time)."""
from __future__ import annotations

Pads = tuple[int, ...]  # ONNX order: every axis's padding before, then every axis's padding after


def extent(kernel: int, dilation: int = 1) -> int:
    """Cells a dilated kernel spans."""
    return dilation * (kernel - 1) + 1


def output_size(size: int | None, kernel: int, stride: int = 1, dilation: int = 1,
                before: int = 0, after: int = 0) -> int | None:
    """Window positions along an axis of `size` cells padded explicitly."""
    if size is None:
        return None
    return (size + before + after - extent(kernel, dilation)) // stride + 1


def keras_output_size(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    """Output size under Keras padding: 'same' and 'causal' give ceil(size / stride)."""
    if size is None:
        return None
    if padding == "valid":
        return output_size(size, kernel, stride, dilation)
    return -(-size // stride)


def same_pads(size: int | None, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int] | None:
    """TF/Keras 'same' (ONNX SAME_UPPER): (before, after), the odd cell after. With stride 1 it does
    not depend on the size; otherwise an unknown size gives None (ONNX pads at run time)."""
    if size is None and stride > 1:
        return None
    size = size or 1
    total = max((-(-size // stride) - 1) * stride + extent(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def causal_pads(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Keras 'causal': everything before, so output t sees inputs up to t."""
    return (kernel - 1) * dilation, 0


def keras_pads(padding: str, sizes, kernels, strides, dilations) -> Pads | None:
    """ONNX pads for Keras padding over several axes; None: 'same' over an unknown size with a stride,
    left to ONNX SAME_UPPER at run time."""
    if padding == "valid":
        return (0,) * (2 * len(kernels))
    if padding == "causal":
        pairs = [causal_pads(k, d) for k, d in zip(kernels, dilations)]
    else:
        pairs = [same_pads(n, k, s, d) for n, k, s, d in zip(sizes, kernels, strides, dilations)]
        if None in pairs:
            return None
    return tuple(b for b, _ in pairs) + tuple(a for _, a in pairs)


def transposed_output_size(size: int | None, kernel: int, stride: int = 1, dilation: int = 1,
                           before: int = 0, after: int = 0, output_padding: int = 0) -> int | None:
    """Output size of a transposed convolution (ONNX ConvTranspose with explicit pads)."""
    if size is None:
        return None
    return (size - 1) * stride - before - after + extent(kernel, dilation) + output_padding


def keras_transposed_output_size(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1,
                                 output_padding: int | None = None) -> int | None:
    """Output size of Keras's ConvNDTranspose (keras `deconv_output_length`)."""
    if size is None:
        return None
    k = extent(kernel, dilation)
    if output_padding is None:
        return size * stride + max(k - stride, 0) if padding == "valid" else size * stride
    pad = k // 2 if padding == "same" else 0
    return (size - 1) * stride + k - 2 * pad + output_padding


def keras_transposed_pads(kernel: int, stride: int, padding: str, dilation: int = 1,
                          output_padding: int | None = None) -> tuple[int, int, int]:
    """ONNX ConvTranspose (pad before, pad after, output_padding) that give Keras's transposed conv:
    TF computes it as the gradient of the forward conv of the output's size, with that conv's
    padding. The result does not depend on the input size (every size term grows by `stride`
    per cell), so any size gives it."""
    size = kernel * dilation + stride + 1
    out = keras_transposed_output_size(size, kernel, stride, padding, dilation, output_padding)
    before = same_pads(out, kernel, stride, dilation)[0] if padding == "same" else 0
    after = (size - 1) * stride + extent(kernel, dilation) - before - out
    return (before, after, 0) if after >= 0 else (before, 0, -after)
