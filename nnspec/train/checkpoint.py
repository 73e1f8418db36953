"""Checkpoints that lose nothing: weights, optimizer slots, epoch, step, learning rate, history and
callback state in one .npz, written atomically (a crash leaves the previous checkpoint whole, and the
temporary it was writing is removed when training starts again)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..atomic import temporaries, write_bytes
from ..errors import SpecError

FILENAME = "checkpoint.npz"
_ARRAY_PREFIX = "state/"
_BEST_PREFIX = "best/"


def save(directory: Path, state: dict[str, np.ndarray], meta: dict, best: dict[str, np.ndarray] | None) -> None:
    arrays = {_ARRAY_PREFIX + k: v for k, v in state.items()}
    if best:
        arrays.update({_BEST_PREFIX + k: v for k, v in best.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(directory / FILENAME, buffer.getvalue())


def clear_temporaries(directory: Path) -> None:
    """Remove what a writer killed mid-checkpoint left behind."""
    for tmp in temporaries(directory / FILENAME):
        tmp.unlink(missing_ok=True)


def load(directory: Path) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray] | None] | None:
    """The checkpoint in `directory`, or None when there is none yet (killed before the first epoch ended)."""
    path = directory / FILENAME
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            state = {k[len(_ARRAY_PREFIX):]: data[k] for k in data.files if k.startswith(_ARRAY_PREFIX)}
            best = {k[len(_BEST_PREFIX):]: data[k] for k in data.files if k.startswith(_BEST_PREFIX)} or None
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise SpecError(f"{path}: unreadable checkpoint ({exc})") from None
    return state, meta, best
