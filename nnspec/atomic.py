"""Outputs appear whole or not at all: write to a temporary file beside the target, then rename. Inside
`output_set()`, the renames wait until every file of the set is written, so a command leaves all its
outputs or none. A failed write becomes one line naming the file and what was not written."""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator

from .errors import SpecError

TMP_SUFFIX = ".tmp"
_pending: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("nnspec_output_set", default=None)


class WriteError(SpecError):
    """A file could not be written (a full disk, a permission, a read-only folder)."""


def temporaries(target: str | os.PathLike) -> list[Path]:
    """Temporaries a killed writer of `target` may have left (`.NAME.XXXX.tmp`)."""
    target = Path(target)
    return sorted(target.parent.glob(f".{target.name}.*{TMP_SUFFIX}")) if target.parent.is_dir() else []


def _reason(exc: OSError, folder: Path) -> str:
    if exc.strerror:
        return exc.strerror
    try:  # some writers (NumPy's tofile) report a short write without errno: a full disk, most often
        fs = os.statvfs(folder)
        if fs.f_bavail * fs.f_frsize < 1 << 16:
            return os.strerror(errno.ENOSPC)
    except OSError:
        pass
    return str(exc) or type(exc).__name__


def _ours(exc: OSError, tmp: str) -> bool:
    """Did the write fail, rather than something the block read (which keeps its own error)?"""
    return exc.filename is None or os.fspath(exc.filename) in (tmp, os.path.abspath(tmp))


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; it replaces the target only if the block succeeds
    (and, inside `output_set()`, only when the whole set is written)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in temporaries(target):  # a killed writer's: one writer per output, so none is live
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # what a plain open() would give, not mkstemp's owner-only mode
    pending = _pending.get()
    try:
        yield Path(tmp)
        if pending is None:
            os.replace(tmp, target)
        else:
            pending.append((Path(tmp), target))
    except OSError as exc:
        if not _ours(exc, tmp):
            raise
        raise _write_error(target, exc) from exc
    finally:
        if (pending is None or (Path(tmp), target) not in pending) and os.path.exists(tmp):
            os.unlink(tmp)


def _write_error(target: Path, exc: OSError) -> WriteError:
    pending = _pending.get() or []
    names = [str(t) for _, t in pending if t != target] + [str(target)]
    lost = f"none of {', '.join(names)} was written" if len(names) > 1 else "nothing was written"
    return WriteError(f"cannot write {target}: {_reason(exc, target.parent)}; {lost}")


@contextmanager
def output_set() -> Iterator[None]:
    """Every file written with atomic_path inside the block appears at the end, together; on any
    failure none does, and no temporary is left. A nested set joins the outer one."""
    if _pending.get() is not None:
        yield
        return
    pending: list[tuple[Path, Path]] = []
    token = _pending.set(pending)
    try:
        yield
        _pending.reset(token)
        token = None
        for tmp, target in pending:
            os.replace(tmp, target)
    finally:
        if token is not None:
            _pending.reset(token)
        for tmp, _ in pending:
            if tmp.exists():
                tmp.unlink()


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    write_chunks(target, [data])


def write_chunks(target: str | os.PathLike, chunks: Iterable[bytes | memoryview]) -> None:
    """The chunks, in order, as the target's bytes: a writer can produce them one at a time."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))
