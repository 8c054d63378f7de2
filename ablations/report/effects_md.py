"""Report sections on effects: which factors matter, each factor's levels, interactions, the
pruning-aware comparison and, for a one-at-a-time design, the classic ablation table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablations.config import short_key
from ablations.report.anova import factor_tests, interaction_tests, significant
from ablations.report.budget import budget_comparison
from ablations.report.importance import fanova_importance
from ablations.report.oat import ablation_table
from ablations.report.stats import level_table, scored
from ablations.report.text import DASH, fmt, intervals, pvalue, table

Factors = dict[str, list[Any]]


def _f(f: float, df: int, df_error: int) -> str:
    return DASH if math.isnan(f) else f"{f:.2f} ({df}, {df_error})"


def _factor_tests(ok: pd.DataFrame, trials: pd.DataFrame, factors: Factors, direction: str, pure: bool) -> list[str]:
    tests = factor_tests(ok, list(factors), pure_error=pure)
    if tests.empty:
        return []
    importance = fanova_importance(trials, factors, direction)
    out = pd.DataFrame(
        {
            "rank": range(1, len(tests) + 1),
            "factor": tests["factor"],
            "levels": tests["levels"],
            "F (df, df error)": [_f(*r) for r in zip(tests["F"], tests["df"], tests["df_error"], strict=True)],
            "p": [pvalue(p) for p in tests["p"]],
            "partial η²": [DASH if math.isnan(e) else f"{e:.3f}" for e in tests["eta2"]],
            "beyond seed noise": ["**yes**" if significant(p) else "no" for p in tests["p"]],
            "fANOVA importance": [f"{importance[f]:.3f}" if f in importance else DASH for f in tests["factor"]],
        }
    )
    error = tests["error"].iloc[0]
    noise = "the spread between seeds of the same cell (pure error)"
    if error != "seed noise":
        why = "one seed per cell leaves no pure seed noise" if pure else "a sparse design leaves the factors entangled"
        noise = f"the residual of the additive model ({why}; this makes the test conservative)"
    return [
        "## Which factors matter",
        "",
        "Factors ranked by effect size. Each row is an F-test of the factor's main effect in a linear model "
        f"with every factor, against {noise}; partial η² is the share of the factor's variation in "
        "the variation it and the noise explain together. `yes` means p < 0.05. Optuna's fANOVA importance "
        "(completed trials, a random forest) is a cross-check: it should rank the factors alike.",
        "",
        table(out),
        "",
    ]


def _levels(trials: pd.DataFrame, factors: Factors, factor: str, metric: str, direction: str) -> list[str]:
    others = [f for f in factors if f != factor]
    levels = factors[factor]
    stats = level_table(trials, factor, levels, direction, others)
    out = pd.DataFrame(
        {
            "level": stats["level"],
            "n": stats["n"],
            "mean": [fmt(v, metric) for v in stats["mean"]],
            "std": [fmt(v, metric) for v in stats["std"]],
            "95% CI": intervals(stats["ci_low"], stats["ci_high"], metric),
            "best": [fmt(v, metric) for v in stats["best"]],
            "pruned": stats["pruned"],
            "diverged": stats["diverged"],
            "failed": stats["failed"],
            "Δ vs best": [fmt(v, metric, signed=True) for v in stats["delta"]],
            "Δ 95% CI": intervals(stats["delta_low"], stats["delta_high"], metric, signed=True),
            "pairs": [str(n) if n else "Welch" for n in stats["paired"]],
        }
    )
    out.loc[0, ["Δ vs best", "Δ 95% CI", "pairs"]] = DASH  # the best level itself
    return [f"### {factor}", "", table(out), ""]


def _interactions(ok: pd.DataFrame, factors: Factors, metric: str, pure: bool) -> list[str]:
    tests = interaction_tests(ok, list(factors), pure_error=pure)
    if tests.empty:
        return []
    lines = [
        "## Interactions",
        "",
        "For each pair of factors: the mean of every combination (scored trials, n in brackets) and an "
        "F-test of whether the pair's effect differs from the sum of the two main effects. A flagged "
        "interaction means one factor's effect depends on the other's level: read its main effects with care.",
        "",
    ]
    for _, test in tests.iterrows():
        a, b = test["a"], test["b"]
        flag = "**significant interaction**" if significant(test["p"]) else "no significant interaction"
        eta = DASH if math.isnan(test["eta2"]) else f"{test['eta2']:.3f}"
        lines += [
            f"### {a} × {b}",
            "",
            f"{flag}: F = {_f(test['F'], test['df'], test['df_error'])}, p = {pvalue(test['p'])}, partial η² = {eta}",
            "",
            table(_pivot(ok, a, b, factors, metric)),
            "",
        ]
    return lines


def _pivot(ok: pd.DataFrame, a: str, b: str, factors: Factors, metric: str) -> pd.DataFrame:
    rows = []
    for level_a in factors[a]:
        row: dict[str, str] = {f"{a} \\ {b}": str(level_a)}
        for level_b in factors[b]:
            values = ok.loc[(ok[a] == level_a) & (ok[b] == level_b), "objective"]
            row[str(level_b)] = f"{fmt(values.mean(), metric)} ({len(values)})" if len(values) else DASH
        rows.append(row)
    return pd.DataFrame(rows)


def _budget(trials: pd.DataFrame, history: pd.DataFrame, factors: Factors, metric: str, direction: str) -> list[str]:
    stopped = trials["outcome"].isin(("pruned", "diverged"))
    lines = ["## Pruning-aware comparison", ""]
    if not stopped.any():
        return [*lines, "No trial was pruned or diverged: the results above already compare every trial.", ""]
    budget = None
    tables = []
    for factor, levels in factors.items():
        others = [f for f in factors if f != factor]
        budget, comparison = budget_comparison(trials, history, factor, levels, direction, others)
        if comparison.empty:
            continue
        out = pd.DataFrame(
            {
                "level": comparison["level"],
                "n": comparison["n_budget"],
                "mean at budget": [fmt(v, metric) for v in comparison["mean_budget"]],
                "95% CI": intervals(comparison["ci_low"], comparison["ci_high"], metric),
                "Δ vs best": [fmt(v, metric, signed=True) for v in comparison["delta"]],
                "Δ 95% CI": intervals(comparison["delta_low"], comparison["delta_high"], metric, signed=True),
                "n complete": comparison["n_complete"],
                "mean of completed": [fmt(v, metric) for v in comparison["mean_complete"]],
                "pruned": comparison["pruned"],
                "pruned at": comparison["pruned_at"],
                "diverged": comparison["diverged"],
                "diverged at": comparison["diverged_at"],
            }
        )
        out.loc[0, ["Δ vs best", "Δ 95% CI"]] = DASH
        tables += [f"### {factor} at epoch {budget}", "", table(out), ""]
    if budget is None:
        return []
    return [
        *lines,
        f"Pruning stops weak trials early, so the completed trials of a level are its survivors and their mean "
        f"flatters the levels that were pruned most. Here every trial is compared at epoch {budget}, the largest "
        f"budget every complete or pruned trial reached (`{metric}` at that epoch; a diverged trial counts only "
        "if still finite there), next to the mean of the completed trials alone. Where the two rankings "
        "disagree, trust the comparison at the common budget.",
        "",
        *tables,
    ]


def pure_error_design(space: dict[str, Any]) -> bool:
    """Whether the design keeps the factors orthogonal enough to test against pure seed noise:
    the full factorial (balanced) and one-at-a-time (its additive model is saturated) do, a random
    fraction does not."""
    design = space.get("design") or "full"
    return (design if isinstance(design, str) else design.get("name")) != "random"


def effects_sections(trials: pd.DataFrame, history: pd.DataFrame | None, space: dict[str, Any]) -> list[str]:
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    if not factors:
        return []
    metric, direction = space["objective"]["metric"], space["objective"]["direction"]
    ok = scored(trials)
    design = space.get("design") or "full"
    name = design if isinstance(design, str) else design.get("name")
    pure = pure_error_design(space)
    lines = []
    if name == "one_at_a_time":
        lines += ablation_table(ok, trials, space, metric)
    lines += _factor_tests(ok, trials, factors, direction, pure)
    lines += [
        "## Factors",
        "",
        f"Each level pools every cell and seed it appears in (scored trials only). Δ vs best is the level's mean "
        f"`{metric}` minus the best level's, with a 95% confidence interval: paired over trials that share the "
        "other factors' levels and the seed (`pairs`), or Welch's when too few trials pair up. An interval that "
        "excludes 0 marks a difference larger than seed noise.",
        "",
    ]
    for factor in factors:
        lines += _levels(trials, factors, factor, metric, direction)
    lines += _interactions(ok, factors, metric, pure)
    if history is not None:
        lines += _budget(trials, history, factors, metric, direction)
    return lines
