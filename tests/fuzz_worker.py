"""Runs `nnspec` commands in-process inside a worker process capped in time and memory, for the fuzz
tests: a case that hangs is killed at its deadline, one that blows up memory meets RLIMIT_AS, and one
that crashes the interpreter is seen as a dead worker. Each case reports its exit code and output."""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import resource
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

MEMORY_HEADROOM = 1536 << 20  # bytes of address space a case may add to what the worker holds after start-up


@dataclass
class Outcome:
    argv: list[str]
    code: int | None  # None: the worker hung (killed at the deadline) or died
    output: str
    problem: str | None = None  # "hang", "crash", or None

    def failure(self) -> str | None:
        """Why this outcome breaks the contract (exit 0 or 2, one message, no traceback), or None."""
        if self.problem:
            return self.problem
        if self.code not in (0, 2):
            return f"exit {self.code}"
        for bad in ("Traceback", "internal error", "out of memory"):
            if bad in self.output:
                return bad
        if self.code == 2 and not self.output.strip():
            return "exit 2 without a message"
        return None


def _serve(conn, workdir: str) -> None:
    from nnspec import cli

    os.chdir(workdir)
    warm = os.path.join(workdir, "warm.nn")
    Path(warm).write_text("model w { input x: float32[2]\n dense(1) }\n")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["compile", warm, "-o", os.path.join(workdir, "warm.onnx")])  # imports everything before capping
    size = _address_space()
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY_HEADROOM, resource.RLIM_INFINITY))
    conn.send("ready")
    while True:
        request = conn.recv()
        if request is None:
            return
        files, commands = request
        for name, data in files.items():
            Path(workdir, name).write_bytes(data)
        results = []
        for argv in commands:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    code = cli.main(argv)
                except SystemExit as exc:  # argparse
                    code = exc.code
            results.append((code, out.getvalue()[-4000:]))
            if code != 0:
                break
        conn.send(results)


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


class Worker:
    """One capped worker; `run` gives each command's outcome, restarting the worker after a hang or crash."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self.workdir = tempfile.mkdtemp(prefix="nnspec-fuzz-")
        self.process = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no threads or sessions inherited from pytest
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.workdir), daemon=True)
        self.process.start()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def run(self, commands: list[list[str]], files: dict[str, bytes] | None = None) -> list[Outcome]:
        """Run `commands` in order in the worker's folder (relative paths resolve there), after writing `files`;
        stops after the first one that does not exit 0."""
        commands = [[a.replace("{dir}", self.workdir) for a in argv] for argv in commands]
        self.conn.send((files or {}, commands))
        if self.conn.poll(self.timeout):
            try:
                results = self.conn.recv()
            except EOFError:
                results = None
            if results is not None:
                return [Outcome(argv, code, out) for argv, (code, out) in zip(commands, results)]
        problem = "crash" if not self.process.is_alive() else f"hang (over {self.timeout:.0f} s)"
        self.process.kill()
        self.process.join()
        self._start()
        return [Outcome(commands[0], None, "", problem)]

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.send(None)
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
