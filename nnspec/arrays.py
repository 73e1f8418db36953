"""Arrays in and out of files for `nnspec predict`: .npy, .npz and .csv (never unpickling)."""
from __future__ import annotations

import csv
import math
import zipfile
import zlib
from tokenize import TokenError
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import SpecError


def _load(path: str) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SpecError("no such file", path) from None
    except EOFError:
        raise SpecError("cannot read arrays: the file is empty or cut short", path) from None
    except (SyntaxError, TokenError):  # NumPy parses the header as a Python literal
        raise SpecError("cannot read arrays: a damaged .npy header", path) from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(f"cannot read arrays: {exc}", path) from None


def _npz(path: str, names: list[str]) -> list[np.ndarray]:
    """Arrays by input name; or `x` for a single input; or x0, x1, ... in input order."""
    data = _load(path)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise SpecError("not an .npz archive", path)
    with data:
        for keys in (names, ["x"] if len(names) == 1 else [], [f"x{i}" for i in range(len(names))]):
            if keys and all(k in data.files for k in keys):
                try:
                    return [data[k] for k in keys]
                except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                    raise SpecError(f"cannot read arrays: {exc or 'a member is cut short'}", path) from None
        raise SpecError(f"holds {sorted(data.files)}; the model's inputs need the keys {names}, "
                        + ("x" if len(names) == 1 else " ".join(f"x{i}" for i in range(len(names)))), path)


def _csv(path: str) -> np.ndarray:
    """Rows of numbers; a first row that is not all numbers is a header."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    except FileNotFoundError:
        raise SpecError("no such file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", path) from None
    if rows and not all(_is_number(v) for v in rows[0]):
        rows = rows[1:]
    if not rows:
        raise SpecError("no data rows", path)
    for line, row in enumerate(rows, 1):
        bad = next((v for v in row if not _is_number(v)), None)
        if bad is not None or len(row) != len(rows[0]):
            what = f"'{bad}' is not a number" if bad is not None else f"{len(row)} values, not {len(rows[0])}"
            raise SpecError(f"data row {line}: {what}", path)
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_inputs(path: str | Path, inputs: list) -> list[np.ndarray]:
    """Arrays for a model's `inputs` (each with a name and a batch-first shape, None where unknown)."""
    path, suffix = str(path), Path(path).suffix.lower()
    if suffix == ".npy":
        arrays = [_load(path)]
    elif suffix == ".npz":
        arrays = _npz(path, [i.name for i in inputs])
    elif suffix == ".csv":
        table = _csv(path)
        shape = inputs[0].shape[1:]
        if len(inputs) == 1 and len(shape) > 1 and None not in shape and math.prod(shape) == table.shape[1]:
            table = table.reshape(len(table), *shape)  # a row per sample, flattened in C order
        arrays = [table]
    else:
        raise SpecError("inputs are read from .npy, .npz or .csv files", path)
    if not isinstance(arrays[0], np.ndarray):
        raise SpecError("not a .npy array", path)
    for array in arrays:
        _check_values(array, path)
    return arrays


def _check_values(array: np.ndarray, path: str) -> None:
    """What the model could not take: no samples, strings or complex numbers, NaN or overflowing values."""
    from .data import dtype_problem, value_problem

    if array.ndim == 0 or len(array) == 0:
        raise SpecError("holds no samples", path)
    problem = dtype_problem(array.dtype)
    if problem is not None:
        raise SpecError(problem, path)
    found = value_problem(array)
    if found is not None:
        raise SpecError(f"sample {found[0]} {found[1]}", path)


def fit_inputs(arrays: list[np.ndarray], inputs: list) -> list[np.ndarray]:
    """Arrays shaped and typed as the model's `inputs` take them: a missing channel axis added, a row of
    flattened features (a table's) reshaped in C order, cast to the input's dtype."""
    fitted = []
    for x, info in zip(arrays, inputs):
        want = tuple(info.shape[1:])
        if x.shape[1:] + (1,) == want:
            x = x[..., None]
        elif x.ndim == 2 and len(want) > 1 and None not in want and math.prod(want) == x.shape[1]:
            x = x.reshape(len(x), *want)
        fitted.append(x.astype(info.dtype, copy=False))
    return fitted


def check_output(path: str | Path, count: int) -> None:
    """.npy holds one output; .npz (keys: the output names) any number."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy" and count != 1:
        raise SpecError(f"the model has {count} outputs; write them to an .npz file", str(path))
    if suffix not in (".npy", ".npz"):
        raise SpecError("predictions are written to .npy or .npz files", str(path))


def write_outputs(path: str | Path, outputs: dict[str, np.ndarray]) -> None:
    check_output(path, len(outputs))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if Path(path).suffix.lower() == ".npy":
            np.save(f, next(iter(outputs.values())))
        else:
            np.savez(f, **outputs)
