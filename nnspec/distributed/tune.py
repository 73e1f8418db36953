"""`nnspec tune --backend ray`: the --jobs workers as Ray tasks, anywhere in the cluster. Each runs exactly
what a local worker process runs (nnspec.tune.workers.serve) on the same Optuna study, so a study goes on
under Ray and back, and a killed driver's trials are failed and queued again: by its task as Ray ends it
(nnspec.tune.workers.cut_off), or by their heartbeat where the task dies outright."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..tune.settings import TOOL, Settings
from ..tune.workers import serve
from .cluster import connect, task_cpus


def run(settings: Settings, address: str | None) -> list[str]:
    """Run the workers as Ray tasks and wait for them; returns a note for each that did not end well."""
    ray = connect(TOOL, address)
    cpus = task_cpus(ray, settings.jobs)
    task = ray.remote(num_cpus=cpus, max_retries=0)(serve)
    shared = _absolute(settings)  # a Ray worker starts in its own folder
    codes = ray.get([task.options(name=f"nnspec-tune-worker-{i + 1}").remote(shared, cpus)
                     for i in range(settings.jobs)])
    return [f"worker {i + 1} (a Ray task) ended with exit code {code}" for i, code in enumerate(codes) if code]


def _absolute(settings: Settings) -> Settings:
    data = settings.data
    if data is not None and Path(data).exists():
        data = str(Path(data).resolve())
    return dataclasses.replace(settings, spec=str(Path(settings.spec).resolve()),
                               output=str(Path(settings.output).resolve()), data=data)
