"""The one exception the Keras reader raises for files it cannot or will not read."""
from __future__ import annotations


def _one_line(text: object) -> str:
    # Messages end up in compiler-style diagnostics: keep them on one line.
    return " ".join(str(text).split())


class KerasFormatError(Exception):
    """A Keras file that is refused or unreadable.

    The message is one line, ``FILE: PLACE: PROBLEM``; PLACE names the layer, the HDF5
    dataset path or the zip member when there is one. The parts stay available as
    ``path``, ``where`` and ``problem``.
    """

    def __init__(self, path: object, where: str | None, problem: str):
        self.path = _one_line(path)
        self.where = _one_line(where) if where else ""
        self.problem = _one_line(problem)
        parts = [self.path] + ([self.where] if self.where else []) + [self.problem]
        super().__init__(": ".join(parts))
