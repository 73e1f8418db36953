"""An ONNX model serialized one large constant at a time.

A protocol buffer's fields may come in any order, so the file is the model's other fields, then its
graph as one length-delimited field: the graph's nodes, inputs, outputs and small initializers, then
each large initializer as a TensorProto (dims, data_type, name, raw_data, the bytes
`numpy_helper.from_array` gives) framed here by hand. The lengths, needed up front, follow from the
constants' shapes and dtypes, so each constant is computed only in its turn (a Deferred weight read
from its file and folded), written as it lies in memory and dropped: the bytes of a model's weights
are never all in memory, in numpy or in protobuf. onnx.load and onnxruntime read the file as any
other.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import onnx
from onnx import helper

from ...errors import SpecError
from .emit import aval_of
from .graph import Deferred

MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9  # field numbers in onnx.proto
MAX_PROTO_BYTES = (1 << 31) - 1  # protobuf's limit on one message


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_head(number: int, length: int) -> bytes:
    """The key (number, wire type 2: length-delimited) and length of a field whose bytes follow."""
    return _varint(number << 3 | 2) + _varint(length)


def chunks(proto: onnx.ModelProto, large: Sequence[tuple[str, np.ndarray | Deferred]] = ()
           ) -> Iterator[bytes | memoryview]:
    """The file's bytes, in order; `large`: (initializer name, array or Deferred) in the graph."""
    head = onnx.ModelProto()
    head.CopyFrom(proto)
    head.ClearField("graph")
    graph = proto.graph.SerializeToString()
    tensors = []
    for name, value in large:
        aval = aval_of(value)
        dtype = np.dtype(aval.dtype).newbyteorder("<")  # raw_data is little-endian
        tensor_head = onnx.TensorProto(name=name, dims=aval.shape,
                                       data_type=helper.np_dtype_to_tensor_dtype(dtype)).SerializeToString()
        nbytes = int(np.prod(aval.shape)) * dtype.itemsize
        raw_head = _field_head(TENSOR_RAW_DATA, nbytes)
        tensors.append((value, aval, _field_head(GRAPH_INITIALIZER, len(tensor_head) + len(raw_head) + nbytes)
                        + tensor_head + raw_head, nbytes))
    graph_length = len(graph) + sum(len(framing) + nbytes for _, _, framing, nbytes in tensors)
    if graph_length > MAX_PROTO_BYTES:
        raise SpecError(f"the model takes {graph_length / 2**30:.1f} GiB; an ONNX file holds at most 2 GiB "
                        "(weights in external data files are not written)")
    yield head.SerializeToString()
    yield _field_head(MODEL_GRAPH, graph_length) + graph
    for value, aval, framing, nbytes in tensors:
        array = np.asarray(value)  # a Deferred is read and folded now
        if array.shape != aval.shape or array.dtype != np.dtype(aval.dtype):
            raise ValueError(f"constant computed as {array.dtype}{list(array.shape)}, not {aval.dtype}{list(aval.shape)}")
        array = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
        yield framing
        yield memoryview(array).cast("B")
