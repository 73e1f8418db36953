"""Training data from disk: .npz/.npy arrays, CSV, MNIST IDX files. Every problem is a one-line
error naming the file and the place, raised before any training starts."""
from __future__ import annotations

import csv
import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SpecError
from .ir.training import CsvData, MnistData, NpyData, NpzData


class DataError(SpecError):
    """Bad data: the message names the file and the row, image or array."""


@dataclass
class Dataset:
    xs: list[np.ndarray]  # one array per model input, batch first
    ys: list[np.ndarray]  # one array per model output
    classes: list[str] | None = None  # label names, where the source had them (CSV categories)
    source: str = ""

    def __len__(self) -> int:
        return len(self.xs[0])

    def take(self, index: np.ndarray | slice) -> "Dataset":
        return Dataset([x[index] for x in self.xs], [y[index] for y in self.ys], self.classes, self.source)

    def split(self, fraction: float) -> tuple["Dataset", "Dataset"]:
        """Keras's validation_split: the last `fraction` of the samples, taken before any shuffling."""
        n = len(self)
        cut = n - int(n * fraction)
        return self.take(slice(0, cut)), self.take(slice(cut, n))


def load(source, base_dir: str | Path = ".") -> Dataset:
    """Read a data source of the spec's `data` section; relative paths are relative to the spec's folder."""
    base = Path(base_dir)
    loader = {NpzData: _npz, NpyData: _npy, CsvData: _csv, MnistData: _mnist}[type(source)]
    dataset = loader(source, base)
    _check(dataset)
    return dataset


def load_path(path: str | Path) -> Dataset:
    """A data file named on the command line, by its extension."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix == ".npz":
        return load(NpzData(path=str(path)))
    if path.is_dir():
        return load(MnistData(path=str(path)))
    raise DataError(f"{path}: unsupported data file; use .npz (x, y) or an MNIST folder")


def _npz(source: NpzData, base: Path) -> Dataset:
    path = base / source.path
    arrays = _open_npz(path)
    xs = _numbered(arrays, "x", path)
    ys = _numbered(arrays, "y", path, required=False)
    return Dataset(xs, ys, source=str(path))


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:  # never unpickle
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except ValueError as exc:
        raise DataError(f"{path}: {exc} (object arrays are refused)") from None
    except Exception as exc:  # zipfile/format errors: a truncated or foreign file
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def _numbered(arrays: dict, stem: str, path: Path, required: bool = True) -> list[np.ndarray]:
    if stem in arrays:
        return [arrays[stem]]
    out, i = [], 0
    while f"{stem}{i}" in arrays:
        out.append(arrays[f"{stem}{i}"])
        i += 1
    if not out and required:
        raise DataError(f"{path}: no array '{stem}' (or '{stem}0', '{stem}1', ...); it has {sorted(arrays)}")
    return out


def _npy(source: NpyData, base: Path) -> Dataset:
    def one(name: str) -> np.ndarray:
        path = base / name
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)  # memory-mapped: larger than memory works
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None

    return Dataset([one(source.x)], [one(source.y)], source=str(base / source.x))


def _csv(source: CsvData, base: Path) -> Dataset:
    path = base / source.path
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    labels = [source.labels] if isinstance(source.labels, str) else list(source.labels)
    features = source.features or [c for c in header if c not in labels]
    for column in features + labels:
        if column not in header:
            from .errors import did_you_mean

            raise DataError(f"{path}: no column '{column}'{did_you_mean(column, header)}")
    index = {c: i for i, c in enumerate(header)}
    x = np.empty((len(body), len(features)), np.float32)
    raw_labels = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{r}: {len(row)} fields, the header has {len(header)}")
        for j, column in enumerate(features):
            try:
                x[r - 2, j] = float(row[index[column]])
            except ValueError:
                raise DataError(f"{path}:{r}: column '{column}' is not a number: {row[index[column]]!r}") from None
        raw_labels.append([row[index[c]] for c in labels])
    y, classes = _labels(raw_labels, path)
    return Dataset([x], [y], classes, str(path))


def _labels(raw: list[list[str]], path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numeric label columns stay numbers; a single text column becomes class indices (sorted names)."""
    try:
        return np.array(raw, dtype=np.float32), None
    except ValueError:
        if len(raw[0]) != 1:
            raise DataError(f"{path}: text labels are supported in a single label column") from None
        classes = sorted({r[0] for r in raw})
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[r[0]] for r in raw], dtype=np.int64), classes


# ---- MNIST IDX -------------------------------------------------------------------------------------

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or gzip), validated against its own header."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes of data, file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{folder}: no {stem} or {stem}.gz")


def _mnist(source: MnistData, base: Path) -> Dataset:
    folder = base / source.path
    images = read_idx(_find(folder, f"{source.subset}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{source.subset}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    window = slice(source.start, source.stop)
    x = images[window].astype(np.float32) / np.float32(source.normalize)
    y = labels[window].astype(np.int64)
    if source.one_hot:
        y = np.eye(10, dtype=np.float32)[y]
    return Dataset([x], [y], [str(d) for d in range(10)], str(folder))


# ---- checks ------------------------------------------------------------------------------------------

def _check(data: Dataset) -> None:
    n = len(data.xs[0]) if data.xs else 0
    if n == 0:
        raise DataError(f"{data.source}: no samples")
    for kind, arrays in (("x", data.xs), ("y", data.ys)):
        for i, a in enumerate(arrays):
            if len(a) != n:
                raise DataError(f"{data.source}: {kind}{i} has {len(a)} samples, x0 has {n}")
            if a.dtype.kind == "f":
                bad = ~np.isfinite(np.asarray(a)).reshape(len(a), -1).all(axis=1)
                if bad.any():
                    raise DataError(f"{data.source}: {kind}{i} sample {int(np.argmax(bad))} has NaN or infinite values")
            elif a.dtype.kind not in "iub":
                raise DataError(f"{data.source}: {kind}{i} has unsupported dtype {a.dtype}")


def check_against_model(data: Dataset, model, analysis) -> None:
    """Shapes and label ranges against the model, before training starts."""
    if len(data.xs) != len(model.inputs):
        raise DataError(f"{data.source}: {len(data.xs)} input array(s) for a model with {len(model.inputs)} input(s)")
    for a, spec in zip(data.xs, model.inputs):
        want = tuple(spec.shape)
        got = a.shape[1:]
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            raise DataError(f"{data.source}: input '{spec.name}' expects samples of shape {want}, the data has {got}")
    outs = analysis.output_types
    if data.ys and len(data.ys) != len(outs):
        raise DataError(f"{data.source}: {len(data.ys)} target array(s) for a model with {len(outs)} output(s)")
    for y, out in zip(data.ys, outs):
        classes = out.shape[-1]
        if y.dtype.kind in "iu" and y.ndim <= 2 and (y.ndim == 1 or y.shape[1] == 1) and classes and classes > 1:
            if y.min() < 0 or y.max() >= classes:
                row = int(np.argmax((y < 0) | (y >= classes)))
                raise DataError(f"{data.source}: label {int(y.reshape(-1)[row])} at sample {row} is outside "
                                f"the model's {classes} classes")
