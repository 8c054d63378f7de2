"""Two (or more) studies side by side, e.g. the same grid on two datasets: `ablate report A B`.

Like the single report, a pure function of the studies' trials tables. Factors are compared by
name: a factor only one study varies shows a dash for the other.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from ablations.config import short_key
from ablations.report.anova import factor_tests, significant
from ablations.report.figures import _grid, _save
from ablations.report.html import write_html
from ablations.report.stats import leaderboard, level_table, scored
from ablations.report.table import space_of, trials_table
from ablations.report.text import DASH, fmt, intervals, pvalue, table

TOP = 5


def _factors(space: dict[str, Any]) -> dict[str, list[Any]]:
    return {short_key(k): levels for k, levels in space["factors"].items()}


def _union(studies: list[tuple[dict[str, Any], pd.DataFrame]]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for space, _ in studies:
        for factor, levels in _factors(space).items():
            merged.setdefault(factor, [])
            merged[factor] += [v for v in levels if v not in merged[factor]]
    return merged


def _summary(studies: list[tuple[dict[str, Any], pd.DataFrame]]) -> list[str]:
    rows: dict[str, list[str]] = {}
    for space, trials in studies:
        metric, direction = space["objective"]["metric"], space["objective"]["direction"]
        board = leaderboard(trials, direction)
        board = board[board["n"] > 0]
        counts = trials["outcome"].value_counts()
        values = {
            "description": space.get("description") or DASH,
            "dataset": str((space.get("data") or {}).get("name", DASH)),
            "factors": " × ".join(f"{f} ({len(v)})" for f, v in _factors(space).items()) or DASH,
            "seeds per cell": str(space.get("seeds", 1)),
            "trials": ", ".join(f"{counts.get(o, 0)} {o}" for o in ("complete", "pruned", "diverged", "failed")),
            "objective": f"`{metric}`, {direction}",
            "best cell": board["cell"].iloc[0] if len(board) else DASH,
            "its mean": fmt(board["mean"].iloc[0], metric) if len(board) else DASH,
        }
        for key, value in values.items():
            rows.setdefault(key, []).append(value)
    frame = pd.DataFrame([[k, *v] for k, v in rows.items()], columns=["", *(s["study"] for s, _ in studies)])
    return ["## Summary", "", table(frame), ""]


def _tests(studies: list[tuple[dict[str, Any], pd.DataFrame]], factors: dict[str, list[Any]]) -> list[str]:
    frame = pd.DataFrame({"factor": list(factors)})
    for space, trials in studies:
        tests = factor_tests(scored(trials), list(_factors(space))).set_index("factor")
        name = space["study"]

        def cell(factor: str, tests: pd.DataFrame = tests) -> str:
            if factor not in tests.index or math.isnan(tests.loc[factor, "p"]):
                return DASH
            row = tests.loc[factor]
            mark = " **yes**" if significant(row["p"]) else " no"
            return f"η² {row['eta2']:.3f}, p {pvalue(row['p'])}{mark}"

        frame[f"{name}: effect, beyond seed noise?"] = [cell(f) for f in factors]
    return [
        "## Which factors matter",
        "",
        "Per study, the factor's partial η² and the p-value of its F-test against seed noise (as in each "
        "study's own report); `yes` means p < 0.05.",
        "",
        table(frame),
        "",
    ]


def _levels(studies: list[tuple[dict[str, Any], pd.DataFrame]], factors: dict[str, list[Any]]) -> list[str]:
    lines = ["## Factors side by side", ""]
    for factor, levels in factors.items():
        frame = pd.DataFrame({"level": [str(v) for v in levels]})
        for space, trials in studies:
            metric, direction = space["objective"]["metric"], space["objective"]["direction"]
            name = space["study"]
            if factor not in trials.columns:
                frame[f"{name} mean"] = DASH
                continue
            others = [f for f in _factors(space) if f != factor]
            stats = level_table(trials, factor, levels, direction, others)
            stats.index = [str(v) for v in stats["level"]]
            stats = stats.reindex([str(v) for v in levels])
            frame[f"{name} mean"] = [fmt(v, metric) for v in stats["mean"]]
            frame[f"{name} 95% CI"] = intervals(stats["ci_low"], stats["ci_high"], metric)
            frame[f"{name} Δ vs best"] = [fmt(v, metric, signed=True) for v in stats["delta"]]
        lines += [f"### {factor}", "", table(frame), ""]
    return lines


def _leaderboards(studies: list[tuple[dict[str, Any], pd.DataFrame]]) -> list[str]:
    frame = pd.DataFrame({"rank": range(1, TOP + 1)})
    for space, trials in studies:
        metric, direction = space["objective"]["metric"], space["objective"]["direction"]
        board = leaderboard(trials, direction)
        board = board[board["n"] > 0].head(TOP)
        rows = zip(board["cell"], board["mean"], board["std"], strict=True)
        cells = [f"{c}: {fmt(m, metric)} ± {fmt(s, metric)}" for c, m, s in rows]
        frame[space["study"]] = cells + [DASH] * (TOP - len(cells))
    return [f"## Top {TOP} cells", "", "Mean ± std over seeds, best first.", "", table(frame), ""]


Loaded = list[tuple[dict[str, Any], pd.DataFrame]]


def _figure(studies: Loaded, factors: dict[str, list[Any]], out_dir: Path) -> str | None:
    if not factors or all(scored(t).empty for _, t in studies):
        return None
    fig, axes = _grid(len(factors))
    offsets = np.linspace(-0.15, 0.15, len(studies))
    for ax, (factor, levels) in zip(axes, factors.items(), strict=True):
        for offset, (space, trials) in zip(offsets, studies, strict=True):
            if factor not in trials.columns:
                continue
            stats = level_table(trials, factor, levels, space["objective"]["direction"])
            order = {str(v): i for i, v in enumerate(levels)}
            x = np.array([order[str(v)] for v in stats["level"]], dtype=float) + offset
            low = (stats["mean"] - stats["ci_low"]).fillna(0.0)
            high = (stats["ci_high"] - stats["mean"]).fillna(0.0)
            ax.errorbar(x, stats["mean"], yerr=[low, high], fmt="o", capsize=4, label=space["study"])
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set(title=factor, xlabel=factor, ylabel="objective (mean, 95% CI)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out_dir, "levels.png")


def write_comparison(studies: list[optuna.Study], out_dir: Path, html: bool = False) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = [(space_of(s), trials_table(s)) for s in studies]
    for space, trials in loaded:
        trials.to_csv(out_dir / f"trials-{space['study']}.csv", index=False)
    factors = _union(loaded)
    names = [space["study"] for space, _ in loaded]
    lines = [f"# Ablation comparison: {' vs '.join(names)}", ""]
    lines += _summary(loaded) + _leaderboards(loaded) + _tests(loaded, factors) + _levels(loaded, factors)
    (out_dir / "levels.png").unlink(missing_ok=True)
    if figure := _figure(loaded, factors, out_dir):
        caption = "Mean objective per level and study, 95% confidence intervals (scored trials)"
        lines += ["## Figures", "", f"**{caption}**", "", f"![{caption}]({figure})", ""]
    lines += ["## Reproduce", ""]
    for study in studies:
        command = study.user_attrs.get("command")
        lines += [f"- {study.study_name}: `{command}`" if command else f"- {study.study_name}: command not recorded"]
    lines += ["", f"Regenerate this comparison: `ablate report {' '.join(names)}`", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    if html:
        write_html(path)
    return path
