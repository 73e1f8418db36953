"""The bounds a spec must keep, so that whatever `nnspec check` accepts, `compile` and `train` either run or
refuse with one line before allocating. Every limit here is listed in the README's "Limits" section."""
from __future__ import annotations

import math
import os

from .errors import SpecError

MAX_SPEC_CHARS = 1 << 20  # characters of a spec file; a thousand-layer spec is about 30 KB
MAX_NESTING = 100  # brackets, operators and statements inside one another
MAX_STRING = 10_000  # characters in one string literal
MAX_NUMBER_CHARS = 100  # characters in one number literal
MAX_INT = 2**63 - 1  # any integer, written or computed (ONNX's int64)
MAX_REPEAT = 10_000  # one `repeat` count
MAX_LAYERS = 5_000  # layers after repeats and blocks are expanded
MAX_DIM = 2**31 - 1  # one tensor dimension
MAX_ELEMENTS = 2**31 - 1  # elements of one sample of any tensor
MAX_PARAMETERS = 2**28  # 268,435,456 parameters: 1 GiB of float32 weights
MAX_SEARCH_PARAMETERS = 32  # search calls in one spec (check builds the model at each one's bounds)
MAX_GRID = 1_000_000  # points of a search space enumerated for grid search
MAX_MAGNITUDE = 2.0**64  # data values: about the square root of float32's largest, so products stay finite


class LimitError(ValueError):
    """A value beyond one of the limits above; the message names the limit."""


def check_int(value: int, what: str = "integer") -> int:
    if abs(value) > MAX_INT:
        raise LimitError(f"{what} has {len(str(abs(value)))} digits; integers are limited to ±{MAX_INT:,} (2**63 - 1)")
    return value


def check_power(base, exponent) -> None:
    """Refuse `a ** b` whose integer result would exceed MAX_INT before computing it (9 ** 9 ** 9 never ends)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > 64:
            raise LimitError(f"{base} ** {exponent} is beyond the integer limit ±{MAX_INT:,} (2**63 - 1)")


def check_number(value):
    """An arithmetic result: a real, finite number within the integer limit."""
    if isinstance(value, complex):
        raise LimitError(f"the result {value} is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise LimitError("the result is too large for a float (it overflows to infinity)")
    if isinstance(value, int):
        check_int(value, "the result")
    return value


def available_memory() -> int | None:
    """Bytes the machine can give without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(parameters: int, copies: int, doing: str) -> None:
    """Refuse before allocating when `copies` float32 copies of the weights cannot fit in free memory."""
    need = parameters * 4 * copies
    free = available_memory()
    if free is not None and need > free:
        raise SpecError(f"{doing} needs about {_gib(need)} for {parameters:,} parameters, and this machine "
                               f"has {_gib(free)} free")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
