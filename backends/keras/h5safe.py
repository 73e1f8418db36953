"""Opening and reading HDF5 files without trusting them.

An HDF5 file can make the library read other files: external datasets store their bytes
in arbitrary paths, virtual datasets map other files in, and external links open them
(CVE-2025-9905 is Keras reading /etc files this way). A file can also name a compression
filter that HDF5 would load as a plugin from disk. check_file() refuses all of these up
front, before any data is read; stored() checks again at the point of use.

Known limit: libhdf5 itself can spin on some corrupted files (fuzzing found one flipped
byte in a global heap that makes reading a string attribute never return). Only running
the reader in a subprocess with a timeout guards against that.
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from .errors import KerasFormatError

# Filters built into HDF5/h5py: deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf.
_BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}
_MAX_OBJECTS = 1_000_000
# What h5py raises on a damaged file (it maps HDF5 errors to these, names included).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def open_file(target, source: str) -> h5py.File:
    """target: a path or a binary file object; source names it in messages."""
    try:
        return h5py.File(target, "r")
    except (OSError, ValueError) as exc:
        raise KerasFormatError(source, None, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from None


def _refuse_dataset(ds: h5py.Dataset, source: str, path: str) -> None:
    plist = ds.id.get_create_plist()
    if plist.get_external_count() > 0:
        raise KerasFormatError(source, path, "external dataset (its data lives in another file); refused")
    if ds.is_virtual:
        raise KerasFormatError(source, path, "virtual dataset (maps data from other files); refused")
    for i in range(plist.get_nfilters()):
        fid = plist.get_filter(i)[0]
        if fid not in _BUILTIN_FILTERS:
            raise KerasFormatError(source, path, f"uses HDF5 filter {fid}, which is not built in; refused")


def check_file(f: h5py.File, source: str) -> None:
    """Walk every link once; refuse soft/external links and unsafe datasets."""
    seen: set = set()
    stack = [("", f)]
    count = 0
    try:
        while stack:
            prefix, group = stack.pop()
            for name in group:
                path = f"{prefix}/{name}"
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise KerasFormatError(source, path, f"{type(link).__name__} in the file; refused")
                count += 1
                if count > _MAX_OBJECTS:
                    raise KerasFormatError(source, path, "too many objects in the file")
                obj = group[name]
                key = (obj.id.fileno, h5py.h5o.get_info(obj.id).addr)
                if key in seen:  # a hard link cycle or alias: visit once
                    continue
                seen.add(key)
                if isinstance(obj, h5py.Dataset):
                    _refuse_dataset(obj, source, path)
                elif isinstance(obj, h5py.Group):
                    stack.append((path, obj))
                else:
                    raise KerasFormatError(source, path, f"unexpected HDF5 object {type(obj).__name__}")
    except H5_ERRORS as exc:
        raise KerasFormatError(source, None, f"corrupt HDF5 file: {exc}") from None


def stored(group: h5py.Group, name: str, source: str) -> "Stored":
    """A numeric dataset, checked now and read, bit for bit (bfloat16 widened to float32), when numpy
    converts it to an array (see Stored)."""
    path = f"{group.name.rstrip('/')}/{name}"
    try:
        obj = group.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise KerasFormatError(source, path, "missing dataset")
        _refuse_dataset(obj, source, path)
        tagged_bf16 = obj.attrs.get("dtype") in ("bfloat16", b"bfloat16")
        dtype = obj.dtype
    except H5_ERRORS as exc:
        raise KerasFormatError(source, path, f"unreadable dataset: {exc}") from None
    bfloat16 = dtype.kind == "V" and dtype.itemsize == 2 and (tagged_bf16 or dtype.names is None)
    if not bfloat16 and dtype.kind not in "fiub":
        raise KerasFormatError(source, path, f"non-numeric dataset of type {dtype}")
    return Stored(obj, source, bfloat16)


class Stored:
    """A dataset's array, read from the (still open) file each time numpy converts it. A converter
    that writes each weight as it reads it never holds a whole model's weights: the file stays
    the one copy. Holding a Stored keeps its file open."""

    __slots__ = ("_dataset", "_source", "_bfloat16", "shape", "dtype")

    def __init__(self, dataset: h5py.Dataset, source: str, bfloat16: bool):
        self._dataset, self._source, self._bfloat16 = dataset, source, bfloat16
        self.shape = tuple(dataset.shape)
        self.dtype = np.dtype(np.float32) if bfloat16 else dataset.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        try:
            data = np.asarray(self._dataset[()])
        except H5_ERRORS as exc:
            raise KerasFormatError(self._source, self._dataset.name, f"unreadable dataset: {exc}") from None
        if self._bfloat16:  # Keras stores bfloat16 as 2-byte opaque data; widening to float32 is exact
            data = (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"Stored({self._dataset.name}, {self.shape}, {self.dtype})"


def attr_text(obj, key: str, source: str) -> str | None:
    value = obj.attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    if isinstance(value, str):
        return value
    raise KerasFormatError(source, f"{obj.name} attribute '{key}'", "expected a string")


def attr_json(obj, key: str, source: str):
    text = attr_text(obj, key, source)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise KerasFormatError(source, f"{obj.name} attribute '{key}'", f"invalid JSON: {exc}") from None


def attr_names(obj, key: str, source: str) -> list[str] | None:
    """A list-of-names attribute; Keras splits long ones into key0, key1, ... chunks."""
    if key in obj.attrs:
        chunks = [obj.attrs[key]]
    elif f"{key}0" in obj.attrs:
        chunks, i = [], 0
        while f"{key}{i}" in obj.attrs:
            chunks.append(obj.attrs[f"{key}{i}"])
            i += 1
    else:
        return None
    names = []
    for chunk in chunks:
        for item in np.atleast_1d(np.asarray(chunk)).tolist():
            names.append(item.decode("utf-8") if isinstance(item, bytes) else str(item))
    return names
