"""Learning-rate schedules with Keras's formulas, evaluated on the host once per step."""
from __future__ import annotations

import math

from ..ir.training import CosineDecay, ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay


def schedule_value(schedule, step: int) -> float:
    if isinstance(schedule, (int, float)):
        return float(schedule)
    if isinstance(schedule, ExponentialDecay):
        p = step / schedule.decay_steps
        return schedule.initial_learning_rate * schedule.decay_rate ** (math.floor(p) if schedule.staircase else p)
    if isinstance(schedule, InverseTimeDecay):
        p = step / schedule.decay_steps
        return schedule.initial_learning_rate / (1 + schedule.decay_rate * (math.floor(p) if schedule.staircase else p))
    if isinstance(schedule, CosineDecay):
        p = min(step, schedule.decay_steps) / schedule.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * p))
        return schedule.initial_learning_rate * ((1 - schedule.alpha) * cosine + schedule.alpha)
    if isinstance(schedule, PiecewiseConstantDecay):
        for boundary, value in zip(schedule.boundaries, schedule.values):
            if step <= boundary:
                return value
        return schedule.values[-1]
    raise TypeError(f"not a schedule: {schedule!r}")


def learning_rate(optimizer, step: int, base: float | None = None) -> float:
    """The rate for `step` (0-based): the schedule (or `base`, when a callback set one) and Keras 2's `decay`."""
    lr = base if base is not None else schedule_value(optimizer.learning_rate, step)
    if optimizer.decay:
        lr = lr / (1 + optimizer.decay * step)
    return lr
