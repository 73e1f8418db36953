"""The random arrays of training mode (dropout masks, Gaussian noise): the host draws them afresh for
each step, for the whole global batch, and feeds them to the step graph, which stays free of random
ops so that replicas taking shards of a batch see exactly the rows one process would."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Draw:
    """'bernoulli': `value` with probability 1 - rate, else 0 (a dropout mask, scaled);
    'normal': N(mean, stddev) (Gaussian noise)."""

    kind: str
    rate: float = 0.0
    value: float = 1.0
    mean: float = 0.0
    stddev: float = 1.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.kind == "bernoulli":
            keep = rng.random(shape, dtype=np.float32) >= self.rate
            return keep.astype(np.float32) * np.float32(self.value)
        if self.kind == "normal":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(self.stddev) + np.float32(self.mean)
        raise ValueError(f"unknown draw kind {self.kind!r}")


@dataclass(frozen=True)
class NoiseInput:
    """A step graph input the host fills with `draw`: batch first (None), then the layer's noise shape."""

    name: str
    shape: tuple[int | None, ...]
    draw: Draw

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        return self.draw.sample(rng, (batch, *self.shape[1:]))


def noise_shape(layer, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """The shape of a layer's draw for an input of `shape`: Keras's noise_shape, where a None means the
    input's size and a short one is padded with 1s (one draw per sample); the batch stays open."""
    drawn = list(shape)
    noise = getattr(layer, "noise_shape", None)
    if noise is not None:
        noise = [*noise, *[1] * (len(shape) - len(noise))]
        drawn = [s if n is None else n for s, n in zip([None, *shape[1:]], noise)]
    drawn[0] = None
    return tuple(drawn)
