"""The study: Optuna storage as the single source of truth, and the queue of (cell, seed) tasks.

Every task is enqueued once as a WAITING Optuna trial; a worker claims one by moving it to
RUNNING, which the storage allows only once. A re-run enqueues only the tasks that have no
finished (complete, pruned, diverged), waiting or running trial, so nothing finished is re-trained.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ablations.config import SpaceConfig, short_key
from ablations.errors import StudyError
from ablations.grid import Cell, Task, grid_fingerprint, schedule
from ablations.pruners import make_pruner

DEFAULT_STORAGE = Path("runs") / "ablate.journal"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
IN_QUEUE = (TrialState.WAITING, TrialState.RUNNING)
FINISHED_OUTCOMES = ("complete", "pruned", "diverged")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def mask_url(url: str) -> str:
    """Hide the password of `scheme://user:password@host/...`."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def describe_storage(url: str | None) -> str:
    return str(DEFAULT_STORAGE) if url is None else mask_url(url)


def open_storage(url: str | None) -> BaseStorage:
    """Default: a journal file under runs/ (safe for several local processes, no lock errors).
    A path ending in .journal picks another journal file; anything else is an RDB URL."""
    if url is None or url.endswith(".journal"):
        path = DEFAULT_STORAGE if url is None else Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return RDBStorage(url)
    except Exception as err:  # noqa: BLE001 - any failure to connect is the user's URL or server
        raise StudyError(
            f"--storage {mask_url(url)}: cannot open it ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "check the URL, that the server is running, and that the database exists"
        ) from None


def load_existing(storage: BaseStorage, name: str, storage_url: str | None) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        hint = f"known studies: {', '.join(known)}" if known else "it holds no study yet; run `ablate run SPACE` first"
        raise StudyError(f"no study named {name!r} in {describe_storage(storage_url)}; {hint}") from None


def create_or_resume(
    storage: BaseStorage, space: SpaceConfig, name: str, command: str, storage_url: str | None
) -> optuna.Study:
    pruner = make_pruner(space.pruner.name, space.pruner.args)
    sampler = optuna.samplers.RandomSampler(seed=0)  # every param is fixed by the queue
    fingerprint = grid_fingerprint(space)
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, direction=space.objective.direction, pruner=pruner, sampler=sampler
        )
        study.set_user_attr("grid", fingerprint)
        study.set_user_attr("command", command)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner, sampler=sampler)
        if study.user_attrs.get("grid") != fingerprint:
            raise StudyError(
                f"study {name!r} in {describe_storage(storage_url)} was created from a different grid or base "
                f"config; its results are kept as they are. Run under a new name with --study NEW_NAME"
            ) from None
    study.set_user_attr("space", space.model_dump(mode="json"))
    study.set_user_attr("tasks", len(schedule(space, name)))
    return study


def task_of(trial: FrozenTrial) -> Task:
    return Task(Cell(dict(trial.user_attrs["cell"])), int(trial.user_attrs["seed"]))


def enqueue_missing(study: optuna.Study, space: SpaceConfig) -> int:
    """Queue every task that has no finished, waiting or running trial; return how many."""
    taken = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False) if t.state in FINISHED + IN_QUEUE}
    added = 0
    for task in schedule(space, study.study_name):
        if task.key in taken:
            continue
        params = {short_key(k): v for k, v in task.cell.values.items()}
        attrs = {"key": task.key, "cell_id": task.cell.id, "cell": task.cell.values, "seed": task.seed}
        study.enqueue_trial(params, user_attrs=attrs)
        added += 1
    return added


def claim_next(study: optuna.Study) -> tuple[optuna.Trial, Task] | None:
    """Move the oldest WAITING trial to RUNNING and return it. The storage refuses the move if
    another worker claimed it first, so each queued task runs once. Optuna's `ask()` does the
    same pop but falls back to sampling a new trial, which would run something off the grid."""
    storage, study_id = study._storage, study._study_id  # noqa: SLF001 - see docstring
    for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):  # noqa: SLF001
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        return optuna.Trial(study, waiting._trial_id), task_of(waiting)  # noqa: SLF001
    return None


def outcome_of(trial: FrozenTrial) -> str:
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.RUNNING:
        return "running"
    return str(trial.user_attrs.get("outcome", "failed"))


def counts(study: optuna.Study) -> Counter[str]:
    """Tasks by outcome, each task once: a finished trial wins over retries and failures."""
    rank = {"complete": 0, "pruned": 0, "diverged": 0, "running": 1, "waiting": 2, "failed": 3}
    best: dict[str, str] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get("key")
        if key is None:
            continue
        outcome = outcome_of(trial)
        if key not in best or rank.get(outcome, 9) < rank.get(best[key], 9):
            best[key] = outcome
    total = Counter(best.values())
    total["not queued"] = max(0, int(study.user_attrs.get("tasks", 0)) - len(best))
    return total


def run_sweep(study: optuna.Study, run_one: Callable[[optuna.Trial, Task], Any]) -> int:
    """Claim and run queued tasks until the queue is empty; return how many ran."""
    ran = 0
    while (claimed := claim_next(study)) is not None:
        run_one(*claimed)
        ran += 1
    return ran
