"""The combined verdict: does a factor (or a pair) change the result, or whether training works?

Per factor, up to three tests of one question, "does this factor matter?":

1. the metric at the final budget: the F-test of `anova.py` over the finished trials (completed,
   or early-stopped at their best epoch);
2. the metric at the common budget, only when trials were pruned: the same F-test with every
   trial (pruned ones included) scored at the largest epoch all of them reached, so the trials the
   pruner stopped still speak, at the budget where they are observed (never mixed with finals);
3. trains at all: the likelihood-ratio test of `divergence.py` on the odds of diverging or failing.

All p-values of one table form a family and are adjusted by Holm's step-down method, which keeps
the chance of any false "yes" in the table at or below 5% whatever the tests' dependence. A factor
*matters* when any of its adjusted p-values is below 0.05; `why` says which test carried it.
Pairs are a second family, tested the same way (interaction F-tests and the a x b logit term).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablations.report.anova import ALPHA, factor_tests, interaction_tests
from ablations.report.budget import at_budget, common_budget
from ablations.report.divergence import divergence_interactions, divergence_tests, holm
from ablations.report.stats import level_table, scored

TESTS = {"metric": "metric", "budget": "metric at common budget", "div": "divergence"}


def budget_frame(trials: pd.DataFrame, history: pd.DataFrame | None) -> tuple[int | None, pd.DataFrame | None]:
    """Every trial scored at the common budget, when some trial was pruned (else None)."""
    if history is None or not (trials["outcome"] == "pruned").any():
        return None, None
    budget = common_budget(trials)
    if budget is None:
        return None, None
    return budget, scored(at_budget(trials, history, budget))


def _adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over every p-value column of the table at once; `matters` and `why` from the adjusted ones."""
    columns = [f"p_{t}" for t in TESTS if f"p_{t}" in table]
    adjusted = holm(table[columns].to_numpy(float).ravel()).reshape(len(table), len(columns))
    for i, column in enumerate(columns):
        table[f"adj_{column}"] = adjusted[:, i] if len(table) else []
    why = []
    for row in adjusted:
        hits = [TESTS[c[2:]] for c, p in zip(columns, row, strict=True) if not math.isnan(p) and p < ALPHA]
        why.append(", ".join(hits))
    table["why"] = why
    table["matters"] = [bool(w) for w in why]
    return table


def _merge(frames: dict[str, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    merged: pd.DataFrame | None = None
    for name, frame in frames.items():
        if frame.empty:
            continue
        part = frame.rename(columns={c: f"{c}_{name}" for c in frame.columns if c not in keys})
        merged = part if merged is None else merged.merge(part, on=keys, how="outer")
    if merged is None:
        return pd.DataFrame(columns=keys)
    for name in TESTS:
        if name in frames and f"p_{name}" not in merged:
            merged[f"p_{name}"] = math.nan
    return merged


def factor_verdicts(
    trials: pd.DataFrame, history: pd.DataFrame | None, factors: Sequence[str], pure: bool
) -> tuple[int | None, pd.DataFrame]:
    """One row per factor: each test's statistic and raw p, Holm-adjusted p, `matters`, `why`;
    ranked by the metric's effect size (factors that only decide divergence after them)."""
    frames = {"metric": factor_tests(scored(trials), factors, pure_error=pure)}
    budget, at = budget_frame(trials, history)
    if at is not None:
        frames["budget"] = factor_tests(at, factors, pure_error=pure)
    frames["div"] = divergence_tests(trials, factors)
    table = _merge(frames, ["factor"])
    if table.empty:
        return budget, table
    order = {f: i for i, f in enumerate(frames["metric"]["factor"])}
    table = table.iloc[np.argsort([order.get(f, len(order)) for f in table["factor"]], kind="stable")]
    return budget, _adjust(table.reset_index(drop=True))


def pair_verdicts(
    trials: pd.DataFrame, history: pd.DataFrame | None, factors: Sequence[str], pure: bool
) -> pd.DataFrame:
    """One row per estimable pair, with the same columns as `factor_verdicts` (keys a, b)."""
    frames = {"metric": interaction_tests(scored(trials), factors, pure_error=pure)}
    _, at = budget_frame(trials, history)
    if at is not None:
        frames["budget"] = interaction_tests(at, factors, pure_error=pure)
    frames["div"] = divergence_interactions(trials, factors)
    table = _merge(frames, ["a", "b"])
    return _adjust(table.reset_index(drop=True)) if not table.empty else table


def best_levels(
    trials: pd.DataFrame, history: pd.DataFrame | None, factors: dict[str, list[Any]], direction: str
) -> tuple[int | None, dict[str, Any]]:
    """Each factor's best level: the top of its level table (least-squares means; never a level
    where half or more of the trials broke). When trials were pruned, the finished trials are the pruner's survivors, so
    the table is read at the common budget, where every trial is observed; returns that epoch too."""
    budget, _ = budget_frame(trials, history)
    table = trials if budget is None else at_budget(trials, history, budget)
    best = {}
    for factor, levels in factors.items():
        ranked = level_table(table, factor, levels, direction, [f for f in factors if f != factor])
        best[factor] = ranked["level"].iloc[0] if len(ranked) and ranked["n"].iloc[0] > 0 else None
    return budget, best


def verdict_summary(factor_rows: pd.DataFrame, pair_rows: pd.DataFrame, best: dict[str, Any]) -> dict[str, Any]:
    """The report's conclusions as plain data: significant factors, pairs and each significant
    factor's best level (benchmarks compare these between a pruned and an unpruned run)."""
    factors = sorted(factor_rows.loc[factor_rows["matters"], "factor"]) if len(factor_rows) else []
    hits = pair_rows.loc[pair_rows["matters"], ["a", "b"]] if len(pair_rows) else pd.DataFrame(columns=["a", "b"])
    pairs = sorted(f"{a} x {b}" for a, b in hits.itertuples(index=False))
    return {"factors": factors, "pairs": pairs, "best": {f: str(best.get(f)) for f in factors}}
