"""`nnspec train --workers N [--backend ray]`: N replicas of the training run, each the whole of `nnspec
train` with its own onnxruntime session, joined by MPI (replicas.py) and taking its shard of every global
batch (nnspec.backends.onnx.step). They run the same loop on the same data, seed and schedule, so their
histories and weights agree; replica 0 writes the checkpoints and the results, as one process would.
Replicas are processes here, or (--backend ray) Ray actors anywhere in a Ray cluster."""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from copy import copy
from pathlib import Path

from ..backends.onnx.runtime import THREADS_ENV, physical_cores
from ..errors import SpecError
from .cluster import EXTRA, connect, task_cpus

TOOL = "nnspec train"


def launch(args: argparse.Namespace) -> int:
    """Run the replicas until they end; the exit code of the first that failed, else 0."""
    try:
        import mpi4py  # noqa: F401  (the package only: its MPI module starts MPI, which the replicas do)
    except ImportError:
        raise SpecError(f"--workers {args.workers} needs mpi4py: {EXTRA}", TOOL) from None
    if args.backend == "ray":
        return _on_ray(args)
    return _here(args)


def replica(args: argparse.Namespace, rank: int, size: int, port: str) -> int:
    """One replica: join the others at replica 0's `port`, then run `nnspec train` as part of them.
    Replica 0 reports errors and writes the results."""
    from ..cli import _train
    from . import replicas

    args = copy(args)
    args.replicas = replicas.join(port, rank, size)
    if rank:
        args.verbose = 0
    with tempfile.TemporaryDirectory(prefix="nnspec-replica-") as scratch:
        args.replicas.scratch = Path(scratch)
        try:
            return _train(args)
        except SpecError as exc:
            if rank == 0:
                print(exc.render(), file=sys.stderr)
            return 2


# ---- replicas as processes on this machine ------------------------------------------------------------

def _here(args: argparse.Namespace) -> int:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: onnxruntime's threads do not fork
    ports = context.Queue()
    threads = max(1, physical_cores() // args.workers)
    processes = [context.Process(target=_process, args=(args, rank, args.workers, ports, threads),
                                 name=f"replica {rank}") for rank in range(args.workers)]
    for p in processes:
        p.start()
    try:
        return _wait(processes)
    finally:
        for p in processes:  # one failed: the others wait for it in a collective forever
            if p.is_alive():
                p.terminate()
            p.join()


def _process(args, rank: int, size: int, ports, threads: int) -> None:
    from . import replicas

    os.environ[THREADS_ENV] = str(threads)
    if rank == 0:
        port = replicas.open_port()
        for _ in range(size - 1):
            ports.put(port)
    else:
        port = ports.get()
    try:
        sys.exit(replica(args, rank, size, port))
    except KeyboardInterrupt:
        sys.exit(130)


def _wait(processes) -> int:
    while True:
        codes = [p.exitcode for p in processes]
        failed = [c for c in codes if c]
        if failed:
            return failed[0] if failed[0] > 0 else 1
        if all(c == 0 for c in codes):
            return 0
        time.sleep(0.05)


# ---- replicas as Ray actors ----------------------------------------------------------------------------

def _on_ray(args: argparse.Namespace) -> int:
    ray = connect(TOOL, args.address)
    cpus = task_cpus(ray, args.workers)

    folder = os.getcwd()

    class Replica:
        def __init__(self):
            os.environ[THREADS_ENV] = str(cpus)
            if os.path.isdir(folder):  # relative paths mean what they mean here (on a cluster: a shared folder)
                os.chdir(folder)

        def open_port(self) -> str:
            from . import replicas

            return replicas.open_port()

        def run(self, rank: int, port: str) -> int:
            return replica(args, rank, args.workers, port)

    actor = ray.remote(num_cpus=cpus)(Replica)
    actors = [actor.remote() for _ in range(args.workers)]
    port = ray.get(actors[0].open_port.remote())
    pending = [a.run.remote(rank, port) for rank, a in enumerate(actors)]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            code = ray.get(done[0])
        except ray.exceptions.RayError as exc:  # its actor died (its node lost, out of memory, killed)
            lines = [line for line in str(exc).splitlines() if line.strip()]
            code, failure = 1, SpecError(f"a replica failed: {lines[-1] if lines else type(exc).__name__}", TOOL)
        else:
            failure = None
        if code:  # the others wait for it in a collective forever
            for a in actors:
                ray.kill(a)
            if failure is not None:
                raise failure
            return code
    return 0

