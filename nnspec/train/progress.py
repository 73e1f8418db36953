"""Keras's progress display: a live bar with ETA and running metrics (verbose=1), one line per
epoch (verbose=2), or nothing (verbose=0).

The bar (tqdm.auto, so it renders as a widget in Jupyter) is as wide as the terminal, less one
column, so no refresh wraps; at the end of an epoch it is cleared and the epoch's summary is printed
whole on its own line, however long (so val_loss and val_accuracy are always seen). Where the output
is not a terminal (a pipe, a file, a CI log) verbose=1 prints what verbose=2 does: no carriage-return
frames.
"""
from __future__ import annotations

import shutil
import sys
import time

BAR_WIDTH = 30  # Keras's
FALLBACK_COLUMNS = 80  # a terminal that reports no size (0x0)


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _auto_tqdm():
    from tqdm.auto import tqdm

    return tqdm


def in_notebook() -> bool:
    """Whether tqdm.auto draws Jupyter widgets here (an IPython kernel with ipywidgets)."""
    return "notebook" in _auto_tqdm().__module__


def live(file) -> bool:
    """Whether a live bar can be drawn: in a notebook or on a terminal."""
    return in_notebook() or (hasattr(file, "isatty") and file.isatty())


def columns() -> int:
    width = shutil.get_terminal_size((FALLBACK_COLUMNS, 24)).columns
    return width if width > 0 else FALLBACK_COLUMNS


class Progress:
    def __init__(self, verbose: int, epochs: int, file=None):
        self.verbose = verbose
        self.epochs = epochs
        self.file = file or sys.stdout
        self.live = verbose == 1 and live(self.file)
        self.bar = None
        self.width = FALLBACK_COLUMNS
        self.started = 0.0
        self.steps = 0

    def epoch_begin(self, epoch: int, steps: int) -> None:
        self.started = time.perf_counter()
        self.steps = steps
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file, flush=True)
        if self.live:
            self.width = columns() - 1
            # a widget takes ncols as pixels: it sizes itself
            self.bar = _auto_tqdm()(total=steps, file=self.file, ascii=".=", leave=False, mininterval=0.1,
                                    ncols=None if in_notebook() else self.width, bar_format=self._format(""))

    @staticmethod
    def _format(logs: str) -> str:
        """The running line: tqdm fills in the counts, bar and ETA; the logs are literal text."""
        escaped = logs.replace("{", "{{").replace("}", "}}")
        return f"{{n_fmt}}/{{total_fmt}} [{{bar:{BAR_WIDTH}}}] - ETA: {{remaining}}" + (f" - {escaped}" if logs else "")

    def batch_end(self, logs: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.bar_format = self._format(self._fitting(logs))
            self.bar.update(1)

    def _fitting(self, logs: dict[str, float]) -> str:
        """The running logs that fit beside the bar, whole entries only (tqdm cuts what is still too long)."""
        room = self.width - len(f"{self.steps}/{self.steps} [{'=' * BAR_WIDTH}] - ETA: 00:00 - ")
        shown: dict[str, float] = {}
        for key, value in logs.items():
            if len(format_logs({**shown, key: value})) > room:
                break
            shown[key] = value
        return format_logs(shown)

    def epoch_end(self, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self.started
        per_step = 1000 * elapsed / max(self.steps, 1)
        if self.bar is not None:
            self.bar.close()  # leave=False: the frame is cleared, and the summary takes its line
            self.bar = None
        if self.verbose:
            done = f" [{'=' * BAR_WIDTH}]" if self.verbose == 1 else ""
            print(f"{self.steps}/{self.steps}{done} - {elapsed:.0f}s {per_step:.0f}ms/step - {format_logs(logs)}",
                  file=self.file, flush=True)
