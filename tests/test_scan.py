"""Recurrent layers in step and evaluation graphs (weights are inputs) run as one ONNX Scan
(primitives/loop.py); model files (weights are constants) keep the unrolled loop, free of Scan.
Both give the same numbers, masks and directions included; the Scan's gradients are held to finite
differences in test_layer_gradients.py."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx.compile import trace
from nnspec.backends.onnx.emit import to_onnx
from nnspec.backends.onnx.graph import Graph
from onnx_support import analysis_of, model_of, random_weights

MASKED = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [5, 1, 2, 3, 4]], np.int32)  # Embedding(mask_zero) pads
VALUES = np.random.default_rng(1).normal(size=(3, 5, 2)).astype(np.float32)


def outputs(layers, shape, x, weights_as_inputs: bool):
    analysis = analysis_of(model_of(layers, shape))
    weights = random_weights(analysis, np.random.default_rng(0))
    graph = Graph()
    params = {name: [graph.input(f"{name}/{i}", a.shape, "float32") for i, a in enumerate(arrays)]
              for name, arrays in weights.items()} if weights_as_inputs else weights
    _, outs = trace(analysis, params, fused=False, graph=graph)
    model = to_onnx(graph, {"y": next(iter(outs.values()))})
    assert any(n.op_type == "Scan" for n in model.graph.node) == weights_as_inputs
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x, **{f"{name}/{i}": a for name, arrays in weights.items() for i, a in enumerate(arrays)}}
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]


@pytest.mark.parametrize("kind, sequences, bidirectional, backwards",
                         list(itertools.product(["LSTM", "GRU", "SimpleRNN"], [False, True], [False, True], [False, True])))
def test_scanned_recurrent_layers_give_the_unrolled_numbers(kind, sequences, bidirectional, backwards):
    layer = {"type": kind, "units": 3, "return_sequences": sequences, "go_backwards": backwards}
    if bidirectional:
        layer = {"type": "Bidirectional", "layer": layer}
    for masking, shape, x in (
            ({"type": "Embedding", "input_dim": 6, "output_dim": 2, "mask_zero": True}, ([5], "int32"), MASKED),
            ({"type": "Masking", "mask_value": 9.0}, [5, 2], np.where(MASKED[..., None] == 0, np.float32(9.0), VALUES)),
            (None, [5, 2], VALUES)):
        layers = [masking, layer] if masking else [layer]
        np.testing.assert_allclose(outputs(layers, shape, x, True), outputs(layers, shape, x, False), atol=1e-5)
