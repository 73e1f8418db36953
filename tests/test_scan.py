"""Recurrent layers in step and evaluation graphs (weights are inputs) run as one ONNX Scan
(primitives/loop.py); model files (weights are constants) keep the unrolled loop, free of Scan.
Both give the same numbers, masks and directions included; the Scan's gradients are held to finite
differences in test_layer_gradients.py."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx import primitives as P, recurrent
from nnspec.backends.onnx.autograd import grad
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


def gradients(layers, shape, x):
    """The gradients of a random projection of the output with respect to every weight and the input."""
    analysis = analysis_of(model_of(layers, shape))
    weights = random_weights(analysis, np.random.default_rng(0))
    graph = Graph()
    params = {name: [graph.input(f"{name}/{i}", a.shape, "float32") for i, a in enumerate(arrays)]
              for name, arrays in weights.items()}
    _, outs = trace(analysis, params, fused=False, graph=graph)
    out = next(iter(outs.values()))
    r = graph.const(np.random.default_rng(2).normal(size=(x.shape[0], *out.shape[1:])).astype(np.float32))
    loss = P.reduce_sum(out * r, axes=tuple(range(out.rank)), keepdims=False)
    wrt = [v for vs in params.values() for v in vs] + [next(v for v in graph.inputs if v.hint == "x")]
    model = to_onnx(graph, {f"g{i}": g for i, g in enumerate(grad(graph, loss, wrt))})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x, **{f"{name}/{i}": a for name, arrays in weights.items() for i, a in enumerate(arrays)}}
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})


@pytest.mark.parametrize("layer", [
    {"type": "LSTM", "units": 3},
    {"type": "LSTM", "units": 3, "return_sequences": True, "go_backwards": True},
    {"type": "LSTM", "units": 2, "return_sequences": True, "activation": "relu",
     "recurrent_activation": "hard_sigmoid"},
    {"type": "GRU", "units": 3, "return_sequences": True},
    {"type": "GRU", "units": 2, "go_backwards": True, "activation": "softsign", "use_bias": False},
    {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2, "return_sequences": True}},
    [{"type": "LSTM", "units": 3, "return_sequences": True}, {"type": "GRU", "units": 2}],  # time-major between
])
def test_stacked_recurrent_gradients_give_the_recomputed_numbers(layer, monkeypatch):
    """An unmasked LSTM or GRU (reset_after) takes its gradient from what the forward Scan stacked;
    the same numbers as the Scan's general VJP, which recomputes every step."""
    layers = layer if isinstance(layer, list) else [layer]
    stacked = gradients(layers, [5, 2], VALUES)
    monkeypatch.setattr(recurrent, "_STACKED", {})  # every layer takes the general Scan
    recomputed = gradients(layers, [5, 2], VALUES)
    for a, b in zip(stacked, recomputed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
