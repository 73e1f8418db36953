"""A spec's search space. Each `choice`, `uniform`, `log_uniform`, `int_range` and `optional` written
in the text is one parameter with a stable name, its place in the source and its distribution; a point
of the space ({name: value}) fills the text in to a plain spec."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Union

from ..errors import Collector, Span, did_you_mean
from ..limits import MAX_GRID

SEARCH_VALUES = ("choice", "uniform", "log_uniform", "int_range")
OPTIONAL = "optional"

Scalar = Union[bool, int, float, str, None]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """Equal and of one type: choice(1, true) has two options, not one."""
    return type(a) is type(b) and a == b


def literal(value: bool | int | float) -> str:
    """A number or boolean as .nn text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@dataclass(frozen=True)
class Choice:
    keys: tuple[Scalar, ...]  # what a sampler picks: the option's value, or its text for calls and lists
    texts: tuple[str, ...]  # each option as written, to fill the spec in

    @property
    def default(self) -> Scalar:
        return self.keys[0]

    def test_values(self) -> tuple:
        return self.keys

    def count(self) -> int | None:
        return len(self.keys)

    def grid(self) -> list | None:
        return list(self.keys)

    def describe(self) -> str:
        return f"choice({', '.join(self.texts)})"

    def index(self, value: Scalar) -> int:
        return next(i for i, key in enumerate(self.keys) if same(key, value))

    def show(self, value: Scalar) -> str:
        return self.texts[self.index(value)]

    def valid(self, value: Any) -> bool:
        return any(same(value, k) for k in self.keys)

    def suggest(self, trial, name: str) -> Scalar:
        return trial.suggest_categorical(name, list(self.keys))


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    log: bool = False

    @property
    def default(self) -> float:
        return self.low

    def test_values(self) -> tuple:
        """The bounds and a value between them (a fraction: does the argument take one?)."""
        middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return self.low, middle, self.high

    def count(self) -> int | None:
        return None

    def grid(self) -> list | None:
        return None

    def describe(self) -> str:
        return f"{'log_uniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"

    def show(self, value: float) -> str:
        return literal(float(value))

    def valid(self, value: Any) -> bool:
        return _number(value) and self.low <= value <= self.high

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1

    @property
    def default(self) -> int:
        return self.low

    def test_values(self) -> tuple:
        return self.low, self.high

    def count(self) -> int | None:
        return (self.high - self.low) // self.step + 1

    def grid(self) -> list | None:
        return list(range(self.low, self.high + 1, self.step))

    def describe(self) -> str:
        return f"int_range({self.low}, {self.high}{f', {self.step}' if self.step != 1 else ''})"

    def show(self, value: int) -> str:
        return literal(int(value))

    def valid(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step)


@dataclass(frozen=True)
class Switch:
    """`optional(layer)`: the layer is there (true, the default: the author wrote it) or not."""

    @property
    def default(self) -> bool:
        return True

    def test_values(self) -> tuple:
        return True, False

    def count(self) -> int | None:
        return 2

    def grid(self) -> list | None:
        return [True, False]

    def describe(self) -> str:
        return "optional"

    def show(self, value: bool) -> str:
        return "on" if value else "off"

    def valid(self, value: Any) -> bool:
        return isinstance(value, bool)

    def suggest(self, trial, name: str) -> bool:
        return trial.suggest_categorical(name, [True, False])


Distribution = Union[Choice, Uniform, IntRange, Switch]


def distribution(kind: str, values: list, texts: list[str]) -> Distribution:
    """The distribution a search call describes; ValueError says what is wrong with its arguments."""
    if kind == "choice":
        if not values:
            raise ValueError("choice() needs at least one option")
        keys = tuple(v if isinstance(v, (bool, int, float, str)) or v is None else t for v, t in zip(values, texts))
        for i, key in enumerate(keys):
            if any(same(key, k) for k in keys[:i]):
                raise ValueError(f"choice() lists {texts[i]} twice")
        return Choice(keys, tuple(texts))
    usage = f"{kind}(low, high{', step' if kind == 'int_range' else ''})"
    if len(values) not in ((2, 3) if kind == "int_range" else (2,)):
        raise ValueError(f"{kind}() takes {usage}, got {len(values)} argument(s)")
    wrong = next((v for v in values if not _number(v)), None)
    if wrong is not None:
        raise ValueError(f"{kind}() takes numbers, got {wrong!r}")
    if kind == "int_range":
        wrong = next((v for v in values if not isinstance(v, int)), None)
        if wrong is not None:
            raise ValueError(f"int_range() takes integers, got {wrong!r}")
        low, high, step = (*values, 1)[:3]
        if step < 1:
            raise ValueError(f"int_range(): the step must be at least 1, got {step}")
        if (high - low) % step:
            raise ValueError(f"int_range(): {high} - {low} is not a multiple of the step {step}")
    else:
        low, high = float(values[0]), float(values[1])
    if not low < high:
        raise ValueError(f"{kind}() needs low < high, got {values[0]!r} and {values[1]!r}")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"log_uniform() needs low > 0, got {values[0]!r}")
    return IntRange(low, high, step) if kind == "int_range" else Uniform(low, high, kind == "log_uniform")


@dataclass(frozen=True)
class Edit:
    """Replace text[start:end] by `text`."""

    start: int
    end: int
    text: str = ""


def removal(text: str, start: int, end: int) -> Edit:
    """Remove a statement: its `;` too, and its whole line when nothing else is on it."""
    rest = text[end:]
    after = rest.lstrip(" \t")
    if after.startswith(";"):
        end += len(rest) - len(after) + 1
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end + 1
    if not text[line_start:start].strip() and not text[end:line_end].strip():
        return Edit(line_start, line_end)
    return Edit(start, end)


@dataclass(frozen=True)
class Param:
    name: str
    dist: Distribution
    span: Span  # the search call
    start: int  # its characters in the source: text[start:end]
    end: int
    on: tuple[Edit, ...] = ()  # optional(): the edits that keep its layer
    off: tuple[Edit, ...] = ()  # optional(): the edits that remove it

    @property
    def location(self) -> str:
        return f"{self.span.line}:{self.span.col}"

    def edits(self, value: Any) -> tuple[Edit, ...]:
        if isinstance(self.dist, Switch):
            return self.on if value else self.off
        text = self.dist.show(value)
        return (Edit(self.start, self.end, f"({text})" if text.startswith("-") else text),)  # `2 * (-1)`


@dataclass
class SearchSpace:
    params: dict[str, Param]
    text: str
    path: str
    tree: Any  # the parsed spec: points are built without parsing it again

    @classmethod
    def build(cls, found: list[Param], text: str, path: str, tree: Any) -> "SearchSpace":
        """Names clash only when the text names two things alike; the later one gets its location."""
        params: dict[str, Param] = {}
        for param in found:
            name = param.name if param.name not in params else f"{param.name}@{param.location}"
            params[name] = replace(param, name=name)
        return cls(params, text, path, tree)

    @cached_property
    def by_start(self) -> dict[int, Param]:
        return {p.start: p for p in self.params.values()}

    def defaults(self) -> dict[str, Any]:
        return {name: p.dist.default for name, p in self.params.items()}

    def size(self) -> int | None:
        """How many points the space has, or None when a parameter is continuous."""
        counts = [p.dist.count() for p in self.params.values()]
        return None if None in counts else math.prod(counts)

    def point(self, assignment: dict[str, Any]) -> dict[str, Any]:
        """A whole, checked point: the values given, the defaults for the rest."""
        errors = Collector(self.path, self.text)
        for name, value in assignment.items():
            param = self.params.get(name)
            if param is None:
                errors.error(f"no search parameter '{name}'{did_you_mean(name, self.params)}")
            elif not param.dist.valid(value):
                errors.error(f"{name} = {value!r} is outside {param.dist.describe()}", param.span)
        errors.raise_if_any()
        return {**self.defaults(), **assignment}

    def grid(self) -> dict[str, list]:
        errors = Collector(self.path, self.text)
        for param in self.params.values():
            if param.dist.count() is None:
                errors.error(f"grid search needs finite parameters, and {param.name} is {param.dist.describe()}: "
                             "use choice() or int_range(), or another sampler", param.span)
        size = self.size()
        if size is not None and size > MAX_GRID:
            errors.error(f"grid search over {size:,} points is beyond the limit of {MAX_GRID:,}; use another sampler")
        errors.raise_if_any()
        return {name: p.dist.grid() for name, p in self.params.items()}

    def fill_in(self, assignment: dict[str, Any]) -> str:
        """The spec's text at a point: values written in, optional layers kept or removed; formatted."""
        from ..formatter import format_text

        point = self.point(assignment)
        edits = sorted((e for name, p in self.params.items() for e in p.edits(point[name])),
                       key=lambda e: (e.start, -e.end))
        kept: list[Edit] = []
        reach = -1
        for edit in edits:
            if edit.end <= reach:  # inside a layer that is removed
                continue
            kept.append(edit)
            reach = max(reach, edit.end)
        text = self.text
        for edit in reversed(kept):
            text = text[:edit.start] + edit.text + text[edit.end:]
        return format_text(text, self.path)

    def headline(self) -> str:
        size = self.size()
        count = len(self.params)
        return (f"search space of {count} parameter{'s' if count != 1 else ''} "
                + (f"({size:,} points)" if size is not None else "(continuous)"))

    def table(self) -> str:
        """The parameters: name, place in the text, distribution and default (the model shown is at the defaults)."""
        rows = [(name, p.location, p.dist.describe(), p.dist.show(p.dist.default)) for name, p in self.params.items()]
        header = ("parameter", "at", "distribution", "default")
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        title = self.headline()
        lines = [title[0].upper() + title[1:]] + [
            "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in (header, *rows)]
        lines.insert(2, "  ".join("-" * w for w in widths))
        return "\n".join(lines)
