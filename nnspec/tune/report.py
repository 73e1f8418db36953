"""What a person reads after a search: a line per trial as it ends, then the table of every trial (best
first, saved as CSV), the best trial as a plain spec and its trained ONNX model, and the plots."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..atomic import write_bytes, write_text
from .relocate import relocated
from .settings import Settings
from .space import SearchSpace
from .study import RETRY_OF

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
ORDER = list(STATES.values())


def row(trial: FrozenTrial, space: SearchSpace, settings: Settings) -> dict[str, Any]:
    """One trial's values: its state, objective (a pruned trial's last figure), epochs, seconds, point, note."""
    value = trial.value if trial.state == TrialState.COMPLETE else None
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    notes = [trial.user_attrs.get("error", "its worker stopped" if trial.state == TrialState.FAIL else None)]
    if RETRY_OF in trial.user_attrs:
        notes.append(f"rerun of trial {trial.user_attrs[RETRY_OF]}")
    if "resumed_at_epoch" in trial.user_attrs:
        notes.append(f"resumed at epoch {trial.user_attrs['resumed_at_epoch']}")
    return {"trial": trial.number, "state": STATES[trial.state], settings.objective: value,
            "epochs": len(trial.intermediate_values), "seconds": seconds,
            **{name: trial.params.get(name) for name in space.params},
            "note": "; ".join(n for n in notes if n)}


def rows(study: optuna.Study, space: SearchSpace, settings: Settings) -> list[dict[str, Any]]:
    """Every trial: complete ones best first, then pruned ones (by their last figure), failed, unfinished."""
    def rank(values: dict[str, Any]):
        value = values[settings.objective]
        return ORDER.index(values["state"]), settings.sign * value if value is not None else 0.0, values["trial"]

    return sorted((row(t, space, settings) for t in study.get_trials(deepcopy=False)), key=rank)


def _cell(key: str, value: Any, space: SearchSpace) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if key == "seconds" else f"{value:.4g}"
    return space.params[key].dist.show(value) if key in space.params else str(value)


def table(rows_: list[dict[str, Any]], space: SearchSpace) -> str:
    if not rows_:
        return "no trials yet"
    header = list(rows_[0])
    cells = [header] + [[_cell(k, r[k], space) for k in header] for r in rows_]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def to_csv(rows_: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows_:
        writer = csv.DictWriter(buffer, fieldnames=list(rows_[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows_)
    return buffer.getvalue()


def announce(space: SearchSpace, settings: Settings) -> Callable[[optuna.Study, FrozenTrial], None]:
    """A study callback: one line as each trial ends."""
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        values = row(trial, space, settings)
        point = " ".join(f"{k}={_cell(k, values[k], space)}" for k in space.params if values[k] is not None)
        shown = _cell(settings.objective, values[settings.objective], space) or "-"
        note = f"  ({values['note']})" if values["note"] else ""
        print(f"trial {trial.number} {values['state']}: {settings.objective} {shown} after {values['epochs']} "
              f"epoch(s), {_cell('seconds', values['seconds'], space) or '?'} s  {point}{note}", flush=True)
    return callback


def _without_header(text: str) -> str:
    """The spec without its first comment lines, which describe the search (a plain spec replaces them)."""
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].lstrip().startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines)


def write_report(study: optuna.Study, space: SearchSpace, settings: Settings) -> tuple[list[Path], list[str]]:
    """Print the table and write the files; returns the files written, and notes (such as where the best
    model is when another machine trained it)."""
    from .plots import plot

    all_rows = rows(study, space, settings)
    print(table(all_rows, space))
    written = [settings.folder / "trials.csv"]
    write_text(written[0], to_csv(all_rows))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return written, ["no complete trial yet: no best spec, model or plots"]
    best = study.best_trial
    header = (f"# The best trial ({best.number}) of `nnspec tune` study '{settings.study}': "
              f"{settings.objective} {best.value:.6g}\n# {Path(settings.spec).name} with the values of that trial; "
              f"`nnspec train {settings.best_spec.name}` trains it.\n")
    text = relocated(_without_header(space.fill_in(best.params)), settings.spec, Path(settings.spec).parent,
                     settings.folder)
    write_text(settings.best_spec, header + text)
    written.append(settings.best_spec)
    notes = []
    model = Path(best.user_attrs.get("folder", "")) / "model.onnx"
    if model.is_file():
        write_bytes(settings.folder / "best.onnx", model.read_bytes())
        written.append(settings.folder / "best.onnx")
    else:
        notes.append(f"the best model is on {best.user_attrs.get('host', 'another machine')}: {model}")
    written += plot(study, settings)
    return written, notes
