"""The classic ablation table of a one-at-a-time design: the baseline, then each change alone."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablations.config import short_key
from ablations.report.stats import mean_ci, scored
from ablations.report.text import DASH, fmt, intervals, table


def _index(levels: list[Any], value: Any) -> int:
    return next((i for i, level in enumerate(levels) if str(level) == str(value)), len(levels))


def ablation_table(ok: pd.DataFrame, trials: pd.DataFrame, space: dict[str, Any], metric: str) -> list[str]:
    """Baseline first, then each single change, with Δ vs the baseline paired by seed."""
    baseline = {short_key(k): v for k, v in (space["design"].get("baseline") or {}).items()}
    factors = list(baseline)
    space_levels = {short_key(k): v for k, v in space["factors"].items()}
    is_base = (ok[factors].astype(str) == pd.Series({f: str(v) for f, v in baseline.items()})).all(axis=1)
    base = ok[is_base].set_index("seed")["objective"]
    rows = []
    for cell, group in trials.groupby("cell", sort=False):
        values = scored(group)
        first = group.iloc[0]
        changed = [f for f in factors if str(first[f]) != str(baseline[f])]
        mean, std, _, _ = mean_ci(values["objective"])
        d = (values.set_index("seed")["objective"] - base).dropna()
        diff, _, low, high = mean_ci(d)
        # Design order: the baseline, then factor by factor, level by level as the space lists them.
        order = [(list(factors).index(f), _index(space_levels[f], first[f])) for f in changed]
        rows.append(
            {
                "change": ", ".join(f"{f}={first[f]}" for f in changed) or "**baseline**",
                "cell": cell,
                "n": len(values),
                f"{metric} mean ± std": DASH if math.isnan(mean) else f"{fmt(mean, metric)} ± {fmt(std, metric)}",
                "Δ vs baseline": DASH if not changed else fmt(diff, metric, signed=True),
                "Δ 95% CI": DASH if not changed else intervals(pd.Series([low]), pd.Series([high]), metric, True)[0],
                "pairs": DASH if not changed else str(len(d)),
                "sort": order,
            }
        )
    out = pd.DataFrame(rows)
    out = out.iloc[sorted(range(len(out)), key=lambda i: out["sort"].iloc[i])].drop(columns="sort")
    return [
        "## Ablation table",
        "",
        "The baseline, then each change alone (one factor moved away from the baseline). Δ vs baseline is "
        "paired by seed: the same seed gives both the same data order, so the seed noise partly cancels.",
        "",
        table(out),
        "",
    ]
