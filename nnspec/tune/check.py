"""Checking a search space: the model is built at points of the space, so that a value which breaks it
(shapes that no longer fit, a loss the output cannot take) is an error at check time, reported at the
search call that chose it.

The points: each parameter has test values, namely every option of a choice, both states of an
optional layer, and the two bounds of a range. When their combinations number at most
MAX_COMBINATIONS, every combination is built. Otherwise each parameter's test values are tried one at
a time with the others at their defaults; a clash that needs two parameters away from their defaults
at once is then left to the trial that meets it, which fails with the same message."""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

from ..errors import Collector, SpecError
from .space import SearchSpace, same

MAX_COMBINATIONS = 256


def points(space: SearchSpace) -> Iterator[dict[str, Any]]:
    names = list(space.params)
    tests = [space.params[name].dist.test_values() for name in names]
    if math.prod(map(len, tests)) <= MAX_COMBINATIONS:
        for values in itertools.product(*tests):
            yield dict(zip(names, values))
        return
    defaults = space.defaults()
    yield defaults
    for name, values in zip(names, tests):
        for value in values:
            if not same(value, defaults[name]):
                yield {**defaults, name: value}


def check_space(space: SearchSpace) -> None:
    """Raise a SpecError with each distinct problem found at the test points."""
    from ..frontend import materialize

    errors = Collector(space.path, space.text)
    defaults = space.defaults()
    seen = set()
    for point in points(space):
        try:
            materialize(space, point)
        except SpecError as exc:
            problem = exc.diagnostics[0]
            changed = [name for name, value in point.items() if not same(value, defaults[name])]
            if not changed:  # the defaults themselves: the spec's own error
                raise
            where = f"{problem.span.line}:{problem.span.col}: " if problem.span else ""
            if (where, problem.message) in seen:
                continue
            seen.add((where, problem.message))
            setting = ", ".join(f"{name} = {space.params[name].dist.show(point[name])}" for name in changed)
            errors.error(f"with {setting}: {where}{problem.message}", space.params[changed[0]].span)
    errors.raise_if_any()
