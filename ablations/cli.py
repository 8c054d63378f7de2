"""The `ablate` command line: check, run, status, report. Exit codes: 0 success, 2 bad input
(one line naming the problem and the fix), 1 a runtime failure, 130 interrupted.

Each command imports what it needs when it runs: `--help`, `status` and the parsing of any
command start without torch, pandas or matplotlib (tests/test_cli_imports.py holds this)."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ablations import interrupts
from ablations.errors import AblationError
from ablations.tracking import WANDB_MODES

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
    from ablations.check import show
    from ablations.config import load_space

    show(load_space(space_file, list(overrides)), space_file, console)


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
    from ablations.config import load_space
    from ablations.launch import SweepOptions, sweep_space

    space = load_space(space_file, list(overrides))
    options = SweepOptions(
        study=study_name,
        storage=storage,
        wandb=wandb_mode,
        wandb_project=wandb_project,
        reports_dir=reports_dir,
        device=device,
        threads=threads,
        workers=workers,
        report=not no_report,
        extend=extend,
        max_cells=max_cells,
        yes=yes,
    )
    command = shlex.join(["ablate", *click.get_current_context().obj["argv"]])
    _, failed = sweep_space(space, str(space_file), options, command, console)
    if failed:
        raise SystemExit(1)


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
    import torch

    from ablations.config import validate_space
    from ablations.device import cpu_threads, resolve_device
    from ablations.launch import run_queued
    from ablations.pruners import make_pruner
    from ablations.study import describe_storage, load_existing, open_storage
    from ablations.workers import follow_supervisor

    follow_supervisor()
    torch_device = resolve_device(device)
    torch.set_num_threads(cpu_threads(threads))
    study = load_existing(open_storage(storage), study_name, storage)
    space = validate_space(study.user_attrs["space"], source=f"study {study_name}")
    study.pruner = make_pruner(space.pruner.name, space.pruner.args)
    console.print(f"joined study {study_name!r} in {describe_storage(storage)} on {torch_device}")
    if run_queued(study, space, torch_device, wandb_mode, wandb_project, storage, console):
        raise SystemExit(1)


# ------------------------------------------------------------------------------------------ status / report


@cli.command()
@click.argument("study_name", metavar="STUDY")
@storage_option
def status(study_name: str, storage: str | None) -> None:
    """Trials of STUDY by state: complete, pruned, diverged, failed, running, waiting."""
    from ablations.study import counts, load_existing, open_storage

    study = load_existing(open_storage(storage), study_name, storage)
    by_outcome = counts(study)
    table = Table("state", "trials", title=f"study {study_name}")
    for state in ("complete", "early_stopped", "pruned", "diverged", "failed", "running", "waiting", "not queued"):
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
    from ablations.study import load_existing, open_storage

    opened = open_storage(storage)
    studies = [load_existing(opened, name, storage) for name in study_names]
    if len(studies) == 1:
        from ablations.dashboard import write_study_report

        console.print(f"report: {write_study_report(studies[0], reports_dir, html=fmt == 'html')}")
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
