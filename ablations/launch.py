"""One sweep of a search space, as `ablate run SPACE` and `ablations.sweep()` both run it:
check the input, create or resume the study, queue what is missing, run it here or in worker
processes, write the report.

Everything a user can get wrong is checked before the storage is opened: bad input never
creates, changes or half-writes a study.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from rich.console import Console

from ablations.check import require_data
from ablations.config import ProgramSpaceConfig, SpaceConfig
from ablations.device import cpu_threads, resolve_device
from ablations.errors import AblationError
from ablations.grid import cells_of
from ablations.progress import SweepDisplay
from ablations.study import (
    FINISHED_OUTCOMES,
    counts,
    create_or_resume,
    describe_storage,
    enqueue_missing,
    open_storage,
    reap_stale,
    run_sweep,
)
from ablations.tracking import BackgroundTracker, make_tracker, resolve_wandb_mode

log = logging.getLogger("ablations")


@dataclass(frozen=True)
class SweepOptions:
    """The options of `ablate run` (see its --help); the defaults are the command's."""

    study: str | None = None
    storage: str | None = None
    wandb: str = "auto"
    wandb_project: str | None = None
    reports_dir: Path = Path("reports")
    device: str = "auto"
    threads: int | None = None
    workers: int = 1
    report: bool = True
    extend: bool = False
    max_cells: int = 1000
    yes: bool = False


def sweep_space(
    space: SpaceConfig, source: str, options: SweepOptions, command: str, console: Console
) -> tuple[optuna.Study, int]:
    """Run every missing cell x seed of `space` once; returns the study and how many trials
    failed here. `source` names the space in messages; `command` is recorded to reproduce it."""
    torch_device = resolve_device(options.device)
    if options.workers < 1:
        raise AblationError(f"--workers {options.workers}: give at least 1 worker process")
    per_worker = cpu_threads(options.threads, options.workers)
    _check_size(space, options.max_cells, options.yes)
    if isinstance(space, ProgramSpaceConfig):  # a script loads its own data
        from ablations.program import check_program

        check_program(space.program, source)
    else:
        require_data(space, source)
    name = options.study or space.name
    store = open_storage(options.storage)
    study = create_or_resume(store, space, name, command, options.storage, extend=options.extend)
    lost = reap_stale(study)  # trials of workers that died (SIGKILL, lost machine): run them again
    queued = enqueue_missing(study, space) + lost
    workers = options.workers
    where = f"{workers} worker processes x {per_worker} thread(s)" if workers > 1 else str(torch_device)
    console.print(
        f"study {name!r} in {describe_storage(options.storage)}: {queued} trial(s) queued now, running on {where}"
    )
    if workers > 1:
        failed = _sweep_with_workers(study, space, options, per_worker, console)
    else:
        torch.set_num_threads(per_worker)
        failed = run_queued(study, space, torch_device, options.wandb, options.wandb_project, options.storage, console)
    if options.report:
        _write_report(study, options.reports_dir, console)
    return study, failed


def _check_size(space: SpaceConfig, max_cells: int, yes: bool) -> None:
    cells = len(cells_of(space))
    if cells > max_cells and not yes:
        raise AblationError(
            f"the grid has {cells:,} cells x {space.seeds} seed(s) = {cells * space.seeds:,} trials, more than "
            f"--max-cells {max_cells:,}; check it with `ablate check`, then pass --yes to run it (or cut levels)"
        )


def _sweep_with_workers(
    study: optuna.Study, space: SpaceConfig, options: SweepOptions, threads: int, console: Console
) -> int:
    """Run the sweep in `options.workers` local processes with one display here; returns the failures."""
    from ablations.workers import Supervisor, SupervisorDisplay, start_workers, worker_devices

    before = counts(study)
    total, done = sum(before.values()), sum(before[k] for k in FINISHED_OUTCOMES)
    mode = resolve_wandb_mode(options.wandb)
    log_dir = Path("runs") / "logs" / study.study_name
    started = time.perf_counter()
    maximize = space.objective.direction == "maximize"
    with SupervisorDisplay(console, total, done, space.objective.metric, maximize) as display:
        procs = start_workers(
            study.study_name,
            options.storage,
            worker_devices(options.device, options.workers),
            threads,
            mode,
            options.wandb_project,
            log_dir,
        )
        supervisor = Supervisor(study, procs, display)
        try:
            supervisor.wait()
        except KeyboardInterrupt:
            supervisor.stop()
            raise
    after = counts(study)
    console.print(f"{options.workers} workers ran for {time.perf_counter() - started:.1f}s · " + counts_text(after))
    console.print(f"worker logs: {log_dir}/")
    if mode == "offline":
        console.print("W&B runs were written offline; to upload them: wandb sync runs/wandb/offline-run-*")
    unfinished = sum(after[k] for k in ("waiting", "running", "not queued")) if after else 0
    if unfinished:
        Console(stderr=True, highlight=False).print(
            f"{unfinished} trial(s) are not finished; run the same command again to finish them"
        )
    return display.outcomes["failed"] + unfinished


def run_queued(
    study: optuna.Study,
    space: SpaceConfig,
    torch_device: torch.device,
    wandb_mode: str,
    wandb_project: str | None,
    storage: str | None,
    console: Console,
) -> int:
    """Claim and run queued trials of `study` until none is left; print what happened.
    Returns how many of the trials run here failed (the exit code is 1 if any did)."""
    from ablations.trial import run_trial

    before = counts(study)
    total = sum(before.values())
    done = sum(before[k] for k in FINISHED_OUTCOMES)
    mode = resolve_wandb_mode(wandb_mode)
    tracker = make_tracker(mode, wandb_project or "ablations", Path("runs"), storage=describe_storage(storage))

    started = time.perf_counter()
    maximize = space.objective.direction == "maximize"
    with SweepDisplay(console, total, done, space.objective.metric, maximize) as display:

        def run_one(trial, task):  # noqa: ANN001, ANN202 - glue between queue, trial and display
            display.started(task)
            try:
                display.finished(run_trial(study, trial, task, space, tracker, torch_device))
            except optuna.exceptions.UpdateFinishedTrialError:
                # This worker stalled past its lease and another one failed its trial and queued
                # the cell again; the storage refused our result, so the cell still runs once.
                log.warning("lost the lease on %s; another worker runs it again", task.label)

        waited: list[int] = []

        def on_wait(running: int) -> None:
            if not waited:
                console.print(f"queue empty; waiting for {running} trial(s) still running on other workers")
            waited.append(running)

        ran = run_sweep(study, run_one, on_wait=on_wait)
    after = counts(study)
    console.print(f"ran {ran} trial(s) in {time.perf_counter() - started:.1f}s · " + counts_text(after))
    if isinstance(tracker, BackgroundTracker) and tracker.inner.offline_dirs:
        runs = tracker.inner.directory / "wandb"
        console.print(f"W&B runs were written offline; to upload them: wandb sync {runs}/offline-run-*")
        console.print(f"  or browse them here: wandb leet {runs}")
    return display.outcomes["failed"]


def counts_text(by_outcome: dict[str, int]) -> str:
    order = ("complete", "early_stopped", "pruned", "diverged", "failed", "running", "waiting", "not queued")
    return ", ".join(f"{by_outcome[k]} {k}" for k in order if by_outcome.get(k))


def _write_report(study: optuna.Study, reports_dir: Path, console: Console) -> Path:
    from ablations.dashboard import write_study_report

    path = write_study_report(study, reports_dir)
    console.print(f"report: {path}")
    return path
