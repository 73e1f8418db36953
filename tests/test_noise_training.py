"""Keras's noise layers train: GaussianNoise adds N(0, stddev), GaussianDropout multiplies by
N(1, sqrt(rate / (1 - rate))), AlphaDropout sets dropped units to SELU's saturation and restores the
mean and variance by Keras's affine a, b. The host draws each step's noise from the run's seed
(backends/onnx/noise.py), like dropout masks, so training is deterministic and replicas agree.
Gradients: tests/test_layer_gradients.py (noise_layers_training)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx.compile import trace
from nnspec.backends.onnx.emit import to_onnx
from nnspec.backends.onnx.graph import Graph
from nnspec.backends.onnx.noise import Draw
from nnspec.cli import main
from onnx_support import analysis_of, model_of
from test_layer_gradients import FixedTraining


def test_draws_have_their_distributions():
    rng = np.random.default_rng(0)
    mask = Draw("bernoulli", rate=0.3, value=2.5).sample(rng, (400, 500))
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 2.5}
    assert np.mean(mask == 0) == pytest.approx(0.3, abs=0.005)
    noise = Draw("normal", mean=1.0, stddev=0.5).sample(rng, (400, 500))
    assert noise.dtype == np.float32
    assert (noise.mean(), noise.std()) == pytest.approx((1.0, 0.5), abs=0.005)


def training_output(layer: dict, x: np.ndarray):
    """The layer's output in training mode on x, and the arrays it drew."""
    analysis = analysis_of(model_of([layer], x.shape[1:]))
    graph, training = Graph(), FixedTraining(np.random.default_rng(3), len(x))
    _, outputs = trace(analysis, {}, fused=False, graph=graph, train=training)
    session = ort.InferenceSession(to_onnx(graph, {"y": next(iter(outputs.values()))}).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0], training.drawn


X = np.random.default_rng(1).normal(size=(2000, 50)).astype(np.float32)


def test_gaussian_noise_adds_normal_noise_of_its_stddev():
    y, [(draw, noise)] = training_output({"type": "GaussianNoise", "stddev": 0.7}, X)
    np.testing.assert_allclose(y, X + noise, rtol=0, atol=1e-6)
    assert (noise.mean(), noise.std()) == pytest.approx((0.0, 0.7), abs=0.01)


def test_gaussian_dropout_multiplies_by_keras_normal_noise():
    y, [(draw, noise)] = training_output({"type": "GaussianDropout", "rate": 0.2}, X)
    np.testing.assert_allclose(y, X * noise, rtol=0, atol=1e-6)
    assert (noise.mean(), noise.std()) == pytest.approx((1.0, np.sqrt(0.2 / 0.8)), abs=0.01)


def keras_alpha_dropout(x, keep, rate):
    """keras.layers.AlphaDropout.call in training, as Keras writes it."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    alpha_p = -alpha * scale
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    return a * (x * keep + alpha_p * (1 - keep)) + b


@pytest.mark.parametrize("rate,noise_shape", [(0.1, None), (0.4, None), (0.3, [None, 1])])
def test_alpha_dropout_is_keras_and_keeps_a_unit_normal_input_unit_normal(rate, noise_shape):
    y, [(draw, drawn)] = training_output({"type": "AlphaDropout", "rate": rate, "noise_shape": noise_shape}, X)
    keep = (drawn != 0).astype(np.float64)
    assert keep.shape == ((len(X), 1) if noise_shape else X.shape)
    assert keep.mean() == pytest.approx(1 - rate, abs=0.02)
    np.testing.assert_allclose(y, keras_alpha_dropout(X.astype(np.float64), keep, rate), rtol=0, atol=1e-5)
    if noise_shape is None:  # SELU's fixed point: mean 0 and variance 1 survive the dropout
        assert (y.mean(), y.var()) == pytest.approx((0.0, 1.0), abs=0.02)


SPEC = """\
model noisy {
  input x: float32[6]
  gaussian_noise(STDDEV)
  dense(16, activation=selu)
  alpha_dropout(RATE)
  dense(16)
  gaussian_dropout(RATE)
  dense(1)
}

train {
  loss       mse
  optimizer  sgd(learning_rate=0.05)
  batch_size 16
  epochs     3
}
"""


def train(folder, name, stddev=0.3, rate=0.2, *flags):
    (folder / f"{name}.nn").write_text(SPEC.replace("STDDEV", str(stddev)).replace("RATE", str(rate)))
    out = folder / f"{name}.onnx"
    assert main(["train", str(folder / f"{name}.nn"), "--data", str(folder / "d.npz"), "--verbose", "0",
                 "--no-plot", "-o", str(out), *flags]) == 0
    with np.load(out.with_suffix(".npz")) as weights:
        return {k: weights[k] for k in weights.files}, json.loads(out.with_suffix(".history.json").read_text())


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.tanh(x.sum(axis=1, keepdims=True)).astype(np.float32))
    return tmp_path


def test_a_spec_with_noise_layers_trains_deterministically_from_its_seed(data):
    weights, history = train(data, "a")
    again, history_again = train(data, "b")
    assert history == history_again and all(np.array_equal(weights[k], again[k]) for k in weights)
    assert all(np.isfinite(history["loss"]))
    other_seed, _ = train(data, "c", 0.3, 0.2, "--seed", "1")
    assert any(not np.array_equal(weights[k], other_seed[k]) for k in weights)
    silent, silent_history = train(data, "d", 0.0, 0.0)  # the same initial weights, no noise drawn
    assert silent_history["loss"] != history["loss"]


def test_two_replicas_draw_the_noise_one_process_draws(data):
    """Each replica feeds its shard's rows of the global batch's draws (as for dropout masks)."""
    pytest.importorskip("mpi4py")
    (weights, history), (two, two_history) = train(data, "one"), train(data, "two", 0.3, 0.2, "--workers", "2")
    for key in weights:
        np.testing.assert_allclose(two[key], weights[key], rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(two_history["loss"], history["loss"], rtol=1e-5)
