"""Initial weight values with Keras's formulas (keras/src/initializers), drawn with numpy."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .ir import functions as F

# Keras divides a truncated normal's stddev by this: the stddev of a unit normal truncated at 2.
TRUNCATED_STDDEV = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's fans; a conv kernel (*window, in, out) counts every cell of its window."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float) -> np.ndarray:
    """Normal values, redrawn where more than 2 stddev from the mean (as TF's truncated_normal)."""
    out = rng.standard_normal(shape)
    while True:
        bad = np.abs(out) > 2.0
        if not bad.any():
            return mean + stddev * out
        out[bad] = rng.standard_normal(int(bad.sum()))


def _variance_scaling(scale: float, mode: str, distribution: str) -> Callable:
    def sample(f, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
        s = scale / max(1.0, fan)
        if distribution in ("truncated_normal", "normal"):  # Keras 2 spelled the truncated one "normal"
            return truncated_normal(rng, shape, 0.0, math.sqrt(s) / TRUNCATED_STDDEV)
        if distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(s), shape)
        limit = math.sqrt(3.0 * s)
        return rng.uniform(-limit, limit, shape)
    return sample


def _orthogonal(f, shape, rng):
    if len(shape) < 2:
        raise ValueError(f"the orthogonal initializer needs a shape of rank 2 or more, got {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return f.gain * q.reshape(shape)


def _identity(f, shape, rng):
    if len(shape) != 2:
        raise ValueError(f"the identity initializer needs a 2-D shape, got {shape}")
    return f.gain * np.eye(*shape)


SAMPLERS: dict[str, Callable] = {
    "zeros": lambda f, shape, rng: np.zeros(shape),
    "ones": lambda f, shape, rng: np.ones(shape),
    "constant": lambda f, shape, rng: np.full(shape, f.value),
    "random_normal": lambda f, shape, rng: rng.normal(f.mean, f.stddev, shape),
    "random_uniform": lambda f, shape, rng: rng.uniform(f.minval, f.maxval, shape),
    "truncated_normal": lambda f, shape, rng: truncated_normal(rng, shape, f.mean, f.stddev),
    "variance_scaling": lambda f, shape, rng: _variance_scaling(f.scale, f.mode, f.distribution)(f, shape, rng),
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "truncated_normal"),
    "orthogonal": _orthogonal,
    "identity": _identity,
}
assert set(SAMPLERS) == set(F.INITIALIZERS.members), "every initializer needs a sampler"


def sample(initializer: F.Fn, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """float32 values of `shape`; an initializer with its own seed ignores `rng`, as in Keras."""
    seed = getattr(initializer, "seed", None)
    if seed is not None:
        rng = np.random.default_rng(seed)
    return np.asarray(SAMPLERS[initializer.name](initializer, tuple(shape), rng), np.float32)
