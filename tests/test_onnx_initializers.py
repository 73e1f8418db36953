"""Initial weights follow Keras's formulas, and a seed makes them reproducible."""
import math

import numpy as np
import pytest

from nnspec.errors import SpecError
from nnspec.initializers import TRUNCATED_STDDEV, compute_fans, sample
from nnspec.ir.functions import INITIALIZERS
from nnspec.weights import initial_weights
from onnx_support import analysis_of, model_of

SHAPE = (300, 200)  # 60,000 values: sample statistics within a percent or two
FAN_IN, FAN_OUT = SHAPE


def draw(name, shape=SHAPE, rng_seed=0, **params):
    return sample(INITIALIZERS.make(name, **params), shape, np.random.default_rng(rng_seed))


def test_fans():
    assert compute_fans((5,)) == (5, 5)
    assert compute_fans((3, 7)) == (3, 7)
    assert compute_fans((3, 3, 4, 8)) == (36, 72)  # Conv2D kernel: the window counts
    assert compute_fans((5, 2, 6)) == (10, 30)  # Conv1D kernel


UNIFORM_LIMITS = {  # name: the limit of U(-limit, limit)
    "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(6 / FAN_IN),
    "lecun_uniform": math.sqrt(3 / FAN_IN),
}
TRUNCATED_STDDEVS = {  # name: the stddev the truncated normal ends up with (Keras's target)
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
}


@pytest.mark.parametrize("name,limit", UNIFORM_LIMITS.items())
def test_scaled_uniform(name, limit):
    w = draw(name)
    assert w.dtype == np.float32 and w.shape == SHAPE
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize("name,stddev", TRUNCATED_STDDEVS.items())
def test_scaled_truncated_normal(name, stddev):
    w = draw(name)
    assert w.std() == pytest.approx(stddev, rel=0.02)
    assert np.abs(w).max() <= 2 * stddev / TRUNCATED_STDDEV + 1e-6


def test_variance_scaling():
    w = draw("variance_scaling", scale=2.0, mode="fan_out", distribution="untruncated_normal")
    assert w.std() == pytest.approx(math.sqrt(2.0 / FAN_OUT), rel=0.02)
    assert np.abs(w).max() > 3 * math.sqrt(2.0 / FAN_OUT)  # not truncated
    w = draw("variance_scaling", scale=0.5, mode="fan_avg", distribution="uniform")
    assert np.abs(w).max() <= math.sqrt(3 * 0.5 / ((FAN_IN + FAN_OUT) / 2))
    w = draw("variance_scaling", scale=3.0, distribution="truncated_normal", shape=(3, 3, 20, 40))
    assert w.std() == pytest.approx(math.sqrt(3.0 / (9 * 20)), rel=0.03)  # fan_in of a conv kernel


def test_plain_distributions():
    w = draw("truncated_normal", mean=1.0, stddev=0.5)
    assert np.abs(w - 1.0).max() <= 1.0 and w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.std() == pytest.approx(0.5 * TRUNCATED_STDDEV, rel=0.02)  # plain truncation: no rescaling
    w = draw("random_normal", mean=-2.0, stddev=0.1)
    assert w.mean() == pytest.approx(-2.0, abs=0.002) and w.std() == pytest.approx(0.1, rel=0.02)
    w = draw("random_uniform", minval=2.0, maxval=3.0)
    assert w.min() >= 2.0 and w.max() <= 3.0 and w.mean() == pytest.approx(2.5, abs=0.01)
    assert np.array_equal(draw("constant", value=0.25, shape=(2, 3)), np.full((2, 3), 0.25, np.float32))
    assert not draw("zeros", shape=(4,)).any() and draw("ones", shape=(4,)).all()


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 5)])
def test_orthogonal(shape):
    w = draw("orthogonal", shape=shape, gain=2.0).reshape(-1, shape[-1]).astype(np.float64)
    rows, cols = w.shape
    gram = w.T @ w if rows >= cols else w @ w.T
    assert np.allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-5)


def test_identity():
    assert np.array_equal(draw("identity", shape=(2, 3), gain=0.5), 0.5 * np.eye(2, 3, dtype=np.float32))
    with pytest.raises(ValueError, match="2-D shape"):
        draw("identity", shape=(3, 3, 2))


def test_an_initializer_with_a_seed_ignores_the_model_seed():
    assert np.array_equal(draw("he_normal", rng_seed=1, seed=7), draw("he_normal", rng_seed=2, seed=7))
    assert not np.array_equal(draw("he_normal", rng_seed=1), draw("he_normal", rng_seed=2))


LAYERS = [{"type": "Dense", "units": 5, "name": "a", "bias_initializer": "ones"},
          {"type": "LSTM", "units": 3, "name": "b"},
          {"type": "Bidirectional", "name": "c", "layer": {"type": "LSTM", "units": 2, "unit_forget_bias": False,
                                                           "bias_initializer": "ones"}}]


def test_model_weights():
    model = model_of([{"type": "RepeatVector", "n": 4, "name": "r"}, *LAYERS[:1],
                      {**LAYERS[1], "return_sequences": True}, LAYERS[2]], (6,))
    analysis = analysis_of(model)
    weights = initial_weights(analysis, seed=5)
    assert list(weights) == ["a", "b", "c"]
    assert [w.shape for w in weights["b"]] == [(5, 12), (3, 12), (12,)]
    assert np.array_equal(weights["a"][1], np.ones(5, np.float32))
    assert np.array_equal(weights["b"][2], np.r_[np.zeros(3), np.ones(3), np.zeros(6)])  # unit_forget_bias
    assert np.array_equal(weights["c"][2], np.ones(8)) and len(weights["c"]) == 6
    recurrent = weights["b"][1].astype(np.float64)  # orthogonal: (3, 12) has orthonormal rows
    assert np.allclose(recurrent @ recurrent.T, np.eye(3), atol=1e-5)
    again = initial_weights(analysis, seed=5)
    assert all(np.array_equal(x, y) for k in weights for x, y in zip(weights[k], again[k]))
    other = initial_weights(analysis, seed=6)
    assert not np.array_equal(weights["a"][0], other["a"][0])
    fresh = [initial_weights(analysis)["a"][0] for _ in range(2)]
    assert not np.array_equal(*fresh)


def test_a_layer_keeps_its_weights_when_another_is_added():
    small = initial_weights(analysis_of(model_of([LAYERS[0]], (6,))), seed=9)
    large = initial_weights(analysis_of(model_of([{"type": "Dense", "units": 6, "name": "z"}, LAYERS[0]], (6,))),
                            seed=9)
    assert np.array_equal(small["a"][0], large["a"][0])


def test_initializer_that_cannot_fit_the_shape():
    model = model_of([{"type": "Conv1D", "filters": 2, "kernel_size": 3, "kernel_initializer": "identity"}], (5, 2))
    with pytest.raises(SpecError, match="layer 'conv1d', weight 'kernel': the identity initializer needs a 2-D"):
        initial_weights(analysis_of(model), seed=0)
