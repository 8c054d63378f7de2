"""The Python entry points, for notebooks: `ablations.sweep(...)` does what `ablate run SPACE`
does and returns the trials table; `ablations.make_report(...)` rebuilds a study's report.

Both run the CLI's own code (ablations.launch, ablations.report) on the same storage, so a sweep
started here resumes in a shell and the other way round, and every cell x seed runs once. Bad
input raises the CLI's `AblationError` subclasses, whose message is the one line to read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablations.errors import AblationError

if TYPE_CHECKING:
    import pandas as pd

    from ablations.launch import SweepOptions

SpaceSource = str | Path | Mapping[str, Any]


def sweep(
    space: SpaceSource,
    *,
    study: str | None = None,
    storage: str | None = None,
    wandb: str = "auto",
    wandb_project: str | None = None,
    overrides: Sequence[str] = (),
    reports_dir: str | Path = "reports",
    device: str = "auto",
    threads: int | None = None,
    workers: int = 1,
    report: bool = True,
    extend: bool = False,
    max_cells: int = 1000,
    yes: bool = False,
) -> pd.DataFrame:
    """Run every cell x seed of `space` once (resuming the study), as `ablate run` does, and
    return the study's trials table (one row per cell x seed, the factors as columns).

    `space` is a search space file or the same content as a dict. The other arguments are the
    options of `ablate run` (`overrides` are its `--set KEY=VALUE` items; `report=False` is
    `--no-report`). Trials that failed are rows with outcome `failed` and their `error`."""
    from rich.console import Console

    from ablations.config import load_space, validate_space, with_overrides
    from ablations.launch import SweepOptions, sweep_space
    from ablations.report.table import trials_table
    from ablations.tracking import WANDB_MODES

    if wandb not in WANDB_MODES:
        raise AblationError(f"wandb={wandb!r}: expected one of {', '.join(WANDB_MODES)}")
    if isinstance(space, Mapping):
        source = "space"
        config = validate_space(with_overrides(dict(space), list(overrides)), source=source)
    else:
        source = str(space)
        config = load_space(space, list(overrides))
    options = SweepOptions(
        study=study,
        storage=storage,
        wandb=wandb,
        wandb_project=wandb_project,
        reports_dir=Path(reports_dir),
        device=device,
        threads=threads,
        workers=workers,
        report=report,
        extend=extend,
        max_cells=max_cells,
        yes=yes,
    )
    command = _call_text(space if isinstance(space, Mapping) else source, list(overrides), options)
    done, _ = sweep_space(config, source, options, command, Console(highlight=False, soft_wrap=True))
    return trials_table(done)


def make_report(
    study: str, *, storage: str | None = None, reports_dir: str | Path = "reports", format: str = "md"
) -> Path:
    """Rebuild REPORTS_DIR/STUDY/report.md (and the tables and figures) from the storage, as
    `ablate report STUDY` does; `format="html"` also writes the self-contained report.html.
    Returns the path of report.md."""
    from ablations.dashboard import write_study_report
    from ablations.study import load_existing, open_storage

    if format not in ("md", "html"):
        raise AblationError(f"format={format!r}: expected 'md' or 'html'")
    loaded = load_existing(open_storage(storage), study, storage)
    return write_study_report(loaded, Path(reports_dir), html=format == "html")


def _call_text(space: Any, overrides: list[str], options: SweepOptions) -> str:
    """The call that reproduces this sweep, recorded in the study for the report's "Reproduce"."""
    from ablations.launch import SweepOptions

    args = [repr(dict(space) if isinstance(space, Mapping) else space)]
    if overrides:
        args.append(f"overrides={overrides!r}")
    defaults = SweepOptions()
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value != getattr(defaults, field.name):
            args.append(f"{field.name}={str(value) if isinstance(value, Path) else value!r}")
    return f"ablations.sweep({', '.join(args)})"
