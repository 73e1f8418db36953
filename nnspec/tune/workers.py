"""Workers: each runs trials of the shared study until it holds --trials of them. `--jobs K` starts K
worker processes here (processes, not threads: onnxruntime already computes with threads, so each
process gets cores / K of them); more machines add workers by running the same command."""
from __future__ import annotations

import multiprocessing
import os
import sys
import time

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import FrozenTrial, TrialState

from ..backends.onnx.runtime import THREADS_ENV, physical_cores
from ..errors import SpecError, first_line
from .objective import Objective, TrialFailed
from .report import announce
from .settings import Settings
from .presence import ACTIVE, IDLE, Presence
from .study import COUNTED, RETRY_OF, open_study, quiet, retry

POLL = 1.0  # seconds between looks at the study while other workers' trials run


def optimize(study: optuna.Study, objective: Objective, settings: Settings) -> None:
    """Run trials until the study counts --trials (or --timeout passes) and every trial cut off has been run
    again, then wait until no trial runs and no other worker may start one (nnspec.tune.presence). A running
    trial may be a dead worker's (a killed driver's Ray task that Ray has not ended yet, or one that has just
    been killed): it counts until its heartbeat goes stale, and only then is it failed and queued again, so a
    worker that left before would leave it RUNNING and the study one trial short."""
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    finished = announce(objective.space, settings)
    # as inside Study.optimize, so that Study.stop() works: the grid sampler's, once every point is taken
    study._stop_flag, study._thread_local.in_optimize_loop = False, True

    def wanted(trials: list[FrozenTrial]) -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        rerun_waiting = any(t.state == TrialState.WAITING and RETRY_OF in t.user_attrs for t in trials)
        return rerun_waiting or (not study._stop_flag and sum(t.state in COUNTED for t in trials) < settings.trials)

    try:
        with objective.interrupt.deferred(), Presence(study, settings.heartbeat) as presence:
            while True:
                optuna.storages.fail_stale_trials(study)  # queues each stale trial again (study.retry)
                trials = study.get_trials(deepcopy=False)
                if wanted(trials):
                    presence.mark(ACTIVE)
                    trials = study.get_trials(deepcopy=False)  # again, now that other workers see this one may start
                    if wanted(trials):
                        finished(study, run_trial(study, objective))
                        objective.interrupt.check()
                        continue
                presence.mark(IDLE)
                # one look at the trials, then at the workers: a trial started after that look was started by a
                # worker active at the second, or it saw what this one saw (finished trials stay finished)
                if not any(t.state == TrialState.RUNNING for t in trials) and not presence.others_active():
                    return
                time.sleep(POLL)
                objective.interrupt.check()
    finally:
        study._thread_local.in_optimize_loop = False


def run_trial(study: optuna.Study, objective: Objective) -> FrozenTrial:
    """One trial, as Optuna's own loop runs it (heartbeat included), except for a trial that another worker
    failed as stale while this one still ran it (its heartbeat late on a loaded machine): the rerun queued
    for it takes over, and this worker stops that trial at its next epoch and leaves its state alone."""
    trial = study.ask()
    value, state = None, TrialState.FAIL
    try:
        with get_heartbeat_thread(trial._trial_id, study._storage):
            value, state = objective(trial), TrialState.COMPLETE
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except (TrialFailed, UpdateFinishedTrialError):
        pass
    except BaseException as exc:  # cut off, not the point's fault: the trial fails and runs again; the worker stops
        cut_off(study, trial, exc)
        raise
    return study.tell(trial, value, state=state, skip_if_finished=True)


def cut_off(study: optuna.Study, trial: optuna.Trial, cause: BaseException) -> None:
    """Fail a trial cut off by Ctrl-C, by its worker's end (Ray ends a dead driver's tasks with SIGTERM, which
    Ray's handler raises as SystemExit) or by a fault outside the objective (the storage, say), and queue it
    to run again. The rerun is queued before the trial fails: a worker killed in between leaves the trial
    RUNNING, to be failed as stale, rather than failed with no rerun."""
    if isinstance(cause, KeyboardInterrupt):
        note = "interrupted"
    elif isinstance(cause, SystemExit):
        note = "its worker was ended"
    else:
        note = first_line(cause)
    try:
        trial.set_user_attr("error", note)  # refused if another worker already failed it as stale (and queued it)
    except UpdateFinishedTrialError:
        return
    retry(study, trial)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


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
