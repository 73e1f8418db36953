"""What one `nnspec tune` run was asked for: everything a worker process needs to take part in the study
(it is passed to each worker, so it holds plain values only)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOL = "nnspec tune"  # how errors about flags begin


@dataclass(frozen=True)
class Settings:
    spec: str  # the spec's path
    output: str  # the study's folder: the table, the plots, the best model, each trial's files
    storage: str  # Optuna's storage URL, shared by every worker of the study
    study: str
    objective: str  # a history entry: val_loss, val_accuracy, ...
    direction: str  # minimize or maximize
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int = 20  # the study's total, complete and pruned, across all workers and runs
    timeout: float | None = None
    jobs: int = 1
    data: str | None = None
    epochs: int | None = None
    device: str = "auto"
    heartbeat: int = 30  # seconds; a trial whose worker stays silent for twice this is failed

    @property
    def folder(self) -> Path:
        return Path(self.output)

    def trial_folder(self, number: int) -> Path:
        return self.folder / "trials" / str(number)

    @property
    def best_spec(self) -> Path:
        """In the output folder, as every result (its data paths are rewritten to hold from there)."""
        return self.folder / (Path(self.spec).stem + ".best.nn")

    def overrides(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "verbose": 0}

    @property
    def sign(self) -> float:
        """+1 when smaller is better: best = min(sign * value)."""
        return 1.0 if self.direction == "minimize" else -1.0
