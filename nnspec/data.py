"""Training data: every source is a `Data`, a numbered set of samples read in batches.

    data = load(ImageFolderData(path="data/dogscats"), inputs=spec.model.inputs)
    xs, ys = data.batch(np.array([3, 1, 4]))   # one array per model input / output, batch first

Sources: in-memory arrays (`Dataset`), memory-mapped .npy and uncompressed .npz files (data larger
than memory trains), CSV with a header, HDF5 datasets read batch by batch, folders of images in
Keras's train/valid/test layout, MNIST IDX files, and the built-in sets xor, circles, cosine and
digits. The loop only calls `len()` and `batch()`; it does not care where samples come from.

Every problem is a one-line `DataError` naming the file and the row, image or sample, raised
before any training starts (`check()`, `for_model()`); nothing is silently dropped.
"""
from __future__ import annotations

import csv
import gzip
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .errors import SpecError, did_you_mean
from .ir import training as ir
from .ir.training import CsvData, MnistData, NpyData, NpzData
from .limits import MAX_MAGNITUDE

CHUNK_BYTES = 32 << 20  # checks read this much at a time: data larger than memory is scanned, not loaded
IMAGE_CACHE_BYTES = 512 << 20  # decoded images up to this size stay in memory (uint8); beyond, decoded per batch
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp"}


class DataError(SpecError):
    """Bad data: one line naming the file and the row, image or sample, and the problem
    (printed as `nnspec: error: FILE: PLACE: PROBLEM`; str() is the message alone)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.args = (message,)


class Sample(NamedTuple):
    """The shape (without the batch dimension) and dtype of one sample of one array."""

    shape: tuple[int, ...]
    dtype: np.dtype


# ---- the interface ---------------------------------------------------------------------------------

class Data:
    """A dataset: `len()` samples, read by index in batches. Subclasses implement `__len__`,
    `read_x` and `read_y` (indices in any order, possibly repeated)."""

    source: str = ""  # what messages name: a file or folder
    classes: list[str] | None = None  # label names, where the source has them
    one_hot: bool | None = None  # labels as one-hot rows (true), indices (false), or as the loss wants (None)
    notes: list[str]  # what loading found, for the user (images found, images skipped)

    def __len__(self) -> int:
        raise NotImplementedError

    def read_x(self, indices: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def read_y(self, indices: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def read_weights(self, indices: np.ndarray) -> np.ndarray | None:
        """The samples' loss weights (a source's sample_weight), or None where all weigh 1."""
        return None

    @property
    def has_targets(self) -> bool:
        return bool(self.y_samples())

    def batch(self, indices) -> tuple[list[np.ndarray], list[np.ndarray]]:
        indices = np.asarray(indices, np.int64)
        return self.read_x(indices), self.read_y(indices)

    def x_samples(self) -> list[Sample]:
        return [Sample(a.shape[1:], a.dtype) for a in self.read_x(np.zeros(1, np.int64))]

    def y_samples(self) -> list[Sample]:
        return [Sample(a.shape[1:], a.dtype) for a in self.read_y(np.zeros(1, np.int64))]

    def take(self, index) -> "Data":
        """The samples at `index` (a slice or indices), as a view."""
        return Subset(self, np.arange(len(self))[index])

    def split(self, fraction: float) -> tuple["Data", "Data"]:
        """Keras's validation_split: the last `fraction` of the samples, taken before any shuffling."""
        n = len(self)
        cut = n - int(n * fraction)
        return self.take(slice(0, cut)), self.take(slice(cut, n))

    def scan(self, x: bool = True, y: bool = True) -> Iterator[tuple[int, list[np.ndarray], list[np.ndarray]]]:
        """Every sample once, in chunks of about CHUNK_BYTES: (first index, xs, ys)."""
        per = sum(math.prod(s.shape) * s.dtype.itemsize for s in (self.x_samples() if x else []) +
                  (self.y_samples() if y else []))
        rows = max(1, CHUNK_BYTES // max(per, 1))
        for start in range(0, len(self), rows):
            idx = np.arange(start, min(start + rows, len(self)))
            yield start, self.read_x(idx) if x else [], self.read_y(idx) if y else []

    def check(self) -> None:
        """Dtypes and values: NaN or infinite values, strings and objects are refused."""
        if len(self) == 0:
            raise DataError(f"{self.source}: no samples")
        for kind, samples in (("x", self.x_samples()), ("y", self.y_samples())):
            for i, s in enumerate(samples):
                problem = dtype_problem(s.dtype)
                if problem is not None:
                    raise DataError(f"{self.source}: {_name(kind, i, len(samples))} {problem}")
        for start, xs, ys in self.scan():
            for kind, arrays in (("x", xs), ("y", ys)):
                for i, a in enumerate(arrays):
                    problem = value_problem(a)
                    if problem is not None:
                        row, what = problem
                        raise DataError(f"{self.describe(start + row)}: {_name(kind, i, len(arrays))} {what}")

    def describe(self, index: int) -> str:
        """Where sample `index` comes from, for messages."""
        return f"{self.source}: sample {index}"


def dtype_problem(dtype: np.dtype) -> str | None:
    """Why arrays of `dtype` cannot go into a model (strings, complex numbers, objects), or None."""
    if dtype.kind in "fiub":
        return None
    what = {"U": "strings", "S": "bytes", "c": "complex numbers", "O": "Python objects"}.get(dtype.kind, "values")
    return f"holds {what} (dtype {dtype}); models take real numbers or booleans"


def value_problem(a: np.ndarray) -> tuple[int, str] | None:
    """The first sample (row) of a float array with NaN, infinite or overflowing values, and what is wrong."""
    if a.dtype.kind != "f" or not len(a):
        return None
    rows = a.reshape(len(a), -1)
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        return int(np.argmax(bad)), "has NaN or infinite values"
    bad = (np.abs(rows) > MAX_MAGNITUDE).any(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        return row, (f"has values up to {float(np.abs(rows[row]).max()):.3g}, beyond ±{MAX_MAGNITUDE:.2g}: float32 "
                     "arithmetic on them overflows to infinity and NaN; scale the data (rescale or normalize)")
    return None


def _name(kind: str, i: int, count: int) -> str:
    return kind if count == 1 else f"{kind}{i}"


class Subset(Data):
    """Some samples of another dataset, in a given order (a view: nothing is copied)."""

    def __init__(self, inner: Data, indices: np.ndarray):
        self.inner, self.indices = inner, np.asarray(indices, np.int64)
        self.source, self.classes, self.notes, self.one_hot = inner.source, inner.classes, [], inner.one_hot

    def __len__(self):
        return len(self.indices)

    def read_x(self, indices):
        return self.inner.read_x(self.indices[indices])

    def read_y(self, indices):
        return self.inner.read_y(self.indices[indices])

    def read_weights(self, indices):
        return self.inner.read_weights(self.indices[indices])

    def x_samples(self):
        return self.inner.x_samples()

    def y_samples(self):
        return self.inner.y_samples()

    def take(self, index):
        return Subset(self.inner, self.indices[index])

    def describe(self, index):
        return self.inner.describe(int(self.indices[index]))


class Wrapper(Data):
    """A transformation of another dataset's batches; views (take, split) keep the transformation."""

    def __init__(self, inner: Data):
        self.inner = inner
        self.source, self.classes, self.notes, self.one_hot = inner.source, inner.classes, inner.notes, inner.one_hot

    def __len__(self):
        return len(self.inner)

    def read_weights(self, indices):
        return self.inner.read_weights(indices)

    # what a transformation leaves alone is the inner dataset's
    def read_y(self, indices):
        return self.inner.read_y(indices)

    def y_samples(self):
        return self.inner.y_samples()

    def rewrap(self, inner: Data) -> "Wrapper":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.inner = inner
        return clone

    def take(self, index):
        return self.rewrap(self.inner.take(index))

    def split(self, fraction):
        a, b = self.inner.split(fraction)
        return self.rewrap(a), self.rewrap(b)

    def describe(self, index):
        return self.inner.describe(index)


# ---- arrays in memory or memory-mapped -----------------------------------------------------------------

@dataclass
class Dataset(Data):
    """Arrays, batch first: in memory or np.memmap (then a batch reads only its rows)."""

    xs: list[np.ndarray]  # one array per model input
    ys: list[np.ndarray]  # one array per model output (none for inputs only)
    classes: list[str] | None = None  # label names, where the source had them (CSV categories)
    source: str = ""
    weights: np.ndarray | None = None  # one loss weight per sample (sample_weight)

    def __post_init__(self):
        self.notes = []

    def __len__(self) -> int:
        return len(self.xs[0]) if self.xs else 0

    def read_x(self, indices):
        return [_rows(x, indices) for x in self.xs]

    def read_y(self, indices):
        return [_rows(y, indices) for y in self.ys]

    def read_weights(self, indices):
        return None if self.weights is None else _rows(self.weights, indices).reshape(len(indices))

    def x_samples(self):
        return [Sample(x.shape[1:], x.dtype) for x in self.xs]

    def y_samples(self):
        return [Sample(y.shape[1:], y.dtype) for y in self.ys]

    def take(self, index) -> "Dataset":
        return Dataset([x[index] for x in self.xs], [y[index] for y in self.ys], self.classes, self.source,
                       None if self.weights is None else self.weights[index])

    def check(self) -> None:
        n = len(self)
        for kind, arrays in (("x", self.xs), ("y", self.ys)):
            for i, a in enumerate(arrays):
                if len(a) != n:
                    raise DataError(f"{self.source}: {_name(kind, i, len(arrays))} has {len(a)} samples, "
                                    f"{_name('x', 0, len(self.xs))} has {n}")
        if self.weights is not None:
            w = self.weights
            if len(w) != n or w.shape[1:] not in ((), (1,)) or w.dtype.kind not in "fiub":
                raise DataError(f"{self.source}: sample_weight must be one number per sample ({n}), "
                                f"got shape {w.shape} ({w.dtype})")
            bad = ~np.isfinite(w.reshape(n)) | (w.reshape(n) < 0)
            if bad.any():
                raise DataError(f"{self.describe(int(np.argmax(bad)))}: sample_weight "
                                f"{w.reshape(n)[np.argmax(bad)]} is not a finite number >= 0")
        super().check()


def _rows(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    if len(indices) and indices[-1] - indices[0] == len(indices) - 1 and np.all(np.diff(indices) == 1):
        return np.asarray(array[indices[0]:indices[-1] + 1])  # a contiguous run: one read
    return np.asarray(array[indices])


# ---- preprocessing the spec declares ------------------------------------------------------------------

class Prepared(Wrapper):
    """The preprocessing a source declares: x * rescale, then (x - mean) / std (the means and
    deviations broadcast over the last axis), then each sample reshaped; labels made binary
    (1 for the `positive` class, else 0)."""

    def __init__(self, inner: Data, source):
        super().__init__(inner)
        self.rescale, self.reshape = source.rescale, source.reshape
        self.mean = None if source.mean is None else np.asarray(source.mean, np.float32)
        self.std = None if source.std is None else np.asarray(source.std, np.float32)
        if self.std is not None and (self.std <= 0).any():
            raise DataError(f"{inner.source}: std must be positive, got {source.std}")
        self.positive = None if source.positive is None else self._positive_index(source.positive)
        if self.positive is not None:
            name = inner.classes[self.positive] if inner.classes else str(self.positive)
            self.classes = [f"not {name}", name]

    @property
    def scales(self) -> bool:
        return self.rescale is not None or self.mean is not None or self.std is not None

    def _positive_index(self, positive: int | str) -> int:
        if isinstance(positive, int):
            return positive
        if not self.inner.classes or positive not in self.inner.classes:
            known = f"; its classes are {self.inner.classes}" if self.inner.classes else ""
            raise DataError(f"{self.source}: positive={positive!r} is not a class of the data{known}")
        return self.inner.classes.index(positive)

    def _sample_shape(self, shape: tuple) -> tuple:
        if self.reshape is None:
            return shape
        size, known = math.prod(shape), math.prod(d for d in self.reshape if d != -1)
        if (size % known if -1 in self.reshape else size != known):
            raise DataError(f"{self.source}: reshape={self.reshape} cannot hold samples of shape {shape} "
                            f"({size} values)")
        return tuple(size // known if d == -1 else d for d in self.reshape)

    def read_x(self, indices):
        out = []
        for x in self.inner.read_x(indices):
            if self.scales:
                x = x.astype(np.float32)
            if self.rescale is not None:
                x *= np.float32(self.rescale)
            if self.mean is not None:
                x -= self.mean
            if self.std is not None:
                x /= self.std
            out.append(x.reshape(len(x), *self._sample_shape(x.shape[1:])))
        return out

    def read_y(self, indices):
        ys = self.inner.read_y(indices)
        if self.positive is None:
            return ys
        return [(y.reshape(len(y)) == self.positive).astype(np.int64) for y in ys]

    def x_samples(self):
        return [Sample(self._sample_shape(s.shape), np.dtype(np.float32) if self.scales else s.dtype)
                for s in self.inner.x_samples()]

    def y_samples(self):
        if self.positive is None:
            return self.inner.y_samples()
        for s in self.inner.y_samples():
            if s.dtype.kind not in "iub" or s.shape not in ((), (1,)):
                raise DataError(f"{self.source}: positive= needs class labels (one integer per sample), the "
                                f"targets have shape {s.shape} ({s.dtype})")
        return [Sample((), np.dtype(np.int64)) for _ in self.inner.y_samples()]

    def check(self):
        for s in self.inner.x_samples():
            for what, v in (("mean", self.mean), ("std", self.std)):
                if v is not None and v.ndim and (not s.shape or v.shape[-1] not in (1, s.shape[-1])):
                    raise DataError(f"{self.source}: {what} has {v.shape[-1]} values; the samples' last axis "
                                    f"has {s.shape[-1] if s.shape else 1}")
        self.x_samples()  # a reshape or positive= that cannot apply is said here, before training
        self.y_samples()
        self.inner.check()


# ---- fitting the data to a model ---------------------------------------------------------------------

CATEGORICAL_LOSSES = {"categorical_crossentropy", "categorical_hinge", "kl_divergence"}


class ForModel(Wrapper):
    """The data as a model takes it: inputs cast to the input's dtype (and given a trailing channel
    axis when the model's input has one more axis of size 1), class labels as one-hot rows or
    indices, as the loss wants."""

    def __init__(self, inner: Data, x_plan: list, y_plan: list):
        super().__init__(inner)
        self.x_plan, self.y_plan = x_plan, y_plan  # per array: (shape or None, dtype); (form, classes)

    def read_x(self, indices):
        out = []
        for x, (shape, dtype) in zip(self.inner.read_x(indices), self.x_plan):
            if shape is not None:
                x = x.reshape(len(x), *shape)
            out.append(x.astype(dtype, copy=False))
        return out

    def read_y(self, indices):
        out = []
        for y, (form, classes) in zip(self.inner.read_y(indices), self.y_plan):
            if form == "one_hot":
                y = np.eye(classes, dtype=np.float32)[y.reshape(len(y)).astype(np.int64)]
            elif form == "index":
                y = y.reshape(len(y)).astype(np.int64)
            elif form == "column":
                y = y.reshape(len(y), 1).astype(np.float32)
            elif y.dtype.kind == "f" and y.dtype != np.float32:
                y = y.astype(np.float32)
            out.append(y)
        return out

    def x_samples(self):
        return [Sample(tuple(shape) if shape is not None else s.shape, np.dtype(dtype))
                for s, (shape, dtype) in zip(self.inner.x_samples(), self.x_plan)]

    def y_samples(self):
        out = []
        for s, (form, classes) in zip(self.inner.y_samples(), self.y_plan):
            out.append({"one_hot": Sample((classes,), np.dtype(np.float32)),
                        "index": Sample((), np.dtype(np.int64)),
                        "column": Sample((1,), np.dtype(np.float32))}.get(
                form, Sample(s.shape, np.dtype(np.float32) if s.dtype.kind == "f" else s.dtype)))
        return out


def _label_form(source: str, loss, one_hot: bool | None, classes: int) -> str:
    """How class-index labels reach an output of `classes` classes: as they are ("index") or as
    one-hot rows. The loss decides unless the source's one_hot says; a loss that cannot take
    either is refused here, in one line with the fix, before any graph is built."""
    if loss is None:
        return "one_hot" if one_hot else "index"
    sparse = loss.name.startswith("sparse")
    if sparse and one_hot:
        raise DataError(f"{source}: one_hot=true makes one-hot label rows, but {loss.name} takes class indices; "
                        "drop one_hot=true or use categorical_crossentropy")
    if sparse:
        return "index"
    if one_hot or (one_hot is None and loss.name in CATEGORICAL_LOSSES):
        return "one_hot"
    said = "one_hot=false gives" if one_hot is False else "the labels are"
    raise DataError(f"{source}: {said} class indices, but {loss.name} compares each of the model's {classes} "
                    "outputs with a target of the same shape; use sparse_categorical_crossentropy or "
                    "categorical_crossentropy, or one-hot targets (one_hot=true on the data source)")


def _check_targets_for_sparse(source: str, loss, sample: Sample, classes: int) -> None:
    if loss is not None and loss.name.startswith("sparse") and sample.shape not in ((), (1,)):
        form = (f"one-hot rows of {classes}" if sample.shape == (classes,) else f"of shape {sample.shape}")
        raise DataError(f"{source}: the labels are {form}, but {loss.name} takes one class index per sample; "
                        "use categorical_crossentropy, or give the labels as class indices")


def for_model(data: Data, model, analysis, loss=None, one_hot: bool | None = None) -> Data:
    """`data` fitted to `model` and checked against it (shapes, dtypes, label ranges), before training.
    `loss`: the loss of the first output (picks one-hot rows or class indices for labels)."""
    data.check()
    xs = data.x_samples()
    if len(xs) != len(model.inputs):
        raise DataError(f"{data.source}: {len(xs)} input array(s) for a model with {len(model.inputs)} input(s)")
    x_plan = []
    for s, spec in zip(xs, model.inputs):
        want, got = tuple(spec.shape), tuple(s.shape)
        shape = sample_shape_for(got, want)
        if shape is None:
            raise DataError(f"{data.source}: input '{spec.name}' expects samples of shape {want}, the data has {got}")
        shape = None if shape == got else shape
        if spec.dtype.startswith("int") and s.dtype.kind == "f":
            raise DataError(f"{data.source}: input '{spec.name}' takes {spec.dtype} values, the data has {s.dtype}")
        x_plan.append((shape, np.dtype(spec.dtype)))
    y_plan = []
    ys = data.y_samples()
    outs = analysis.output_types
    if ys and len(ys) != len(outs):
        raise DataError(f"{data.source}: {len(ys)} target array(s) for a model with {len(outs)} output(s)")
    losses = loss if isinstance(loss, list) else [loss] * len(outs)
    for s, out, l in zip(ys, outs, losses):
        classes = out.shape[-1] if out.shape else 1
        labels = s.dtype.kind in "iub" and (s.shape == () or s.shape == (1,))
        _check_targets_for_sparse(data.source, l, s, classes)
        if labels and classes and classes > 1:
            y_plan.append((_label_form(data.source, l, one_hot, classes), classes))
        elif s.shape == () and tuple(out.shape) == (1,):
            y_plan.append(("column", 1))
        else:
            y_plan.append((None, classes))
    fitted = ForModel(data, x_plan, y_plan)
    if ys:
        _check_labels(data, [(i, classes) for i, ((form, classes), s, out) in enumerate(zip(y_plan, ys, outs))
                             if form in ("one_hot", "index") or (form is None and s.shape == () and out.shape)])
        _check_target_shapes(fitted, outs)
    return fitted


def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got))


def sample_shape_for(got: tuple, want: tuple) -> tuple | None:
    """The shape samples of shape `got` take for an input of shape `want` (batch excluded): as they
    are, or with a trailing channel of 1 added ((28, 28) images for a (28, 28, 1) input, as Keras's
    tutorials feed them); None when they do not fit. `train` and `predict` both go through here."""
    if _fits(got, want):
        return got
    if _fits(got + (1,), want):
        return got + (1,)
    return None


def _check_labels(data: Data, wanted: list[tuple[int, int]]) -> None:
    """Class labels (targets `i` of a model with `classes` classes) are whole numbers in range."""
    if not wanted:
        return
    for start, _, ys in data.scan(x=False):
        for i, classes in wanted:
            y = ys[i].reshape(len(ys[i]))
            bad = y != np.round(y)
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"{data.describe(start + row)}: label {y[row]:g} is not a class index (a whole "
                                "number)")
            bad = (y < 0) | (y >= classes)
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"{data.describe(start + row)}: label {int(y[row])} is outside the model's "
                                f"{classes} classes (0 to {classes - 1})")


def _check_target_shapes(data: Data, outs) -> None:
    for i, (s, out) in enumerate(zip(data.y_samples(), outs)):
        want = tuple(out.shape)
        if s.shape == () and len(want) >= 1:  # class indices
            continue
        if not _fits(tuple(s.shape), want):
            raise DataError(f"{data.source}: output {i} gives samples of shape {want}, the targets have {s.shape}")


# ---- loading ---------------------------------------------------------------------------------------------


def load(source, base_dir: str | Path = ".", *, inputs: Sequence | None = None, classes: list[str] | None = None,
         skip_bad: bool = False) -> Data:
    """A data source of the spec's `data` section (relative paths are relative to the spec's folder).
    `inputs`: the model's inputs (image folders take their size and channels from the first);
    `classes`: the label names a trained model knows (CSV text labels and image folders map to them);
    `skip_bad`: skip unreadable images (counted in `notes`) instead of stopping."""
    base = Path(base_dir)
    loaders = {NpzData: _npz, NpyData: _npy, CsvData: _csv, MnistData: _mnist, ir.Cifar10Data: _cifar10,
               ir.Hdf5Data: _hdf5, ir.ImageFolderData: _images, ir.XorData: _xor, ir.CirclesData: _circles,
               ir.CosineData: _cosine, ir.DigitsData: _digits}
    if source.sample_weight is not None and type(source) not in (NpzData, NpyData, CsvData):
        raise DataError(f"{source.name}(): sample_weight names an array of npz, a file of npy or a column of csv "
                        "data; this source has none")
    data = loaders[type(source)](source, base, inputs=inputs, classes=classes, skip_bad=skip_bad)
    if any(getattr(source, k) is not None for k in ("rescale", "mean", "std", "reshape", "positive")):
        data = Prepared(data, source)
    data.one_hot = source.one_hot  # what the spec asked for the labels (None: what the loss wants)
    return data  # for_model() checks it (values, then against the model) before training


def parse_source(text: str):
    """A source as written on the command line: a path, or a call such as `csv("iris.csv", labels=species)`."""
    from pydantic import TypeAdapter, ValidationError

    from .frontend import parse_value
    value = parse_value(text, "--data")
    try:
        return TypeAdapter(ir.DataSource).validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"][1:] if not isinstance(p, int))
        raise DataError(f"{text}: {where + ': ' if where else ''}{error['msg']}") from None


def source_for_path(path: str | Path):
    """The data source a path names, by its form: .npz, .npy, .csv (last column: labels), .h5/.hdf5
    (datasets x and y), an MNIST IDX folder, a folder of images, or a built-in set's name."""
    text = str(path)
    if "(" in text or text in ir.DATA_SOURCES.names and not Path(text).exists():
        return parse_source(text)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return NpzData(path=text)
    if suffix == ".npy":
        return NpyData(x=text)
    if suffix in (".h5", ".hdf5"):
        return ir.Hdf5Data(path=text)
    if suffix == ".csv":
        header = _csv_header(path)
        return CsvData(path=text, labels=header[-1])
    if path.is_dir():
        if any(path.glob("*-images-idx3-ubyte*")):
            subset = "train" if any(path.glob("train-images-idx3-ubyte*")) else "t10k"
            return MnistData(path=text, subset=subset)
        return ir.ImageFolderData(path=text)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    raise DataError(f"{path}: unsupported data file; use .npz, .npy, .csv, .h5, an MNIST or image folder, "
                    f"or a source such as 'csv(\"{path.name}\", labels=label)'")


def load_path(path: str | Path, template=None, **kwargs) -> Data:
    """A data file named on the command line (see source_for_path); a bare path takes the preprocessing
    (rescale, mean, std, one_hot) of `template`, the spec's own data source, so a model trained on
    rescaled images sees its new images rescaled alike."""
    source = source_for_path(path)
    if template is not None and not ("(" in str(path)):
        source = with_preprocessing(source, template)
    return load(source, ".", **kwargs)


PREPROCESSING = ("rescale", "mean", "std", "reshape", "one_hot", "positive")


def with_preprocessing(source, template):
    """`source` with the preprocessing of `template` where it sets none of its own."""
    if any(getattr(source, k) is not None and k in source.model_fields_set for k in PREPROCESSING):
        return source
    update = {k: getattr(template, k) for k in PREPROCESSING if k in template.model_fields_set}
    return source.model_copy(update=update) if update else source


def _open(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


# ---- .npz and .npy ------------------------------------------------------------------------------------

def _npz(source: NpzData, base: Path, **_) -> Dataset:
    path = base / source.path
    arrays, compressed = _open_npz(path)
    xs = _numbered(arrays, "x", path)
    ys = _numbered(arrays, "y", path, required=False)
    weights = None
    if source.sample_weight is not None:
        if source.sample_weight not in arrays:
            raise DataError(f"{path}: no array '{source.sample_weight}' for sample_weight"
                            f"{did_you_mean(source.sample_weight, arrays) or f'; it has {sorted(arrays)}'}")
        weights = arrays[source.sample_weight]
    data = Dataset(xs, ys, source=str(path), weights=weights)
    if compressed:
        data.notes.append(f"{path}: compressed members ({', '.join(compressed)}) were read into memory; "
                          "np.savez (uncompressed) files are memory-mapped")
    return data


def _open_npz(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each member of an .npz: memory-mapped where it is stored uncompressed, else read into memory."""
    with _open(path) as f:
        try:
            infos = zipfile.ZipFile(f).infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from None
        size = os.fstat(f.fileno()).st_size
        arrays, compressed = {}, []
        for info in infos:
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            stored = info.compress_type == zipfile.ZIP_STORED
            mapped = _map_member(f, info, path, size) if stored else None
            if mapped is None:  # compressed, empty, or a .npy format version without a public reader
                if not stored:
                    compressed.append(key)
                mapped = _read_member(path, info.filename)
            arrays[key] = mapped
    return arrays, compressed


def _map_member(f, info: zipfile.ZipInfo, path: Path, size: int) -> np.ndarray | None:
    f.seek(info.header_offset)
    local = f.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise DataError(f"{path}: member {info.filename}: corrupt zip header")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    f.seek(info.header_offset + 30 + name_len + extra_len)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
    except (ValueError, SyntaxError, TokenError) as exc:  # NumPy parses the header as a Python literal
        raise DataError(f"{path}: member {info.filename}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: member {info.filename}: object arrays are refused (they would need unpickling)")
    offset = f.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes > size or nbytes != info.file_size - (offset - info.header_offset - 30 - name_len - extra_len):
        raise DataError(f"{path}: member {info.filename}: truncated ({nbytes} bytes of data expected)")
    if nbytes == 0:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _read_member(path: Path, name: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:  # never unpickle
            return data[name[:-4]]
    except ValueError as exc:
        raise DataError(f"{path}: {exc} (object arrays are refused)") from None
    except Exception as exc:  # zlib/format errors: a truncated or foreign file
        raise DataError(f"{path}: member {name}: unreadable ({exc})") from None


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


def _npy(source: NpyData, base: Path, **_) -> Dataset:
    def one(name: str) -> np.ndarray:
        path = base / name
        _open(path).close()
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)  # memory-mapped: larger than memory works
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
        except (SyntaxError, TokenError):  # NumPy parses the header as a Python literal
            raise DataError(f"{path}: not a .npy array (a damaged header)") from None
        except EOFError:
            raise DataError(f"{path}: not a .npy array (the file is empty or cut short)") from None
        except OSError as exc:
            raise DataError(f"{path}: not a .npy array ({exc})") from None

    return Dataset([one(source.x)], [one(source.y)] if source.y else [], source=str(base / source.x),
                   weights=one(source.sample_weight) if source.sample_weight else None)


# ---- CSV --------------------------------------------------------------------------------------------------

def _csv_header(path: Path) -> list[str]:
    with _open(path):
        pass
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise DataError(f"{path}: empty file")
    return header


def _csv(source: CsvData, base: Path, classes: list[str] | None = None, **_) -> Dataset:
    path = base / source.path
    _open(path).close()
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    labels = [source.labels] if isinstance(source.labels, str) else list(source.labels)
    weight = [source.sample_weight] if source.sample_weight else []
    features = source.features or [c for c in header if c not in labels + weight]
    for column in features + labels + weight:
        if column not in header:
            hint = did_you_mean(column, header) or f"; the header has {', '.join(header)}"
            raise DataError(f"{path}: no column '{column}'{hint}")
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    index = {c: i for i, c in enumerate(header)}
    x = np.empty((len(body), len(features + weight)), np.float32)
    raw_labels = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{r}: {len(row)} fields, the header has {len(header)}")
        for j, column in enumerate(features + weight):
            text = row[index[column]]
            try:
                value = float(text)
            except ValueError:
                what = "is empty" if not text.strip() else f"is not a number: {text!r}"
                raise DataError(f"{path}:{r}: column '{column}' {what}") from None
            if not math.isfinite(value):
                raise DataError(f"{path}:{r}: column '{column}' is not finite: {text!r}")
            x[r - 2, j] = value
        raw_labels.append([row[index[c]] for c in labels])
    y, names = _labels(raw_labels, path, labels, classes)
    if weight:
        return Dataset([x[:, :-1]], [y], names, str(path), x[:, -1])
    return Dataset([x], [y], names, str(path))


def _labels(raw: list[list[str]], path: Path, columns: list[str], known: list[str] | None):
    """Numeric label columns stay numbers; a single text column becomes class indices (sorted names,
    or the names a trained model knows)."""
    for r, row in enumerate(raw, start=2):
        empty = next((c for c, v in zip(columns, row) if not v.strip()), None)
        if empty is not None:
            raise DataError(f"{path}:{r}: column '{empty}' is empty (no label)")
    try:
        values = np.array(raw, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and known is None:
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise DataError(f"{path}:{int(np.argmax(bad)) + 2}: label is not finite")
        if np.all(values == np.round(values)) and len(columns) == 1:
            return values.reshape(-1).astype(np.int64), None
        return values.astype(np.float32), None
    if len(raw[0]) != 1:
        raise DataError(f"{path}: text labels are supported in a single label column, not {', '.join(columns)}")
    names = known if known is not None else sorted({r[0] for r in raw})
    lookup = {c: i for i, c in enumerate(names)}
    out = np.empty(len(raw), np.int64)
    for r, (label,) in enumerate(raw):
        if label not in lookup:
            raise DataError(f"{path}:{r + 2}: label {label!r} is not one of the model's classes "
                            f"({', '.join(names)})")
        out[r] = lookup[label]
    return out, list(names)


# ---- HDF5 ---------------------------------------------------------------------------------------------------

class Hdf5Dataset(Data):
    """Datasets of an HDF5 file, read batch by batch (a batch's rows in increasing order, as HDF5 wants)."""

    def __init__(self, path: Path, xs: list[str], ys: list[str]):
        import h5py

        from .backends.keras import h5safe
        from .backends.keras.errors import KerasFormatError

        self.source, self.classes, self.notes = str(path), None, []
        _open(path).close()
        try:
            self.file = h5safe.open_file(str(path), str(path))
            h5safe.check_file(self.file, str(path))  # external and virtual datasets, links, plugins: refused
        except KerasFormatError as exc:
            raise DataError(exc.render()) from None
        self.names = (xs, ys)

        def dataset(name):
            obj = self.file.get(name)
            if not isinstance(obj, h5py.Dataset):
                found = []
                self.file.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
                raise DataError(f"{path}: no dataset '{name}'{did_you_mean(name, found)}; it has "
                                f"{', '.join(found[:10]) or 'none'}")
            if obj.shape == () or obj.dtype.kind not in "fiub":
                raise DataError(f"{path}: dataset '{name}' has unsupported dtype {obj.dtype} or no sample axis")
            return obj

        self.xs = [dataset(n) for n in xs]
        self.ys = [dataset(n) for n in ys]
        n = len(self.xs[0])
        for name, d in zip(xs + ys, self.xs + self.ys):
            if len(d) != n:
                raise DataError(f"{path}: dataset '{name}' has {len(d)} samples, '{xs[0]}' has {n}")

    def __len__(self):
        return len(self.xs[0])

    def _read(self, datasets, indices):
        if not len(indices):
            return [np.zeros((0, *d.shape[1:]), d.dtype) for d in datasets]
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        unique, inverse = np.unique(wanted, return_inverse=True)
        lo, hi = int(unique[0]), int(unique[-1]) + 1
        out = []
        for d in datasets:
            if hi - lo <= 4 * len(unique):  # close together: one read of the span
                block = d[lo:hi][unique - lo]
            else:
                block = d[unique]  # HDF5 point selection, strictly increasing
            rows = np.empty((len(indices), *d.shape[1:]), d.dtype)
            rows[order] = block[inverse]
            out.append(rows)
        return out

    def read_x(self, indices):
        return self._read(self.xs, np.asarray(indices, np.int64))

    def read_y(self, indices):
        return self._read(self.ys, np.asarray(indices, np.int64))

    def x_samples(self):
        return [Sample(d.shape[1:], d.dtype) for d in self.xs]

    def y_samples(self):
        return [Sample(d.shape[1:], d.dtype) for d in self.ys]


def _hdf5(source: ir.Hdf5Data, base: Path, **_) -> Data:
    as_list = lambda v: [] if v is None else [v] if isinstance(v, str) else list(v)  # noqa: E731
    return Hdf5Dataset(base / source.path, as_list(source.x), as_list(source.y))


# ---- image folders ------------------------------------------------------------------------------------------

_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}
_SUBSET_FOLDERS = {"train": ("train",), "valid": ("valid", "validation", "val"), "test": ("test",)}


class ImageFolder(Data):
    """Images in one folder per class, decoded with Pillow and resized; float32 pixels 0..255,
    labels the class indices (classes: the folder names, sorted)."""

    def __init__(self, folder: Path, files: list[Path], labels: np.ndarray, classes: list[str],
                 size: tuple[int, int], mode: str, channels: int, resample: int, keep_axis: bool):
        self.source, self.folder, self.files, self.labels = str(folder), folder, files, labels
        self.classes, self.notes = classes, []
        self.size, self.mode, self.channels, self.resample = size, mode, channels, resample
        self.keep_axis = keep_axis  # (h, w, c) samples; False: (h, w) for an input without a channel axis
        self.cache: np.ndarray | None = None

    def __len__(self):
        return len(self.files)

    def sample_shape(self) -> tuple[int, ...]:
        h, w = self.size
        return (h, w, self.channels) if self.keep_axis else (h, w)

    def decode(self, path: Path) -> np.ndarray:
        """One image as uint8 (h, w, c); raises DataError naming it when it cannot be read."""
        from PIL import Image

        h, w = self.size
        try:
            with Image.open(path) as image:
                image.draft(self.mode, (w, h))  # JPEG: decode at a reduced scale when much larger
                image = image.convert(self.mode)
                if image.size != (w, h):
                    image = image.resize((w, h), self.resample)
                array = np.asarray(image, np.uint8)
        except Exception as exc:  # Pillow raises many kinds: truncated, unknown format, decompression bomb
            raise DataError(f"{path}: unreadable image ({' '.join(str(exc).split()) or type(exc).__name__})") from None
        return array.reshape(h, w, self.channels)

    def read_x(self, indices):
        indices = np.asarray(indices, np.int64)
        if self.cache is not None:
            pixels = self.cache[indices]
        else:
            pixels = np.stack([self.decode(self.files[i]) for i in indices]) if len(indices) else \
                np.zeros((0, *self.size, self.channels), np.uint8)
        pixels = pixels.astype(np.float32)
        return [pixels if self.keep_axis else pixels[..., 0]]

    def read_y(self, indices):
        return [self.labels[np.asarray(indices, np.int64)]]

    def x_samples(self):
        return [Sample(self.sample_shape(), np.dtype(np.float32))]

    def y_samples(self):
        return [Sample((), np.dtype(np.int64))]

    def split(self, fraction):
        """validation_split per class: the last `fraction` of each class's images (they are sorted by class)."""
        first, last = [], []
        for c in range(len(self.classes)):
            members = np.flatnonzero(self.labels == c)
            cut = len(members) - int(len(members) * fraction)
            first.append(members[:cut])
            last.append(members[cut:])
        return Subset(self, np.concatenate(first)), Subset(self, np.concatenate(last))

    def check(self):
        if len(self) == 0:
            raise DataError(f"{self.folder}: no images")  # pixels were checked when the folder was read

    def describe(self, index):
        return str(self.files[index])


def validation_folder(source, base: Path) -> "ir.ImageFolderData | None":
    """For a training image folder in Keras's layout, the same source reading its valid/ folder, if any."""
    if not isinstance(source, ir.ImageFolderData) or source.subset != "train":
        return None
    root = base / source.path
    root = root / "sample" if source.sample else root
    if not any((root / name).is_dir() for name in _SUBSET_FOLDERS["valid"]):
        return None
    return source.model_copy(update={"subset": "valid"})


def _image_folder(root: Path, source: ir.ImageFolderData) -> Path:
    base = root / "sample" if source.sample else root
    if source.sample and not base.is_dir():
        raise DataError(f"{root}: no sample/ folder (sample=true reads {root}/sample/{source.subset}/...)")
    for name in _SUBSET_FOLDERS[source.subset]:
        if (base / name).is_dir():
            return base / name
    if not base.is_dir():
        raise DataError(f"{base}: no such folder")
    layout = any((base / n).is_dir() for names in _SUBSET_FOLDERS.values() for n in names)
    if source.subset == "train" and not layout:
        return base  # the folder itself holds the class folders
    raise DataError(f"{base}: no {source.subset}/ folder (Keras's layout: {base}/train/<class>/..., "
                    f"{base}/valid/<class>/..., {base}/test/<class>/...)")


def _images(source: ir.ImageFolderData, base: Path, inputs=None, classes=None, skip_bad=False, **_) -> ImageFolder:
    from PIL import Image

    folder = _image_folder(base / source.path, source)
    shape = tuple(inputs[0].shape) if inputs else None
    if source.size is not None:
        size = tuple(source.size)
    elif shape is not None and len(shape) in (2, 3) and None not in shape[:2]:
        size = shape[:2]
    else:
        raise DataError(f"{folder}: give the image size, images(..., size=(height, width)), or load the folder "
                        f"for a model with an image input (height, width, channels); the model takes {shape}")
    channels = shape[2] if shape is not None and len(shape) == 3 else None
    if source.color_mode is not None:
        mode, c = _MODES[source.color_mode]
    else:
        mode, c = {1: ("L", 1), 3: ("RGB", 3), 4: ("RGBA", 4), None: ("L", 1) if shape is not None else ("RGB", 3)
                   }.get(channels, ("RGB", 3))
    keep_axis = not (shape is not None and len(shape) == 2)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(source.classes or classes or [p.name for p in subdirs])
    if not subdirs:
        loose = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise DataError(f"{folder}: no class folders{hint}; put each class's images in a sub-folder, "
                        f"e.g. {folder}/cats/1.jpg")
    known = {p.name for p in subdirs}
    for name in names:
        if name not in known:
            raise DataError(f"{folder}: no folder for class '{name}'{did_you_mean(name, known)}")
    if classes is not None and not source.classes:
        for p in subdirs:
            if p.name not in names:
                raise DataError(f"{p}: '{p.name}' is not one of the model's classes ({', '.join(names)})")
    files, labels, ignored = [], [], 0
    for k, name in enumerate(names):
        found = sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
        ignored += len(found) - len(images)
        if not images:
            raise DataError(f"{folder / name}: no images (class '{name}' is empty)")
        files += images
        labels += [k] * len(images)
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "lanczos": Image.LANCZOS}[source.interpolation]
    data = ImageFolder(folder, files, np.array(labels, np.int64), names, size, mode, c, resample, keep_axis)
    _decode_all(data, skip_bad or source.skip_bad)
    data.notes.insert(0, f"Found {len(data)} images belonging to {len(names)} classes in {os.path.normpath(folder)}.")
    if ignored:
        data.notes.append(f"{folder}: ignored {ignored} file(s) that are not images "
                          f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return data


def _decode_all(data: ImageFolder, skip_bad: bool) -> None:
    """Decode every image once before training (a bad one stops here, or is skipped and counted);
    keep the pixels when they fit in IMAGE_CACHE_BYTES."""
    from concurrent.futures import ThreadPoolExecutor

    h, w = data.size
    keep = len(data) * h * w * data.channels <= IMAGE_CACHE_BYTES
    cache = np.empty((len(data), h, w, data.channels), np.uint8) if keep else None

    def one(i):
        try:
            pixels = data.decode(data.files[i])
        except DataError as exc:
            return exc
        if cache is not None:
            cache[i] = pixels
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        errors = list(pool.map(one, range(len(data))))
    bad = [i for i, e in enumerate(errors) if e is not None]
    if bad and not skip_bad:
        raise errors[bad[0]]
    if bad:
        good = np.setdiff1d(np.arange(len(data)), bad)
        shown = ", ".join(str(data.files[i]) for i in bad[:3]) + (", ..." if len(bad) > 3 else "")
        data.notes.append(f"skipped {len(bad)} unreadable image(s): {shown}")
        data.files = [data.files[i] for i in good]
        data.labels = data.labels[good]
        cache = cache[good] if cache is not None else None
        for c, name in enumerate(data.classes):
            if not (data.labels == c).any():
                raise DataError(f"{data.folder / name}: no readable images (class '{name}' is empty)")
    data.cache = cache


# ---- MNIST IDX -------------------------------------------------------------------------------------

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file, validated against its own header: memory-mapped where raw (a batch reads only its
    rows, through their offsets), read into memory where gzip."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:
            with gzip.open(path, "rb") as f:
                data = f.read()
            size = len(data)
        else:
            with open(path, "rb") as f:
                data = f.read(4 + 4 * 255)  # the longest header
                size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if size - header != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes of data, file has {size - header}")
    if gzipped:
        return np.frombuffer(data[header:], dtype=dtype).reshape(dims)
    if expected == 0:  # np.memmap refuses an empty map
        return np.zeros(dims, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=tuple(dims))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{folder}: no {stem} or {stem}.gz")


def _mnist(source: MnistData, base: Path, **_) -> Data:
    folder = base / source.path
    images = read_idx(_find(folder, f"{source.subset}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{source.subset}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    window = slice(source.start, source.stop)
    y = labels[window].astype(np.int64)  # class indices: for_model shapes them for the loss
    return Normalized(Dataset([images[window]], [y], [str(d) for d in range(10)], str(folder)), source.normalize)


class Normalized(Wrapper):
    """Inputs as float32 divided by `divisor`, batch by batch: the stored pixels are read only where a
    batch needs them (a memory-mapped IDX file)."""

    def __init__(self, inner: Data, divisor: float):
        super().__init__(inner)
        self.divisor = np.float32(divisor)

    def read_x(self, indices):
        return [x.astype(np.float32) / self.divisor for x in self.inner.read_x(indices)]

    def x_samples(self):
        return [Sample(s.shape, np.dtype(np.float32)) for s in self.inner.x_samples()]

    def check(self):
        self.inner.check()


def _cifar10(source: ir.Cifar10Data, base: Path, **_) -> Data:
    from .cifar import load_cifar10  # its own module: it builds on this one

    return load_cifar10(source, base)


# ---- built-in sets ------------------------------------------------------------------------------------

def _xor(source: ir.XorData, base: Path, **_) -> Dataset:
    table = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    x = np.tile(table, (source.repeat, 1))
    if source.noise:
        x = x + np.random.default_rng(source.seed).normal(0, source.noise, x.shape).astype(np.float32)
    y = np.tile(np.array([0, 1, 1, 0], np.int64), source.repeat)
    return Dataset([x], [y], ["0", "1"], "xor")


def _circles(source: ir.CirclesData, base: Path, **_) -> Dataset:
    """scikit-learn's make_circles: half the samples on the unit circle (class 0), half on a circle of
    radius `factor` (class 1), Gaussian noise added; shuffled with the seed."""
    rng = np.random.default_rng(source.seed)
    outer = source.samples // 2
    inner = source.samples - outer
    angles = np.concatenate([np.linspace(0, 2 * np.pi, outer, endpoint=False),
                             np.linspace(0, 2 * np.pi, inner, endpoint=False)])
    radius = np.concatenate([np.ones(outer), np.full(inner, source.factor)])
    x = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    x += rng.normal(0, source.noise, x.shape)
    y = np.concatenate([np.zeros(outer, np.int64), np.ones(inner, np.int64)])
    order = rng.permutation(source.samples)
    return Dataset([x[order].astype(np.float32)], [y[order]], ["outer", "inner"], "circles")


def _cosine(source: ir.CosineData, base: Path, **_) -> Dataset:
    """x[i] = cos(step * (i .. i + window - 1)) as (window, 1); y[i] = cos(step * (i + window))."""
    n, window = source.samples, source.window
    series = np.cos(np.arange(n + window) * source.step).astype(np.float32)
    x = np.lib.stride_tricks.sliding_window_view(series, window)[:n].copy()[..., None]
    return Dataset([x], [series[window:window + n, None].copy()], None, f"cosine(window={window})")


def _digits(source: ir.DigitsData, base: Path, **_) -> Dataset:
    """scikit-learn's 8x8 digits, read from the copy scikit-learn ships (the `datasets` extra)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("digits: needs scikit-learn, which ships the data set; install it with "
                        "pip install 'nnspec[datasets]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if path.exists():  # read the file directly: importing scikit-learn takes seconds
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x = (x / np.float32(source.normalize)).reshape(-1, 8, 8)
    return Dataset([x], [y], [str(d) for d in range(10)], "digits")
