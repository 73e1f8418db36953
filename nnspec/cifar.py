"""CIFAR-10 from its official binary distribution (`cifar-10-batches-bin`), never its pickled one:
data_batch_1.bin ... data_batch_5.bin train, test_batch.bin tests; each record is one label byte and
3,072 pixel bytes, the red, green and blue 32x32 planes in turn; batches.meta.txt names the classes.

The files are memory-mapped and a batch converts only its records (to channels-last floats), so the
150 MB training set is never held as floats in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Data, DataError, Sample
from .ir.training import Cifar10Data

SIDE, CHANNELS = 32, 3
RECORD = 1 + SIDE * SIDE * CHANNELS
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Cifar10(Data):
    def __init__(self, files: list[Path], classes: list[str], window: slice, normalize: float, source: str):
        self.normalize = np.float32(normalize)
        self.records = [self._map(f) for f in files]
        self.files = files
        self.ends = np.cumsum([len(r) for r in self.records])
        self.order = np.arange(self.ends[-1] if len(self.ends) else 0)[window]  # the start/stop window
        self.classes, self.source, self.notes, self.one_hot = classes, source, [], None

    @staticmethod
    def _map(path: Path) -> np.ndarray:
        size = path.stat().st_size
        if size == 0 or size % RECORD:
            raise DataError(f"{path}: {size} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each)")
        return np.memmap(path, dtype=np.uint8, mode="r", shape=(size // RECORD, RECORD))

    def __len__(self):
        return len(self.order)

    def _rows(self, indices) -> np.ndarray:
        flat = self.order[np.asarray(indices, np.int64)]
        which = np.searchsorted(self.ends, flat, side="right")
        starts = np.concatenate([[0], self.ends[:-1]])
        rows = np.empty((len(flat), RECORD), np.uint8)
        for f in np.unique(which):
            picked = which == f
            rows[picked] = self.records[f][flat[picked] - starts[f]]
        return rows

    def read_x(self, indices):
        pixels = self._rows(indices)[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE)
        # channels-last, as Keras's cifar10.load_data gives them
        return [pixels.transpose(0, 2, 3, 1).astype(np.float32) / self.normalize]

    def read_y(self, indices):
        return [self._rows(indices)[:, 0].astype(np.int64)]

    def x_samples(self):
        return [Sample((SIDE, SIDE, CHANNELS), np.dtype(np.float32))]

    def y_samples(self):
        return [Sample((), np.dtype(np.int64))]

    def check(self) -> None:
        if len(self) == 0:
            raise DataError(f"{self.source}: no samples")
        for path, records in zip(self.files, self.records):
            labels = np.asarray(records[:, 0])
            if (labels >= len(self.classes)).any():
                row = int(np.argmax(labels >= len(self.classes)))
                raise DataError(f"{path}: record {row}: label {labels[row]} is not one of the "
                                f"{len(self.classes)} classes")

    def describe(self, index: int) -> str:
        flat = int(self.order[index])
        f = int(np.searchsorted(self.ends, flat, side="right"))
        return f"{self.files[f]}: record {flat - (int(self.ends[f - 1]) if f else 0)}"


def load_cifar10(source: Cifar10Data, base: Path) -> Cifar10:
    folder = base / source.path
    if (folder / "cifar-10-batches-bin").is_dir():  # the folder the archive was unpacked in
        folder = folder / "cifar-10-batches-bin"
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (give the cifar-10-batches-bin folder of the binary version)")
    if source.subset == "train":
        files = sorted(folder.glob("data_batch_*.bin"), key=lambda p: p.stem.split("_")[-1].zfill(3))
    else:
        files = [folder / "test_batch.bin"] if (folder / "test_batch.bin").exists() else []
    if not files:
        wanted = "data_batch_1.bin ..." if source.subset == "train" else "test_batch.bin"
        raise DataError(f"{folder}: no {wanted} (the binary version of CIFAR-10; the Python pickles are refused)")
    meta = folder / "batches.meta.txt"
    names = meta.read_text(errors="replace").splitlines() if meta.exists() else CLASSES
    classes = [name.strip() for name in names if name.strip()]
    return Cifar10(files, classes, slice(source.start, source.stop), source.normalize, str(folder))
