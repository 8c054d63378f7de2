"""The study: Optuna storage as the single source of truth, and the queue of (cell, seed) tasks.

Every task is enqueued once as a WAITING Optuna trial; a worker claims one by moving it to
RUNNING, which the storage allows only once. A re-run enqueues only the tasks that have no
finished (complete, pruned, diverged), waiting or running trial, so nothing finished is re-trained.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ablations.config import SpaceConfig, short_key, validate_space
from ablations.errors import AblationError, StudyError
from ablations.grid import Cell, Task, grid_fingerprint, schedule
from ablations.lease import Heartbeat, is_stale, worker_id
from ablations.pruners import make_pruner

DEFAULT_STORAGE = Path("runs") / "ablate.journal"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
IN_QUEUE = (TrialState.WAITING, TrialState.RUNNING)
FINISHED_OUTCOMES = ("complete", "pruned", "diverged", "early_stopped")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def mask_url(url: str) -> str:
    """Hide the password of `scheme://user:password@host/...` and of a `password=` parameter."""
    url = re.sub(r"(://[^:/@\s]+:)[^@\s]*@", r"\1***@", url)
    return re.sub(r"(?i)\b(password=)[^&\s]*", r"\1***", url)


def describe_storage(url: str | None) -> str:
    return str(DEFAULT_STORAGE) if url is None else mask_url(url)


def open_storage(url: str | None) -> BaseStorage:
    """Default: a journal file under runs/ (safe for several local processes, no lock errors).
    A path ending in .journal picks another journal file; anything else is an RDB URL."""
    if url is None or url.endswith(".journal"):
        path = DEFAULT_STORAGE if url is None else Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # An absolute path: Optuna's lock is a symlink to the journal, and it can only break the
        # lock of a killed process (after 30 s) when that link resolves; a relative one does not.
        return JournalStorage(JournalFileBackend(str(path.resolve())))
    given, url = url, _with_driver(url)
    # A server that drops packets would otherwise hang the first connect for minutes.
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as err:  # noqa: BLE001 - any failure to connect is the user's URL or server
        detail = mask_url(str(err).strip().splitlines()[0] if str(err).strip() else "")
        raise StudyError(
            f"--storage {mask_url(given)}: cannot open it ({type(err).__name__}: {detail}); "
            "check the URL, that the server is running, and that the database exists"
        ) from None


def _with_driver(url: str) -> str:
    """`postgresql://` means SQLAlchemy's default driver (psycopg 3 since SQLAlchemy 2.1); we
    ship psycopg2, so use it unless the URL names a driver or psycopg 3 is installed."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def load_existing(storage: BaseStorage, name: str, storage_url: str | None) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        hint = f"known studies: {', '.join(known)}" if known else "it holds no study yet; run `ablate run SPACE` first"
        raise StudyError(f"no study named {name!r} in {describe_storage(storage_url)}; {hint}") from None


def create_or_resume(
    storage: BaseStorage,
    space: SpaceConfig,
    name: str,
    command: str,
    storage_url: str | None,
    extend: bool = False,
) -> optuna.Study:
    """Create the study, or resume it if its grid is the same (or `extend` adds cells or seeds
    to it). A refused study is not written to at all: the check runs before any write."""
    pruner = make_pruner(space.pruner.name, space.pruner.args)
    sampler = optuna.samplers.RandomSampler(seed=0)  # every param is fixed by the queue
    fingerprint = grid_fingerprint(space)
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        try:
            study = optuna.create_study(
                study_name=name, storage=storage, direction=space.objective.direction, pruner=pruner, sampler=sampler
            )
            study.set_user_attr("grid", fingerprint)
            study.set_user_attr("command", mask_url(command))
        except optuna.exceptions.DuplicatedStudyError:  # another `ablate run` created it just now
            return create_or_resume(storage, space, name, command, storage_url, extend)
    else:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner, sampler=sampler)
        if _grid_of(study) is None:  # its creator died before recording the grid: adopt it
            study.set_user_attr("grid", fingerprint)
            study.set_user_attr("command", mask_url(command))
        if study.user_attrs.get("grid") != fingerprint and _same_grid(study.user_attrs.get("space"), fingerprint):
            study.set_user_attr("grid", fingerprint)  # made by an earlier version that had fewer config keys
        if study.user_attrs.get("grid") != fingerprint:
            where = describe_storage(storage_url)
            if not extend:
                raise StudyError(
                    f"study {name!r} in {where} was created from a different grid or base config; its results "
                    "are kept as they are. Run under a new name with --study NEW_NAME, or add --extend if you "
                    "only added levels or seeds"
                )
            check_extension(study.user_attrs.get("space") or {}, space, f"study {name!r} in {where}")
            study.set_user_attr("grid", fingerprint)
    study.set_user_attr("space", space.model_dump(mode="json"))
    study.set_user_attr("tasks", len(schedule(space, name)))
    return study


def _same_grid(stored: dict[str, Any] | None, fingerprint: str) -> bool:
    """Whether a stored space, read with today's defaults for keys added since it was stored, is the
    grid of `fingerprint`: a new config key must not lock users out of their earlier studies."""
    if not stored:
        return False
    try:
        return grid_fingerprint(validate_space(stored, source="stored space")) == fingerprint
    except AblationError:
        return False


def _grid_of(study: optuna.Study, wait_seconds: float = 30.0) -> str | None:
    """The study's grid fingerprint; another `ablate run` that has just created the study
    records it a moment later, so wait for it a little."""
    deadline = time.monotonic() + wait_seconds
    while (grid := study.user_attrs.get("grid")) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return grid


def check_extension(old: dict[str, Any], space: SpaceConfig, where: str) -> None:
    """`--extend` may add levels to existing factors and add seeds; anything else would change
    what the finished trials mean, so it needs a new study."""
    new = space.model_dump(mode="json")
    free = ("name", "description", "pruner", "factors", "seeds", "program_grace_seconds")
    fixed = [k for k in new if k not in free]
    changed = [k for k in fixed if old.get(k) != new[k]]
    if changed:
        raise StudyError(
            f"--extend: {where} differs in {', '.join(changed)}, not only in levels or seeds; "
            "run it under a new name with --study NEW_NAME"
        )
    old_factors, new_factors = old.get("factors", {}), new["factors"]
    if set(old_factors) != set(new_factors):
        raise StudyError(
            f"--extend: {where} has factors {', '.join(map(short_key, old_factors)) or '(none)'}; --extend can "
            "add levels and seeds but not add or drop a factor; run it under a new name with --study NEW_NAME"
        )
    for key, levels in old_factors.items():
        dropped = [v for v in levels if v not in new_factors[key]]
        if dropped:
            raise StudyError(
                f"--extend: factors.{short_key(key)} drops level(s) {', '.join(map(str, dropped))} of {where}; "
                "keep every old level (the report reads them all) or use --study NEW_NAME"
            )
    if space.seeds < int(old.get("seeds", 1)):
        raise StudyError(f"--extend: seeds {space.seeds} is fewer than the {old.get('seeds')} of {where}")


def task_of(trial: FrozenTrial) -> Task:
    return Task(Cell(dict(trial.user_attrs["cell"])), int(trial.user_attrs["seed"]))


def enqueue_task(study: optuna.Study, task: Task) -> None:
    params = {short_key(k): v for k, v in task.cell.values.items()}
    attrs = {"key": task.key, "cell_id": task.cell.id, "cell": task.cell.values, "seed": task.seed}
    study.enqueue_trial(params, user_attrs=attrs)


def enqueue_missing(study: optuna.Study, space: SpaceConfig) -> int:
    """Queue every task that has no finished, waiting or running trial; return how many.
    Two runs doing this at once may queue a task twice; `claim_next` runs only one of them."""
    taken = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False) if _holds_key(t)}
    added = 0
    for task in schedule(space, study.study_name):
        if task.key not in taken:
            enqueue_task(study, task)
            added += 1
    return added


def _holds_key(trial: FrozenTrial) -> bool:
    """A trial that finished its task or may still do so (waiting, running)."""
    if trial.state in IN_QUEUE:
        return True
    return trial.state in FINISHED and trial.user_attrs.get("outcome", "complete") in FINISHED_OUTCOMES


def _is_duplicate(study: optuna.Study, mine: FrozenTrial) -> bool:
    """Whether another trial of the same task has finished, or is queued ahead of this one (a
    lower number). Every worker applies the same rule, so of two copies exactly one runs."""
    key = mine.user_attrs.get("key")
    for other in study._storage.get_all_trials(study._study_id, deepcopy=False):  # noqa: SLF001
        if other._trial_id == mine._trial_id or other.user_attrs.get("key") != key:  # noqa: SLF001
            continue
        if other.state in FINISHED and _holds_key(other):
            return True
        if other.state in IN_QUEUE and other.number < mine.number:
            return True
    return False


def claim_next(study: optuna.Study) -> tuple[optuna.Trial, Task] | None:
    """Move the oldest WAITING trial to RUNNING and return it. The storage refuses the move if
    another worker claimed it first, so each queued trial runs once; a queued copy of a task
    that is already finished or queued ahead is closed as a duplicate instead of run. Optuna's
    `ask()` does the same pop but falls back to sampling a new trial, which would run something
    off the grid."""
    storage, study_id = study._storage, study._study_id  # noqa: SLF001 - see docstring
    for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = waiting._trial_id  # noqa: SLF001
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
            storage.set_trial_user_attr(trial_id, "worker", worker_id())
            storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
            if _is_duplicate(study, waiting):
                storage.set_trial_user_attr(trial_id, "outcome", "duplicate")
                storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile: claimed by another worker, or failed as stale
        return optuna.Trial(study, trial_id), task_of(waiting)
    return None


def reap_stale(study: optuna.Study) -> int:
    """Fail every RUNNING trial whose worker is gone (see `ablations.lease`) and queue its task
    again; return how many. If the worker was alive after all, its own `tell` is refused by the
    storage, so the task still finishes once."""
    storage, study_id = study._storage, study._study_id  # noqa: SLF001
    requeued = 0
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial):
            continue
        try:
            # `reaped`, not `outcome`: should the worker finish first, its outcome must stand.
            reason = f"worker {trial.user_attrs.get('worker', '?')} stopped renewing its lease"
            storage.set_trial_user_attr(trial._trial_id, "reaped", reason)  # noqa: SLF001
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # noqa: SLF001
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if "key" in trial.user_attrs:
            enqueue_task(study, task_of(trial))
            requeued += 1
    return requeued


def outcome_of(trial: FrozenTrial) -> str:
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.RUNNING:
        return "running"
    return str(trial.user_attrs.get("outcome", "failed"))


def counts(study: optuna.Study) -> Counter[str]:
    """Tasks by outcome, each task once: a finished trial wins over retries and failures;
    a duplicate (a second queued copy of a task, closed unrun) is not a task of its own."""
    rank = {"complete": 0, "pruned": 0, "diverged": 0, "early_stopped": 0, "running": 1, "waiting": 2, "failed": 3}
    best: dict[str, str] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get("key")
        if key is None:
            continue
        outcome = outcome_of(trial)
        if outcome == "duplicate":
            continue
        if key not in best or rank.get(outcome, 9) < rank.get(best[key], 9):
            best[key] = outcome
    total = Counter(best.values())
    total["not queued"] = max(0, int(study.user_attrs.get("tasks", 0)) - len(best))
    return total


def run_sweep(
    study: optuna.Study,
    run_one: Callable[[optuna.Trial, Task], Any],
    on_wait: Callable[[int], None] | None = None,
    poll_seconds: float = 2.0,
) -> int:
    """Claim and run queued tasks until none is queued or running; return how many ran here.

    While other workers still run trials, this one waits and watches their leases: a trial whose
    worker died is queued again and run here, so the sweep ends with every task finished."""
    ran = 0
    storage, study_id = study._storage, study._study_id  # noqa: SLF001
    while True:
        claimed = None
        try:
            with _signals_deferred():  # a Ctrl-C or SIGTERM lands after `claimed` is set
                claimed = claim_next(study)
            if claimed is not None:
                with Heartbeat(storage, claimed[0]._trial_id):  # noqa: SLF001
                    run_one(*claimed)
        except KeyboardInterrupt:
            if claimed is not None:
                release(storage, claimed[0]._trial_id)  # noqa: SLF001
            raise
        if claimed is not None:
            ran += 1
            continue
        if reap_stale(study):
            continue
        running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return ran
        if on_wait is not None:
            on_wait(len(running))
        time.sleep(poll_seconds)


def release(storage: BaseStorage, trial_id: int) -> None:
    """Mark a claimed trial interrupted, unless the trial layer already told its outcome, so the
    next `ablate run` queues its task again."""
    try:
        storage.set_trial_user_attr(trial_id, "outcome", "failed")
        storage.set_trial_user_attr(trial_id, "error", "interrupted; the next run re-runs this cell")
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then stop as they ask. (A signal mask would
    not do: the kernel hands the signal to another thread, and Python still runs its handler in
    the main thread, in the middle of the block.) Handlers can only be set from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)  # SIGALRM: a stop put off (see interrupts.py)
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if caught:
            raise KeyboardInterrupt
