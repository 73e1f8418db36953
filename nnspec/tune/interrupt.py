"""Ctrl-C during a study, acted on where it is safe: at the next training batch or between trials, never
in the middle of a write to the study's storage (a KeyboardInterrupt there leaves a SQLite database
locked, and the writes that mark the trial failed wait for that lock). Pressed twice, it stops at once."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

from ..train.callbacks import Callback


class Interrupt:
    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, *_) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed (also a study callback: between trials)."""
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class StopOnInterrupt(Callback):
    """The fit loop's safe points: before the first batch and after each."""

    def __init__(self, interrupt: Interrupt):
        super().__init__()
        self.interrupt = interrupt

    def on_train_begin(self) -> None:
        self.interrupt.check()

    def on_batch_end(self, step: int, logs: dict) -> None:
        self.interrupt.check()
