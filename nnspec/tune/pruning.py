"""The fit loop's link to Optuna's pruner: each epoch's objective goes to the trial, and a trial the
pruner judges hopeless stops there (optuna.TrialPruned leaves the loop and ends the trial)."""
from __future__ import annotations

import optuna

from ..train.callbacks import Callback


class Pruning(Callback):
    def __init__(self, trial: optuna.Trial, monitor: str):
        super().__init__()
        self.trial = trial
        self.monitor = monitor

    def on_train_begin(self) -> None:
        """A trial resumed from a checkpoint reports the epochs that checkpoint holds."""
        history = self.trainer.history
        for epoch, value in zip(history.epochs, history.history.get(self.monitor, [])):
            self.trial.report(value, epoch)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"epoch {epoch + 1} has no {self.monitor} (it has {', '.join(logs)})")
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {self.monitor} {value:.4g}")
