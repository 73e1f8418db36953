"""Workers: each runs trials of the shared study until it holds --trials of them. `--jobs K` starts K
worker processes here (processes, not threads: onnxruntime already computes with threads, so each
process gets cores / K of them); more machines add workers by running the same command."""
from __future__ import annotations

import multiprocessing
import os
import sys

import optuna

from ..backends.onnx.runtime import THREADS_ENV, physical_cores
from ..errors import SpecError
from .objective import Objective, TrialFailed
from .report import announce
from .settings import Settings
from .study import COUNTED, counted, open_study, quiet


def optimize(study: optuna.Study, objective: Objective, settings: Settings) -> None:
    optuna.storages.fail_stale_trials(study)  # so that a dead worker's trial does not count as running
    if counted(study) >= settings.trials:
        return
    with objective.interrupt.deferred():
        study.optimize(objective, timeout=settings.timeout, catch=(TrialFailed,),
                       callbacks=[optuna.study.MaxTrialsCallback(settings.trials, states=COUNTED),
                                  announce(objective.space, settings), objective.interrupt.check])


def run(settings: Settings) -> list[str]:
    """Start the worker processes and wait for them; returns a note for each that did not end well."""
    threads = max(1, physical_cores() // settings.jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: onnxruntime's thread pools do not fork
    workers = [context.Process(target=_worker, args=(settings, threads), name=f"worker {i + 1}")
               for i in range(settings.jobs)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:  # Ctrl-C reached the workers too; each fails its trial and queues it again
        for worker in workers:
            worker.join()
        raise
    return [f"{w.name} ended with exit code {w.exitcode}" for w in workers if w.exitcode]


def _worker(settings: Settings, threads: int) -> None:
    sys.exit(serve(settings, threads))


def serve(settings: Settings, threads: int) -> int:
    """One worker's whole life, in a process of its own or a Ray task; returns its exit code."""
    os.environ[THREADS_ENV] = str(threads)
    quiet()
    try:
        objective = Objective(settings)
        optimize(open_study(settings, objective.space), objective, settings)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
