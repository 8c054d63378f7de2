"""The report text: GitHub-flavoured markdown built from the trials table and the search space."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from ablations.config import short_key
from ablations.report.stats import leaderboard, level_table, scored

DASH = "—"


def fmt(x: Any, metric: str, signed: bool = False) -> str:
    """Accuracies with four decimals (0.9123), losses with four significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    sign = "+" if signed else ""
    return f"{x:{sign}.4f}" if metric.endswith("acc") else f"{x:{sign}.4g}"


def _intervals(lows: pd.Series, highs: pd.Series, metric: str, signed: bool = False) -> list[str]:
    def one(low: float, high: float) -> str:
        if math.isnan(low) or math.isnan(high):
            return DASH
        return f"[{fmt(low, metric, signed)}, {fmt(high, metric, signed)}]"

    return [one(low, high) for low, high in zip(lows, highs, strict=True)]


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return DASH
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


_NUMBER = re.compile(r"^[-+]?\d[\d.e+-]*( ± [\d.e+-]+)?$|^\[.*\]$|^—$")


def _table(frame: pd.DataFrame) -> str:
    # Cells are pre-formatted strings; numparse off so tabulate keeps "0.9000" as written.
    frame = frame.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    numeric = [len(frame) > 0 and frame[c].str.match(_NUMBER).all() for c in frame.columns]
    align = ["right" if n else "left" for n in numeric]
    return frame.to_markdown(index=False, disable_numparse=True, colalign=align)


def _summary(trials: pd.DataFrame, space: dict[str, Any], pending: int) -> list[str]:
    factors = space["factors"]
    cells = math.prod(len(levels) for levels in factors.values())
    seeds = int(space.get("seeds", 1))
    epochs = (space.get("train") or {}).get("epochs")
    counts = trials["outcome"].value_counts()
    grid = cells * seeds
    spent = int(trials["epochs_run"].sum())
    design = " × ".join(f"{short_key(k)} ({len(v)})" for k, v in factors.items()) or "no factors"
    objective = space["objective"]
    rows = [
        ("cells", f"{cells}: {design}"),
        ("seeds per cell", str(seeds)),
        ("trials in the grid", f"{grid} (cells × seeds)"),
        *((o, str(counts.get(o, 0))) for o in ("complete", "pruned", "diverged", "failed")),
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
    return ["## Summary", "", _table(pd.DataFrame(rows, columns=["", "value"])), ""]


def _leaderboard(trials: pd.DataFrame, metric: str, direction: str) -> list[str]:
    board = leaderboard(trials, direction)
    out = pd.DataFrame(
        {
            "rank": range(1, len(board) + 1),
            "cell": board["cell"],
            f"{metric} mean ± std": [
                f"{fmt(m, metric)} ± {fmt(s, metric)}" if not math.isnan(s) else fmt(m, metric)
                for m, s in zip(board["mean"], board["std"], strict=True)
            ],
            "n": board["n"],
            "best": [fmt(v, metric) for v in board["best"]],
            "test acc": [fmt(v, "acc") for v in board["test_acc"]],
            "outcomes": board["outcomes"],
        }
    )
    if board["test_acc"].isna().all():
        out = out.drop(columns="test acc")
    best = "highest" if direction == "maximize" else "lowest"
    return [
        "## Leaderboard",
        "",
        f"Cells ranked by mean `{metric}` over seeds, {best} first. Completed and pruned trials are both "
        f"scored by the last `{metric}` they reported, so a pruned trial is scored at the epoch it stopped. "
        "Diverged and failed trials are not scored; they appear under outcomes. `n` is the number of scored "
        "trials; `test acc` averages completed trials only.",
        "",
        _table(out),
        "",
    ]


def _factor(trials: pd.DataFrame, key: str, levels: list[Any], metric: str, direction: str) -> list[str]:
    name = short_key(key)
    table = level_table(trials, name, levels, direction)
    out = pd.DataFrame(
        {
            "level": table["level"],
            "n": table["n"],
            "mean": [fmt(v, metric) for v in table["mean"]],
            "std": [fmt(v, metric) for v in table["std"]],
            "95% CI": _intervals(table["ci_low"], table["ci_high"], metric),
            "best": [fmt(v, metric) for v in table["best"]],
            "pruned": table["pruned"],
            "diverged": table["diverged"],
            "failed": table["failed"],
            "Δ vs best": [fmt(v, metric, signed=True) for v in table["delta"]],
            "Δ 95% CI": _intervals(table["delta_low"], table["delta_high"], metric, signed=True),
        }
    )
    out.loc[0, ["Δ vs best", "Δ 95% CI"]] = DASH  # the best level itself
    return [f"### {name}", "", _table(out), ""]


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
        _table(out),
        "",
    ]


def render(
    trials: pd.DataFrame,
    space: dict[str, Any],
    figures: dict[str, str],
    pending: int = 0,
    command: str | None = None,
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
        lines += _leaderboard(trials, metric, direction)
        if space["factors"]:
            lines += [
                "## Factors",
                "",
                f"Each level pools every cell and seed it appears in (scored trials only). Δ vs best is the "
                f"level's mean `{metric}` minus the best level's, with a Welch 95% confidence interval; an "
                "interval that excludes 0 marks a difference larger than the spread within levels.",
                "",
            ]
            for key, levels in space["factors"].items():
                lines += _factor(trials, key, levels, metric, direction)
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
