"""Pruning-aware comparison: every trial at the largest budget all of them reached.

Comparing only the trials that completed favours the levels the pruner spared: a level whose bad
seeds were pruned looks better than it is (survivorship bias). At the common budget, the largest
epoch every complete or pruned trial reported, no trial is missing, so the comparison is fair
(at a smaller budget). Diverged trials are counted, and scored at that epoch only when they were
still finite there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ablations.report.stats import level_table

RAN = ("complete", "early_stopped", "pruned")


def common_budget(trials: pd.DataFrame) -> int | None:
    """The largest epoch every complete or pruned trial reached, None without such trials."""
    ran = trials[trials["outcome"].isin(RAN) & (trials["epochs_run"] > 0)]
    return int(ran["epochs_run"].min()) if len(ran) else None


def at_budget(trials: pd.DataFrame, history: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The trials table with `objective` read at epoch `budget`, every outcome kept as 'complete'
    except failed ones, so the level statistics score every trial that reached the budget."""
    values = history.loc[history["epoch"] == budget, ["key", "objective"]].drop_duplicates("key")
    table = trials.drop(columns="objective").merge(values, on="key", how="left")
    reached = table["outcome"].isin((*RAN, "diverged")) & table["objective"].notna()
    table["outcome"] = table["outcome"].where(~reached, "complete")
    return table


def _epochs(group: pd.DataFrame, outcome: str) -> str:
    stopped = group.loc[group["outcome"] == outcome, "epochs_run"].value_counts().sort_index()
    return ", ".join(f"{n}× ep {int(e)}" if n > 1 else f"ep {int(e)}" for e, n in stopped.items()) or "—"


def budget_comparison(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    factor: str,
    levels: list[Any],
    direction: str,
    others: Sequence[str],
) -> tuple[int | None, pd.DataFrame]:
    """Per level: mean at the common budget (all trials) next to the mean of the completed ones,
    and how many were pruned or diverged, at which epoch."""
    budget = common_budget(trials)
    complete = trials[trials["outcome"] == "complete"]
    finals = level_table(complete, factor, levels, direction, others).set_index("level")
    rows = []
    if budget is not None:
        fair = level_table(at_budget(trials, history, budget), factor, levels, direction, others)
        for _, row in fair.iterrows():
            level = row["level"]
            group = trials[trials[factor] == level]
            final = finals.loc[level] if level in finals.index else None
            rows.append(
                {
                    "level": level,
                    "n_budget": row["n"],
                    "mean_budget": row["mean"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "delta": row["delta"],
                    "delta_low": row["delta_low"],
                    "delta_high": row["delta_high"],
                    "n_complete": int(final["n"]) if final is not None else 0,
                    "mean_complete": float(final["mean"]) if final is not None else math.nan,
                    "pruned": int((group["outcome"] == "pruned").sum()),
                    "pruned_at": _epochs(group, "pruned"),
                    "diverged": int((group["outcome"] == "diverged").sum()),
                    "diverged_at": _epochs(group, "diverged"),
                }
            )
    return budget, pd.DataFrame(rows)
