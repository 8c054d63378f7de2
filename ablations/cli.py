"""The `ablate` command line: check, run, status, report. Exit codes: 0 success, 2 bad input
(one line naming the problem and the fix), 1 a runtime failure, 130 interrupted."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path

import click
import optuna
import torch
from rich.console import Console
from rich.table import Table

from ablations import interrupts
from ablations.config import ProgramSpaceConfig, SpaceConfig, incompatible_cells, load_space, short_key, validate_space
from ablations.data import require_datasets
from ablations.device import cpu_threads, resolve_device
from ablations.errors import AblationError
from ablations.grid import DESIGNS, cells_of
from ablations.models import count_parameters
from ablations.progress import SweepDisplay
from ablations.pruners import make_pruner, pruner_setting
from ablations.study import (
    FINISHED_OUTCOMES,
    counts,
    create_or_resume,
    describe_storage,
    enqueue_missing,
    load_existing,
    open_storage,
    reap_stale,
    run_sweep,
)
from ablations.tracking import WANDB_MODES, BackgroundTracker, make_tracker, resolve_wandb_mode

log = logging.getLogger("ablations")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)

storage_option = click.option(
    "--storage",
    default=None,
    metavar="URL",
    envvar="ABLATE_STORAGE",  # keeps a password out of shell history and `ps`
    help="Optuna storage URL (e.g. postgresql://user:pw@host/db) or a .journal file; or set ABLATE_STORAGE. "
    "Default: runs/ablate.journal",
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the base config (train.lr=0.1) or replace a factor's levels (norm=none,batch).",
)
reports_option = click.option(
    "--reports-dir",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Reports go to REPORTS_DIR/<study>/.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def cli(verbose: bool) -> None:
    """Ablation sweeps over the design choices of a neural network: which ones matter, and by how much."""
    # Our warnings (a W&B outage, say) go to stderr as one line each, whatever the root logger does.
    logger = logging.getLogger("ablations")
    logger.handlers = [logging.StreamHandler(sys.stderr)]
    logger.handlers[0].setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


# ------------------------------------------------------------------------------------------ check


@cli.command()
@click.argument("space_file", metavar="SPACE", type=click.Path(dir_okay=False, path_type=Path))
@set_option
def check(space_file: Path, overrides: tuple[str, ...]) -> None:
    """Show what `ablate run SPACE` would run: factors, levels, cells x seeds, parameters, cost."""
    space = load_space(space_file, list(overrides))
    cells = cells_of(space)
    console.print(f"[bold]{space.name}[/bold]  {space.description.strip()}")
    factors = Table("factor", "config key", "levels", title="factors")
    for key, levels in space.factors.items():
        factors.add_row(short_key(key), key, ", ".join(str(v) for v in levels))
    console.print(factors)
    trials = len(cells) * space.seeds
    _print_exclusions(space)
    console.print(f"cells: {len(cells)}  x  seeds: {space.seeds}  =  trials: {trials}")
    console.print(f"objective: {space.objective.direction} {space.objective.metric}  ·  pruner: {_pruner_text(space)}")
    if isinstance(space, ProgramSpaceConfig):  # script mode: the script builds its own model
        console.print(f"program: {shlex.join(space.program)}  (once per trial, in the folder `ablate run` starts in)")
        return
    _print_model_variants(space, cells)
    _print_cost(space, trials)


def _pruner_text(space: SpaceConfig) -> str:
    args = ", ".join(f"{k}={v}" for k, v in space.pruner.args.items())
    return f"{space.pruner.name}({args})"


def _print_exclusions(space: SpaceConfig) -> None:
    """The `exclude` rules, how many cells each drops, and why a dropped cell makes no sense."""
    if not space.exclude:
        return
    problems = [(part, reason) for _, part, reason in incompatible_cells(space)]
    table = Table("rule", "cells left out", "why (first cell)", title="excluded", show_lines=True)
    full = list(DESIGNS[space.design.name](space))
    for rule in space.exclude:
        matched = [c for c in full if all(c.values.get(k) == v for k, v in rule.items())]
        why = next(
            (
                reason
                for c in matched
                for part, reason in problems
                if all(c.values.get(k) == v for k, v in part.items())
            ),
            "excluded by the space",
        )
        table.add_row(", ".join(f"{short_key(k)}={v}" for k, v in rule.items()), str(len(matched)), why)
    console.print(table)


def _print_model_variants(space: SpaceConfig, cells: list) -> None:
    from ablations.data import dataset_info
    from ablations.models import ARCHITECTURES

    input_shape, num_classes = dataset_info(space.data)  # shape and classes without loading the data
    variants: dict[str, tuple[int, str]] = {}
    for cell in cells:
        model_cfg = space.trial_config(cell.values).model
        key = model_cfg.model_dump_json()
        if key not in variants:
            # Uninitialised: the count does not depend on the init, and lsuv would need a batch.
            model = ARCHITECTURES[model_cfg.arch](model_cfg, input_shape, num_classes)
            label = " ".join(f"{short_key(k)}={v}" for k, v in cell.values.items() if k.startswith("model."))
            variants[key] = (count_parameters(model), label or "base model")
    table = Table("model variant", "parameters", title=f"model variants on {space.data.name} {input_shape}")
    for params, label in variants.values():
        table.add_row(label, f"{params:,}")
    console.print(table)


def _print_cost(space: SpaceConfig, trials: int) -> None:
    epochs = space.train.epochs
    worst = trials * epochs
    console.print(f"cost without pruning (the worst case): {worst:,} epochs ({trials} trials x {epochs} epochs)")
    name, args = space.pruner.name, space.pruner.args
    if name == "none":
        return
    startup = int(pruner_setting(name, args, "n_startup_trials", 0))
    min_resource = pruner_setting(name, args, "min_resource", 1)  # "auto" for successive halving
    first_step = max(
        int(pruner_setting(name, args, "n_warmup_steps", 0)) + 1, min_resource if isinstance(min_resource, int) else 1
    )
    best = min(trials, startup) * epochs + max(0, trials - startup) * min(first_step, epochs)
    console.print(
        f"cost with pruning: between {best:,} epochs (every trial after the first {startup} pruned as soon "
        f"as allowed) and {worst:,}"
    )


# ------------------------------------------------------------------------------------------ run


@cli.command()
@click.argument("space_file", metavar="SPACE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--study", "study_name", default=None, help="Study name. Default: the space's `name`.")
@storage_option
@click.option(
    "--wandb",
    "wandb_mode",
    type=click.Choice(WANDB_MODES),
    default="auto",
    show_default=True,
    help="auto = WANDB_MODE if set, else online with W&B credentials, else offline.",
)
@click.option("--wandb-project", default=None, envvar="WANDB_PROJECT", help="W&B project. Default: ablations.")
@set_option
@reports_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="Torch CPU threads per worker. Default: (cores - 1) / workers.")
@click.option("--no-report", is_flag=True, help="Skip the report at the end.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes.")
@click.option("--extend", is_flag=True, help="Add new levels or seeds to an existing study of this space.")
@click.option(
    "--max-cells", type=int, default=1000, show_default=True, help="Refuse a larger grid unless --yes is given."
)
@click.option("--yes", is_flag=True, help="Run a grid larger than --max-cells.")
def run(
    space_file: Path,
    study_name: str | None,
    storage: str | None,
    wandb_mode: str,
    wandb_project: str | None,
    overrides: tuple[str, ...],
    reports_dir: Path,
    device: str,
    threads: int | None,
    no_report: bool,
    workers: int,
    extend: bool,
    max_cells: int,
    yes: bool,
) -> None:
    """Run every cell x seed of SPACE once (resuming a study), prune weak trials, stream to W&B, report."""
    # Everything a user can get wrong is checked before the storage is opened: bad input never
    # creates, changes or half-writes a study.
    space = load_space(space_file, list(overrides))
    torch_device = resolve_device(device)
    if workers < 1:
        raise AblationError(f"--workers {workers}: give at least 1 worker process")
    per_worker = cpu_threads(threads, workers)
    _check_size(space, max_cells, yes)
    if isinstance(space, ProgramSpaceConfig):  # a script loads its own data
        from ablations.program import check_program

        check_program(space.program, space_file)
    else:
        _check_data(space, space_file)
    name = study_name or space.name
    command = shlex.join(["ablate", *click.get_current_context().obj["argv"]])
    store = open_storage(storage)
    study = create_or_resume(store, space, name, command, storage, extend=extend)
    lost = reap_stale(study)  # trials of workers that died (SIGKILL, lost machine): run them again
    queued = enqueue_missing(study, space) + lost
    where = f"{workers} worker processes x {per_worker} thread(s)" if workers > 1 else str(torch_device)
    console.print(f"study {name!r} in {describe_storage(storage)}: {queued} trial(s) queued now, running on {where}")
    if workers > 1:
        failed_here = _sweep_with_workers(study, space, storage, device, per_worker, workers, wandb_mode, wandb_project)
    else:
        torch.set_num_threads(per_worker)
        failed_here = _sweep(study, space, torch_device, wandb_mode, wandb_project, storage)
    if not no_report:
        _write_report(study, reports_dir)
    if failed_here:
        raise SystemExit(1)


def _check_size(space: SpaceConfig, max_cells: int, yes: bool) -> None:
    cells = len(cells_of(space))
    if cells > max_cells and not yes:
        raise AblationError(
            f"the grid has {cells:,} cells x {space.seeds} seed(s) = {cells * space.seeds:,} trials, more than "
            f"--max-cells {max_cells:,}; check it with `ablate check`, then pass --yes to run it (or cut levels)"
        )


def _check_data(space: SpaceConfig, space_file: Path) -> None:
    """Check every dataset the grid uses before anything is queued: missing files are bad input,
    not a failure of every trial."""
    try:
        require_datasets(space.trial_config(cell.values).data for cell in cells_of(space))
    except AblationError:
        raise
    except (OSError, ValueError) as err:
        raise AblationError(
            f"{space_file}: data.name: dataset {space.data.name!r} cannot be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); put its files in place or choose another dataset"
        ) from None


def _sweep_with_workers(
    study: optuna.Study,
    space: SpaceConfig,
    storage: str | None,
    device: str,
    threads: int,
    workers: int,
    wandb_mode: str,
    wandb_project: str | None,
) -> int:
    """Run the sweep in `workers` local processes with one display here; returns the failures."""
    from ablations.workers import Supervisor, SupervisorDisplay, start_workers, worker_devices

    before = counts(study)
    total, done = sum(before.values()), sum(before[k] for k in FINISHED_OUTCOMES)
    mode = resolve_wandb_mode(wandb_mode)
    log_dir = Path("runs") / "logs" / study.study_name
    started = time.perf_counter()
    maximize = space.objective.direction == "maximize"
    with SupervisorDisplay(console, total, done, space.objective.metric, maximize) as display:
        procs = start_workers(
            study.study_name, storage, worker_devices(device, workers), threads, mode, wandb_project, log_dir
        )
        supervisor = Supervisor(study, procs, display)
        try:
            supervisor.wait()
        except KeyboardInterrupt:
            supervisor.stop()
            raise
    after = counts(study)
    console.print(f"{workers} workers ran for {time.perf_counter() - started:.1f}s · " + _counts_text(after))
    console.print(f"worker logs: {log_dir}/")
    if mode == "offline":
        console.print("W&B runs were written offline; to upload them: wandb sync runs/wandb/offline-run-*")
    unfinished = sum(after[k] for k in ("waiting", "running", "not queued")) if after else 0
    if unfinished:
        err_console.print(f"{unfinished} trial(s) are not finished; run the same command again to finish them")
    return display.outcomes["failed"] + unfinished


def _sweep(
    study: optuna.Study,
    space: SpaceConfig,
    torch_device: torch.device,
    wandb_mode: str,
    wandb_project: str | None,
    storage: str | None = None,
) -> int:
    """Claim and run queued trials of `study` until none is left; print what happened.
    Returns how many of the trials run here failed (the exit code is 1 if any did)."""
    before = counts(study)
    total = sum(before.values())
    done = sum(before[k] for k in FINISHED_OUTCOMES)
    mode = resolve_wandb_mode(wandb_mode)
    tracker = make_tracker(mode, wandb_project or "ablations", Path("runs"), storage=describe_storage(storage))
    from ablations.trial import run_trial

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
    console.print(f"ran {ran} trial(s) in {time.perf_counter() - started:.1f}s · " + _counts_text(after))
    if isinstance(tracker, BackgroundTracker) and tracker.inner.offline_dirs:
        runs = tracker.inner.directory / "wandb"
        console.print(f"W&B runs were written offline; to upload them: wandb sync {runs}/offline-run-*")
        console.print(f"  or browse them here: wandb leet {runs}")
    return display.outcomes["failed"]


def _counts_text(by_outcome: dict[str, int]) -> str:
    order = ("complete", "pruned", "diverged", "failed", "running", "waiting", "not queued")
    return ", ".join(f"{by_outcome[k]} {k}" for k in order if by_outcome.get(k))


def _write_report(study: optuna.Study, reports_dir: Path, html: bool = False) -> None:
    from ablations.report import write_report

    path = write_report(study, reports_dir / study.study_name, html=html)
    console.print(f"report: {path}")


@cli.command()
@click.option("--study", "study_name", required=True, help="The study to join.")
@storage_option
@click.option("--wandb", "wandb_mode", type=click.Choice(WANDB_MODES), default="auto", show_default=True)
@click.option("--wandb-project", default=None, envvar="WANDB_PROJECT", help="W&B project. Default: ablations.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="Torch CPU threads. Default: cores - 1.")
def worker(
    study_name: str, storage: str | None, wandb_mode: str, wandb_project: str | None, device: str, threads: int | None
) -> None:
    """Join STUDY from any machine: run its queued trials until none is left (no report)."""
    torch_device = resolve_device(device)
    torch.set_num_threads(cpu_threads(threads))
    study = load_existing(open_storage(storage), study_name, storage)
    space = validate_space(study.user_attrs["space"], source=f"study {study_name}")
    study.pruner = make_pruner(space.pruner.name, space.pruner.args)
    console.print(f"joined study {study_name!r} in {describe_storage(storage)} on {torch_device}")
    if _sweep(study, space, torch_device, wandb_mode, wandb_project, storage):
        raise SystemExit(1)


# ------------------------------------------------------------------------------------------ status / report


@cli.command()
@click.argument("study_name", metavar="STUDY")
@storage_option
def status(study_name: str, storage: str | None) -> None:
    """Trials of STUDY by state: complete, pruned, diverged, failed, running, waiting."""
    study = load_existing(open_storage(storage), study_name, storage)
    by_outcome = counts(study)
    table = Table("state", "trials", title=f"study {study_name}")
    for state in ("complete", "pruned", "diverged", "failed", "running", "waiting", "not queued"):
        table.add_row(state, str(by_outcome.get(state, 0)))
    table.add_row("[bold]total", f"[bold]{sum(by_outcome.values())}")
    console.print(table)


@cli.command()
@click.argument("study_names", metavar="STUDY [STUDY_B ...]", nargs=-1, required=True)
@storage_option
@reports_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html"]),
    default="md",
    show_default=True,
    help="html also writes report.html: the same report as one self-contained file (images inlined).",
)
def report(study_names: tuple[str, ...], storage: str | None, reports_dir: Path, fmt: str) -> None:
    """Write REPORTS_DIR/STUDY/report.md, trials.csv and figures from the study storage.
    With two or more studies: one side-by-side comparison in REPORTS_DIR/A_vs_B/."""
    opened = open_storage(storage)
    studies = [load_existing(opened, name, storage) for name in study_names]
    if len(studies) == 1:
        _write_report(studies[0], reports_dir, html=fmt == "html")
        return
    from ablations.report.compare import write_comparison

    path = write_comparison(studies, reports_dir / "_vs_".join(study_names), html=fmt == "html")
    console.print(f"report: {path}")


# ------------------------------------------------------------------------------------------ entry


def main(argv: list[str] | None = None) -> None:
    # SIGTERM stops like Ctrl-C: the running trial is marked for re-run. Neither lands inside a
    # storage call, where an interrupt could break the journal's lock (see interrupts.py).
    interrupts.install()
    try:
        args = sys.argv[1:] if argv is None else argv
        cli.main(args=args, prog_name="ablate", standalone_mode=False, obj={"argv": args})
    except AblationError as err:
        err_console.print(f"error: {err}", soft_wrap=True)
        raise SystemExit(2) from None
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        err_console.print("interrupted: finished trials are saved; run the same command again to resume")
        raise SystemExit(130) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    main()
