"""The comparison report: a pure function of the study's trials table.

`write_report(study, out_dir)` writes `report.md`, `trials.csv`, `history.csv` and the figures
into `out_dir` and returns the path of `report.md`. It needs only the Optuna study, never W&B.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from ablations.config import short_key
from ablations.report.diagnostics import write_diagnostics
from ablations.report.figures import learning_curves, level_means
from ablations.report.markdown import render
from ablations.report.table import history_table, pending_count, space_of, trials_table

__all__ = ["history_table", "trials_table", "write_report"]

FIGURES = ("curves.png", "levels.png")


def write_report(study: optuna.Study, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = space_of(study)
    trials, history = trials_table(study), history_table(study)
    trials.to_csv(out_dir / "trials.csv", index=False)
    history.to_csv(out_dir / "history.csv", index=False)

    metric, direction = space["objective"]["metric"], space["objective"]["direction"]
    for stale in FIGURES:  # a figure with nothing to draw now must not survive from a past run
        (out_dir / stale).unlink(missing_ok=True)
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    curves = learning_curves(history, factors, metric, out_dir)
    bars = level_means(trials, factors, metric, direction, out_dir)
    captions = {
        curves: f"Learning curves: mean `{metric}` per epoch by level, band ±1 std over trials "
        "(a pruned trial leaves the mean at the epoch it stopped)",
        bars: f"Mean `{metric}` per level with its 95% confidence interval (scored trials)",
    }
    figures = {caption: name for name, caption in captions.items() if name}
    command = study.user_attrs.get("command")
    text = render(trials, space, figures, pending=pending_count(study), command=command)
    # Issue 3: per-layer diagnostics, a self-contained section placed before "## Reproduce".
    section = write_diagnostics(study, out_dir)
    if section:
        head, sep, tail = text.partition("## Reproduce")
        text = f"{head}{section}\n{sep}{tail}" if sep else f"{text}\n{section}"
    path = out_dir / "report.md"
    path.write_text(text)
    return path
