"""`nnspec tune`: its flags, and a run: check the spec, its space, the data and the flags; open the
study; run the workers; report. Optuna is imported only here and below (the `[tune]` extra)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpecError
from .settings import TOOL, Settings

if TYPE_CHECKING:
    from ..loader import Spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..distributed.cluster import add_arguments as ray_arguments

    p.add_argument("spec", metavar="SPEC", help=".nn spec with a search space")
    p.add_argument("--trials", type=_positive(int), metavar="N", help="the study's total of complete and pruned "
                   "trials, across workers and runs (default: 20; with --sampler grid, every point)")
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe", help="default: tpe")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="stops poor trials early from their per-epoch objective (default: median)")
    p.add_argument("--jobs", type=_positive(int), default=1, metavar="K",
                   help="trials at once, each in its own process with cores / K threads (default: 1)")
    ray_arguments(p, "the --jobs workers are Ray tasks anywhere in a Ray cluster")
    p.add_argument("--storage", metavar="URL", help="Optuna storage that every worker shares, e.g. "
                   "postgresql://user:password@host/db for many machines (default: a SQLite file in the output folder)")
    p.add_argument("--study", metavar="NAME", help="the study's name (default: the spec's file name); "
                   "the same command with the same name goes on where a study stopped")
    p.add_argument("--timeout", type=_positive(float), metavar="S", help="start no trial after S seconds")
    p.add_argument("--objective", default="val_loss", metavar="NAME",
                   help="the history entry to optimize: val_loss (default), val_accuracy, loss, ...")
    p.add_argument("--direction", choices=("minimize", "maximize"),
                   help="default: maximize accuracy, AUC, precision and recall; minimize the rest")
    p.add_argument("--data", metavar="DATA", help="training data (default: the spec's data)")
    p.add_argument("--epochs", type=_positive(int), metavar="N", help="epochs per trial (default: the spec's)")
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the table, plots, best model and each trial's "
                   "files (default: SPEC's name + .tune, in the current folder)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--heartbeat", type=_positive(int), default=30, metavar="S", help="a worker silent for 2 S "
                   "seconds is taken for dead: its trial is marked failed and queued again (default: 30)")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def settings_from(args: argparse.Namespace, spec: Spec) -> Settings:
    from ..train.callbacks import _mode  # Keras's "auto" mode: which figures grow when they improve

    output = Path(args.output or Path(args.spec).stem + ".tune")
    output.mkdir(parents=True, exist_ok=True)
    grid = spec.space.size() if spec.space is not None and args.sampler == "grid" else None
    return Settings(
        spec=args.spec, output=str(output), storage=args.storage or f"sqlite:///{(output / 'study.db').resolve()}",
        study=args.study or Path(args.spec).stem, objective=args.objective,
        direction=args.direction or ("maximize" if _mode(args.objective, "auto") == "max" else "minimize"),
        sampler=args.sampler, pruner=args.pruner, trials=args.trials or grid or 20, timeout=args.timeout,
        jobs=args.jobs, data=args.data, epochs=args.epochs, device=args.device, heartbeat=args.heartbeat)


def tune(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ModuleNotFoundError:
        raise SpecError("needs Optuna: pip install 'nnspec[tune]'", TOOL) from None
    from ..loader import load
    from . import workers
    from .objective import Objective
    from .report import write_report
    from .study import counted, open_study, quiet, shown

    from ..distributed.cluster import check_address, ray_module

    check_address(args, TOOL)
    if args.backend == "ray":  # before the output folder is made: a missing extra leaves nothing behind
        ray_module(TOOL)
    spec = load(args.spec)
    settings = settings_from(args, spec)
    quiet()
    objective = Objective(settings, spec)
    study = open_study(settings, objective.space)
    kind = "Ray task" if args.backend == "ray" else "worker"
    print(f"study '{settings.study}' in {shown(settings.storage)}: {counted(study)} of {settings.trials} trials; "
          f"{settings.jobs} {kind}(s), {settings.sampler} sampler, {settings.pruner} pruner", flush=True)
    stopped: list[str] = []  # workers that did not end well
    try:
        if args.backend == "ray":
            from ..distributed import tune as ray_tune

            stopped = ray_tune.run(settings, args.address)
        elif settings.jobs == 1:
            workers.optimize(study, objective, settings)
        else:
            stopped = workers.run(settings)
    except KeyboardInterrupt:
        print("interrupted: trials cut off are marked failed and queued again; the same command goes on",
              file=sys.stderr)
        _report(*write_report(study, objective.space, settings))
        raise
    written, notes = write_report(study, objective.space, settings)
    _report(written, notes + stopped)
    return 0


def _report(written: list[Path], notes: list[str]) -> None:
    print(f"wrote {', '.join(map(str, written))}")
    for note in notes:
        print(f"{TOOL}: note: {note}", file=sys.stderr)
