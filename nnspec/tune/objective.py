"""One trial: the spec filled in at the trial's point, trained by the engine (nnspec.engine) with checkpoints in
the trial's folder; its value is the best epoch's objective, and every epoch's goes to the pruner."""
from __future__ import annotations

import math
import os
import shutil
import socket
from pathlib import Path

import optuna

from ..atomic import write_text
from ..errors import SpecError, first_line
from ..loader import Spec, load, loads
from ..train import checkpoint
from .. import engine
from ..train.run import save_results
from .interrupt import Interrupt, StopOnInterrupt
from .pruning import Pruning
from .relocate import relocated
from .settings import TOOL, Settings
from .study import RETRY_OF


class TrialFailed(Exception):
    """A trial that cannot finish (its point does not build or train); the study goes on."""


def check_objective(objective: str, config) -> None:
    names = ["loss", *(m.name for m in config.metrics)]
    validated = bool(config.validation_split) or config.validation_data is not None
    if validated:
        names += [f"val_{n}" for n in names]
    if objective not in names:
        hint = "; val_ entries need validation data: add validation_split to the train section" \
            if objective.startswith("val_") and not validated else ""
        raise SpecError(f"--objective {objective}: training reports {', '.join(names)}{hint}", TOOL)


class Objective:
    def __init__(self, settings: Settings, spec: Spec | None = None):
        self.settings = settings
        spec = spec or load(settings.spec)
        if spec.space is None:
            raise SpecError(f"{settings.spec}: no search space to tune: write choice(...), uniform(...), "
                            "log_uniform(...), int_range(...) or optional(...) in it", TOOL)
        self.space = spec.space
        self.interrupt = Interrupt()
        config = engine.configure(spec, settings.overrides())
        check_objective(settings.objective, config)
        # the data is read once per worker, as the spec's defaults describe it
        self.data, self.validation = engine.read_data(spec, config, settings.data)

    def __call__(self, trial: optuna.Trial) -> float:
        point = {name: param.dist.suggest(trial, name) for name, param in self.space.params.items()}
        folder = self.settings.trial_folder(trial.user_attrs.get(RETRY_OF, trial.number))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("folder", str(folder.resolve()))
        try:
            history = self.train(trial, point, folder)
        except optuna.TrialPruned:
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)
            raise
        except optuna.exceptions.UpdateFinishedTrialError:  # taken over: failed as stale, and queued again
            raise
        except Exception as exc:  # this point does not train; the others may
            message = first_line(exc)
            trial.set_user_attr("error", message)
            raise TrialFailed(message) from exc
        sign = self.settings.sign
        best = sign * min(sign * value for value in history[self.settings.objective])
        if not math.isfinite(best):
            trial.set_user_attr("error", f"{self.settings.objective} is {best}: training diverged")
            raise TrialFailed(trial.user_attrs["error"])
        return best

    def train(self, trial: optuna.Trial, point: dict, folder: Path) -> dict[str, list[float]]:
        text = self.space.fill_in(point)
        spec = loads(text, self.settings.spec)
        config = engine.configure(spec, self.settings.overrides())
        checkpoints = folder / "checkpoint"
        resume = (checkpoints / checkpoint.FILENAME).exists()  # a rerun of a trial that was cut off
        run = engine.fit(engine.Trainable(spec, None), config, self.data, self.validation, device=self.settings.device,
                         checkpoint_dir=checkpoints, resume=resume, base_dir=folder,
                         callbacks=(Pruning(trial, self.settings.objective), StopOnInterrupt(self.interrupt)))
        if resume:
            trial.set_user_attr("resumed_at_epoch", run.trainer.start_epoch + 1)
        write_text(folder / "spec.nn", relocated(text, self.settings.spec, Path(self.settings.spec).parent, folder))
        save_results(spec, run, folder / "model.onnx", folder / "history.json", plot=False)
        shutil.rmtree(checkpoints)
        return run.history.history
