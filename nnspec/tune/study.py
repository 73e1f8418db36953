"""The Optuna study behind `nnspec tune`: kept in RDB storage (a SQLite file by default, PostgreSQL for
many machines) with heartbeats, so that a trial whose worker died is marked failed and queued to run
again; and the samplers and pruners the command offers."""
from __future__ import annotations

import time
import warnings
from datetime import datetime, timedelta

import optuna
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

from ..errors import SpecError, first_line
from .settings import TOOL, Settings
from .space import SearchSpace

RETRY_OF = "retry_of"  # user attribute of a trial that reruns one cut off: that trial's number
MAX_RETRIES = 2
STORAGE_ATTEMPTS = 3
# What --trials counts. Running trials count too, so that workers finishing together stop at the total
# instead of each starting one more.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def quiet() -> None:
    """Optuna logs every trial (failed ones with tracebacks); nnspec prints one line per trial instead."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def shown(url: str) -> str:
    """A storage URL fit to print: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def storage(settings: Settings) -> optuna.storages.RDBStorage:
    url = settings.storage
    if url.startswith("postgresql://"):  # the driver the [tune] extra installs, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # SQLite: wait for another worker's write instead of failing with "database is locked"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        for attempt in range(STORAGE_ATTEMPTS):
            try:
                return LeasedStorage(url, engine_kwargs=engine, heartbeat_interval=settings.heartbeat,
                                     heartbeat_stale_trial_callback=retry)
            except (IntegrityError, ProgrammingError):  # workers starting together on a new database race to make its tables
                if attempt == STORAGE_ATTEMPTS - 1:
                    raise
                time.sleep(1.0)
    except ImportError as exc:
        missing = getattr(exc.__cause__, "name", None) or str(exc)
        raise SpecError(f"--storage {shown(settings.storage)}: needs the module {missing}: "
                        "pip install 'nnspec[tune]'", TOOL) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = first_line(exc)
        raise SpecError(f"--storage {shown(settings.storage)}: cannot open it: {reason}", TOOL) from None


class LeasedStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, where a trial's heartbeat starts the moment the trial runs. Optuna records the
    first heartbeat only once the trial's point is sampled, and never ages a RUNNING trial without one: a
    worker killed in between (by Ray ending a dead driver's tasks, say) would leave its trial RUNNING for
    ever, counted by --trials and never rerun. (The _-methods are the ones Optuna's own layers call.)"""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING:
            self.record_heartbeat(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state == TrialState.RUNNING:  # a queued trial taken by a worker
            self.record_heartbeat(trial_id)
        return changed

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials, and those RUNNING without a heartbeat for longer than the grace period:
        their worker died between the two writes above. (Their start time is the starting machine's clock,
        so machines sharing a study must agree on the time within the grace period, 2 --heartbeat.)"""
        started_before = datetime.now() - timedelta(seconds=2 * self.heartbeat_interval)
        with _create_scoped_session(self.scoped_session) as session:
            running = session.query(models.TrialModel).filter(models.TrialModel.study_id == study_id,
                                                               models.TrialModel.state == TrialState.RUNNING)
            silent = [t.trial_id for t in running if not t.heartbeats and t.datetime_start < started_before]
        return super()._get_stale_trial_ids(study_id) + silent


def open_study(settings: Settings, space: SearchSpace) -> optuna.Study:
    """The study, made on first use; a later run (or another worker) must search the same space."""
    described = {name: p.dist.describe() for name, p in space.params.items()}
    study = optuna.create_study(storage=storage(settings), study_name=settings.study, load_if_exists=True,
                                direction=settings.direction, sampler=sampler(settings, space), pruner=pruner(settings))
    made = study.user_attrs.get("space")
    if made is None:
        study.set_user_attr("space", described)
        study.set_user_attr("objective", settings.objective)
    elif (made, study.user_attrs.get("objective"), study.direction.name.lower()) != (
            described, settings.objective, settings.direction):
        raise SpecError(f"--study {settings.study}: that study searches another space or objective "
                        f"({study.user_attrs.get('objective')}, {len(made)} parameters); give a new --study name",
                        TOOL)
    return study


def sampler(settings: Settings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid())
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler()
    # constant_liar: workers running at once are steered away from each other's points
    return optuna.samplers.TPESampler(constant_liar=True)


def pruner(settings: Settings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def counted(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def retry(study: optuna.Study, trial) -> None:
    """Queue a trial that was cut off (its worker killed, or Ctrl-C) to run again at its point; it resumes
    from its checkpoint where that is reachable. At most MAX_RETRIES reruns of one trial."""
    first = trial.user_attrs.get(RETRY_OF, trial.number)
    reruns = sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RETRY_OF) == first)
    if reruns < MAX_RETRIES:
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: first})
