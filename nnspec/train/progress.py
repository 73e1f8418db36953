"""Keras's progress display: a live bar with ETA and running metrics (verbose=1), one line per
epoch (verbose=2), or nothing (verbose=0). tqdm draws the bar."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    def __init__(self, verbose: int, epochs: int, file=None):
        self.verbose = verbose
        self.epochs = epochs
        self.file = file or sys.stdout
        self.bar = None
        self.started = 0.0

    def epoch_begin(self, epoch: int, steps: int) -> None:
        self.started = time.perf_counter()
        self.steps = steps
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file)
        if self.verbose == 1:
            self.bar = tqdm(total=steps, file=self.file, ascii=".=", ncols=100, leave=True, mininterval=0.1,
                            bar_format="{n_fmt}/{total_fmt} [{bar:30}] - ETA: {remaining}{postfix}")

    def batch_end(self, logs: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(" - " + format_logs(logs), refresh=False)
            self.bar.update(1)

    def epoch_end(self, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self.started
        per_step = 1000 * elapsed / max(self.steps, 1)
        summary = f"{elapsed:.0f}s {per_step:.0f}ms/step - {format_logs(logs)}"
        if self.bar is not None:
            self.bar.bar_format = "{n_fmt}/{total_fmt} [{bar:30}] - {postfix}"
            self.bar.set_postfix_str(summary, refresh=True)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(f"{self.steps}/{self.steps} - {summary}", file=self.file)
