"""Batches for the loop, prepared ahead in a background thread.

`Batches` reads the batches of one epoch in order (the dataset's `batch`, then augmentation)
while the training step runs: onnxruntime and Pillow release the GIL, so reading, decoding and
augmenting overlap the step. Every batch depends only on (seed, epoch, batch index), so the
thread changes no result, and a resumed run sees exactly the batches of an unbroken one.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

import numpy as np

PREFETCH = 4  # batches prepared ahead

Batch = tuple  # xs, ys, the sample weights (training: and the size of the whole global batch)


class Batches:
    """Iterates `prepare(b)` for b in range(steps), `depth` batches ahead in a thread (0: inline).
    An exception in the thread is raised where its batch would have been; `close()` stops early."""

    def __init__(self, prepare: Callable[[int], Batch], steps: int, depth: int = PREFETCH):
        self.prepare, self.steps, self.depth = prepare, steps, depth
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread = None
        self.wait_s = 0.0  # time the consumer spent waiting for batches (inline: preparing them)
        if depth > 0 and steps > 0:
            self._thread = threading.Thread(target=self._work, name="nnspec-batches", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        for b in range(self.steps):
            if self._stop.is_set():
                return
            try:
                item = ("ok", self.prepare(b))
            except BaseException as exc:  # handed to the consumer, raised there
                item = ("error", exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return

    def __iter__(self) -> Iterator[Batch]:
        try:
            for b in range(self.steps):
                started = time.perf_counter()
                if self._thread is None:
                    batch = self.prepare(b)
                    self.wait_s += time.perf_counter() - started
                    yield batch
                    continue
                kind, value = self._queue.get()
                self.wait_s += time.perf_counter() - started
                if kind == "error":
                    raise value
                yield value
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:  # unblock a put
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.05)
            self._thread = None
