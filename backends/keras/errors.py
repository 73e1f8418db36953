"""The one exception the Keras reader raises for files it cannot or will not read."""
from __future__ import annotations

from ...errors import Diagnostic, SpecError


def _one_line(text: object) -> str:
    # Messages end up in compiler-style diagnostics: keep them on one line.
    return " ".join(str(text).split())


class KerasFormatError(SpecError):
    """A Keras file that is refused or unreadable.

    The message is one line, ``FILE: PLACE: PROBLEM``; PLACE names the layer, the HDF5
    dataset path or the zip member when there is one. The parts stay available as
    ``path``, ``where`` and ``problem``. A SpecError, so the CLI prints it and exits 2.
    """

    def __init__(self, path: object, where: str | None, problem: str):
        self.where = _one_line(where) if where else ""
        self.problem = _one_line(problem)
        super().__init__(Diagnostic(self.problem), _one_line(path))

    def render(self) -> str:
        return ": ".join([self.path] + ([self.where] if self.where else []) + [self.problem])
