"""The comparison report: a pure function of the study's trials table.

`write_report(study, out_dir)` writes `report.md`, `trials.csv`, `history.csv`, `best.yaml` and the
figures into `out_dir` and returns the path of `report.md` (with `html=True` also a self-contained
`report.html`). It needs only the Optuna study, never W&B.

Figures are a list of (file, caption, drawing function); adding a figure (e.g. per-layer
diagnostics) is one more entry in `_figures`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from ablations import client
from ablations.config import short_key
from ablations.report.best import best_space
from ablations.report.diagnostics import write_diagnostics
from ablations.report.effect_figures import degradation, interaction_heatmaps
from ablations.report.effects_md import pure_error_design
from ablations.report.figures import curve_table, learning_curves, level_means
from ablations.report.html import write_html
from ablations.report.markdown import render
from ablations.report.table import diagnostics_table, history_table, pending_count, space_of, trials_table

__all__ = ["diagnostics_table", "history_table", "trials_table", "write_report"]

Draw = Callable[[Path], str | None]


def _figures(trials: pd.DataFrame, history: pd.DataFrame, space: dict[str, Any]) -> list[tuple[str, str, Draw]]:
    metric, direction = space["objective"]["metric"], space["objective"]["direction"]
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    return [
        (
            "curves.png",
            f"Learning curves: median `{metric}` per epoch by level over the trials alive at that epoch, band = "
            "their quartiles (within the metric's range). Only trials alive at an epoch enter its point; n per "
            "level is in the legend (first → last epoch), on the curve where it changes, and per epoch in "
            "`curves.csv`, so a level whose weak trials were pruned does not look better unannounced",
            lambda out: learning_curves(history, factors, metric, out),
        ),
        (
            "levels.png",
            f"Main effects: mean `{metric}` per level with its 95% confidence interval (scored trials)",
            lambda out: level_means(trials, factors, metric, direction, out),
        ),
        (
            "interactions.png",
            f"Interactions: mean `{metric}` of every combination of two factors (scored trials)",
            lambda out: interaction_heatmaps(trials, factors, metric, out, pure_error_design(space)),
        ),
        (
            "degradation.png",
            "Degradation: training error vs depth, plain vs residual (completed trials, 95% CI)",
            lambda out: degradation(trials, out),
        ),
    ]


def write_report(study: optuna.Study, out_dir: Path, html: bool = False) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = space_of(study)
    trials, history = trials_table(study), history_table(study)
    trials.to_csv(out_dir / "trials.csv", index=False)
    history.to_csv(out_dir / "history.csv", index=False)
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    curve_table(history, factors, space["objective"]["metric"]).to_csv(out_dir / "curves.csv", index=False)

    figures = {}
    for name, caption, draw in _figures(trials, history, space):
        (out_dir / name).unlink(missing_ok=True)  # a figure with nothing to draw must not survive from a past run
        if draw(out_dir):
            figures[caption] = name
    best = best_space(trials, space)
    (out_dir / "best.yaml").unlink(missing_ok=True)
    if best is not None:
        (out_dir / "best.yaml").write_text(yaml.safe_dump(best, sort_keys=False, allow_unicode=True))
    command = study.user_attrs.get("command")
    text = render(trials, space, figures, pending=pending_count(study), command=command, history=history)
    # Per-layer diagnostics: a self-contained section placed before "## Reproduce".
    section = write_diagnostics(study, out_dir)
    if section:
        head, sep, tail = text.partition("## Reproduce")
        text = f"{head}{section}\n{sep}{tail}" if sep else f"{text}\n{section}"
    path = out_dir / "report.md"
    path.write_text(text)
    if html:
        write_html(path)
    return path


client.callable_module(__name__, client.report)  # `ablations.report()` stays callable once this package is imported
