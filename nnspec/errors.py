"""Diagnostics: every user mistake becomes a SpecError that prints like a compiler's."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable

MAX_ERRORS = 20
SHOWN_LINE = 100  # characters of a source line shown under a message


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns count from 1, `end_col` is exclusive."""

    path: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


@dataclass
class Diagnostic:
    message: str
    span: Span | None = None
    json_path: str | None = None  # for JSON/YAML specs: "layers[2].units"
    source_line: str | None = None

    def render(self, path: str | None = None) -> str:
        if self.span is not None:
            head = f"{self.span.path}:{self.span.line}:{self.span.col}: error: {self.message}"
            if self.source_line is None:
                return head
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col:
                width = max(1, self.span.end_col - self.span.col)
            line = self.source_line.rstrip("\n").expandtabs(1)
            col = self.span.col
            if len(line) > SHOWN_LINE:  # a window around the column, so a long line stays readable
                start = max(0, col - 1 - SHOWN_LINE // 2)
                line = ("..." if start else "") + line[start:start + SHOWN_LINE] + \
                    ("..." if start + SHOWN_LINE < len(line) else "")
                col -= start - (3 if start else 0)
            caret = " " * (col - 1) + "^" * min(width, max(1, len(line) - col + 1))
            return f"{head}\n    {line}\n    {caret}"
        where = [p for p in (path, self.json_path) if p]
        if not where:  # a message that names its own file (a data file, a checkpoint) or none
            return f"nnspec: error: {self.message}"
        return f"{': '.join(where)}: error: {self.message}"


class SpecError(Exception):
    """One or more problems in user input; `str()` is the full, printable report."""

    def __init__(self, diagnostics: Diagnostic | str | Iterable[Diagnostic], path: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)[:MAX_ERRORS]
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.path) for d in self.diagnostics)


class Collector:
    """Gathers independent errors so one run reports them all (up to MAX_ERRORS)."""

    def __init__(self, path: str, text: str | None = None):
        self.path = path
        self.lines = text.splitlines() if text is not None else []
        self.diagnostics: list[Diagnostic] = []

    def error(self, message: str, span: Span | None = None, json_path: str | None = None) -> None:
        source = None
        if span is not None and 0 < span.line <= len(self.lines):
            source = self.lines[span.line - 1]
        self.diagnostics.append(Diagnostic(message, span, json_path, source))
        if len(self.diagnostics) >= MAX_ERRORS:
            self.raise_if_any()

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise SpecError(self.diagnostics, self.path)


def first_line(exc: BaseException) -> str:
    """An exception's message fit for one line: its first line, or its type's name where it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): an insertion, a deletion, a
    substitution or a swap of two neighbouring letters each cost 1."""
    previous2, previous = [], list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """rustc's rule: a case-insensitive match first, then the nearest spelling within a third of
    the name's length (at least 1), ties to the most similar (difflib's ratio: 'relux' is nearer 'relu' than 'relu6')."""
    lowered = {c.lower(): c for c in sorted(set(candidates))}
    key = name.lower()
    if key in lowered and lowered[key] != name:
        return f"; did you mean '{lowered[key]}'?"
    limit = max(len(name), 3) // 3
    scored = sorted((edit_distance(key, c), -difflib.SequenceMatcher(None, key, c).ratio(), c) for c in lowered)
    return f"; did you mean '{lowered[scored[0][2]]}'?" if scored and scored[0][0] <= limit else ""
