"""The one place where failures become messages. Every exception that reaches the command line is one
line on stderr and an exit code: 2 for bad input (a spec, data, a model file, flags, a full disk, a
permission), 1 for a bug in nnspec (with the text to report; `--debug` shows the traceback), 130 for
Ctrl-C."""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable

from .errors import SpecError

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _bad_input_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user's input is wrong, beyond SpecError."""
    from .api import InputError
    from .backends.onnx.runtime import DeviceError

    return InputError, DeviceError


def run(command: Callable[[], int], argv: list[str], debug: bool) -> int:
    """Run one command; whatever goes wrong, the user gets one line and the exit code that says why."""
    try:
        return command()
    except KeyboardInterrupt:
        return _say("nnspec: interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # `nnspec schema | head`: the reader left, which is not an error
        _silence_stdout()
        return EXIT_OK
    except SpecError as exc:
        return _say(exc.render(), EXIT_USAGE, exc, debug)
    except RecursionError as exc:  # input nested beyond what the limits caught: bad input, not a crash
        return _say("nnspec: error: the input is nested too deeply to read", EXIT_USAGE, exc, debug)
    except MemoryError as exc:
        return _say("nnspec: error: out of memory; try a smaller batch size or model", EXIT_USAGE, exc, debug)
    except OSError as exc:
        return _say(f"nnspec: error: {_os_message(exc)}", EXIT_USAGE, exc, debug)
    except Exception as exc:
        if isinstance(exc, _bad_input_types()):
            return _say(f"nnspec: error: {exc}", EXIT_USAGE, exc, debug)
        return _say(_bug_message(exc, argv, debug), EXIT_BUG, exc, debug)


def _os_message(exc: OSError) -> str:
    """A file problem in the user's words: the path and the reason; a full disk says what to free."""
    path = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: {reason}; free some space and run again"
    return f"{path}: {reason}"


def _bug_message(exc: BaseException, argv: list[str], debug: bool) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where else ""
    first = (str(exc).strip().splitlines() or [""])[0]
    hint = "" if debug else f"; run `nnspec --debug {' '.join(argv)}` for the traceback"
    return (f"nnspec: internal error: {type(exc).__name__}{at}: {first[:300]} -- this is a bug in nnspec; "
            f"please report it to the nnspec maintainers with the command and its input files{hint}")


def _say(message: str, code: int, exc: BaseException | None = None, debug: bool = False) -> int:
    if debug and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    print(message, file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Python would complain again when it flushes the closed pipe at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
