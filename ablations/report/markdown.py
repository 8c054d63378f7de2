"""The report text: GitHub-flavoured markdown built from the trials table and the search space."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablations.config import DesignConfig, SpaceConfig, short_key
from ablations.grid import cells_of
from ablations.report.best import best_section
from ablations.report.effects_md import effects_sections
from ablations.report.stats import leaderboard, scored
from ablations.report.text import DASH, fmt, table


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return DASH
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _cell_count(space: dict[str, Any]) -> int:
    """Cells in the study's design (a one-at-a-time or random design runs fewer than the product).
    The stored space was validated when the study was created: only its design is rebuilt here,
    since validating levels again would load the models and datasets (torch) for one number."""
    design = space.get("design") or "full"
    try:
        stored = SpaceConfig.model_construct(
            factors=space["factors"],
            exclude=space.get("exclude") or [],
            design=DesignConfig.model_validate({"name": design} if isinstance(design, str) else design),
        )
        return len(cells_of(stored))
    except (ValueError, KeyError):  # a space stored by another version: the full product is the best guess
        return math.prod(len(levels) for levels in space["factors"].values())


def _design_text(space: dict[str, Any]) -> str:
    design = space.get("design") or "full"
    if isinstance(design, str) or design.get("name") == "full":
        return ""
    if design["name"] == "one_at_a_time":
        return ", one at a time from the baseline"
    size = f"{design['count']} cells" if design.get("count") else f"fraction {design['fraction']}"
    total = math.prod(len(levels) for levels in space["factors"].values())
    return f", a random {size} of the {total}-cell full grid (seed {design.get('seed', 0)})"


def _summary(trials: pd.DataFrame, space: dict[str, Any], pending: int) -> list[str]:
    factors = space["factors"]
    cells = _cell_count(space)
    seeds = int(space.get("seeds", 1))
    epochs = (space.get("train") or {}).get("epochs")
    counts = trials["outcome"].value_counts()
    grid = cells * seeds
    spent = int(trials["epochs_run"].sum())
    design = " × ".join(f"{short_key(k)} ({len(v)})" for k, v in factors.items()) or "no factors"
    objective = space["objective"]
    rows = [
        ("cells", f"{cells}: {design}{_design_text(space)}"),
        ("seeds per cell", str(seeds)),
        ("trials in the grid", f"{grid} (cells × seeds)"),
        *(
            (o.replace("_", " "), str(counts.get(o, 0)))
            for o in ("complete", "early_stopped", "pruned", "diverged", "failed")
        ),
        ("running or queued", str(pending)),
        ("not yet run", str(max(0, grid - len(trials) - pending))),
        (
            "epochs trained",
            f"{spent} of {grid * epochs} for the full grid without pruning ({spent / (grid * epochs):.0%})"
            if epochs and grid
            else str(spent),
        ),
        ("compute time", _duration(trials["wall_time"].sum(min_count=1))),
        ("objective", f"`{objective['metric']}`, {objective['direction']}"),
    ]
    return ["## Summary", "", table(pd.DataFrame(rows, columns=["", "value"])), ""]


def _leaderboard(trials: pd.DataFrame, metric: str, direction: str, epochs: int | None) -> list[str]:
    board = leaderboard(trials, direction, epochs)
    out = pd.DataFrame(
        {
            "rank": range(1, len(board) + 1),
            "cell": board["cell"],
            f"{metric} mean ± std": [
                f"{fmt(m, metric)} ± {fmt(s, metric)}" if not math.isnan(s) else fmt(m, metric)
                for m, s in zip(board["mean"], board["std"], strict=True)
            ],
            "n": board["n"],
            "budget": board["budget"],
            "best": [fmt(v, metric) for v in board["best"]],
            "test acc": [fmt(v, "acc") for v in board["test_acc"]],
            "diverged or failed": [f"{k}/{n}" for k, n in zip(board["broke"], board["trials"], strict=True)],
            "outcomes": board["outcomes"],
        }
    )
    if board["test_acc"].isna().all():
        out = out.drop(columns="test acc")
    best = "highest" if direction == "maximize" else "lowest"
    return [
        "## Leaderboard",
        "",
        f"Cells ranked by mean `{metric}` over their finished trials at the final budget, {best} first: completed "
        "trials at their last epoch, early-stopped ones at their best epoch (`n` counts them; `budget` says at "
        "which epoch the number is). Cells whose seeds all finished come first; then cells with some seeds "
        "pruned (the mean of the survivors, which flatters them; `budget` says how many); then cells where some "
        "seeds diverged or failed (fewest broken first: a cell that does not train reliably never outranks one that "
        "does); then cells whose trials were all pruned, at the mean value they had when stopped (`budget` names "
        "that epoch; not comparable with the final numbers above them); then cells that only broke. "
        "`test acc` averages finished trials.",
        "",
        table(out),
        "",
    ]


def _last_line(error: Any) -> str:
    return error.strip().splitlines()[-1][:200] if isinstance(error, str) and error.strip() else DASH


def _failures(trials: pd.DataFrame) -> list[str]:
    failed = trials[trials["outcome"] == "failed"]
    if failed.empty:
        return []
    errors = [_last_line(e) for e in failed["error"]]
    out = pd.DataFrame({"key": failed["key"], "cell": failed["cell"], "error": errors})
    return [
        "## Failed trials",
        "",
        "The last line of each error; the full text is in `trials.csv`.",
        "",
        table(out),
        "",
    ]


def render(
    trials: pd.DataFrame,
    space: dict[str, Any],
    figures: dict[str, str],
    pending: int = 0,
    command: str | None = None,
    history: pd.DataFrame | None = None,
) -> str:
    """The whole report. `figures` maps a caption to an image path relative to the report."""
    metric, direction = space["objective"]["metric"], space["objective"]["direction"]
    study = space.get("study", space["name"])
    lines = [f"# Ablation report: {study}", ""]
    if space.get("description"):
        lines += [space["description"].strip(), ""]
    lines += _summary(trials, space, pending)
    if scored(trials).empty:
        why = "no trial has finished yet" if trials.empty else "every finished trial failed or diverged"
        lines += ["## Results", "", f"**No results to compare:** {why}. Nothing is ranked below.", ""]
    else:
        lines += _leaderboard(trials, metric, direction, (space.get("train") or {}).get("epochs"))
        lines += effects_sections(trials, history, space)
        lines += best_section(trials, space)
    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures.items():
            lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
    lines += _failures(trials)
    lines += ["## Reproduce", ""]
    if command:
        lines += ["```", command, "```", ""]
    else:
        lines += ["The command that launched this study was not recorded.", ""]
    lines += [
        f"Regenerate this report from the study: `ablate report {study}` (plus the run's `--storage`).",
        "",
    ]
    return "\n".join(lines)
