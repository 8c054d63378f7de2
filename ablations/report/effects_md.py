"""Report sections on effects: which factors matter, each factor's levels, interactions, the
pruning-aware comparison and, for a one-at-a-time design, the classic ablation table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablations.config import short_key
from ablations.report.budget import budget_comparison
from ablations.report.divergence import BROKE, rate_text
from ablations.report.importance import fanova_importance
from ablations.report.oat import ablation_table
from ablations.report.stats import level_table, scored
from ablations.report.text import DASH, fmt, intervals, pvalue, table
from ablations.report.verdict import best_levels, budget_frame, factor_verdicts, pair_verdicts

Factors = dict[str, list[Any]]


def _f(f: float, df: int, df_error: int) -> str:
    return DASH if math.isnan(f) else f"{f:.2f} ({int(df)}, {int(df_error)})"


def _p(raw: float, adjusted: float) -> str:
    return DASH if math.isnan(raw) else f"{pvalue(raw)} (Holm {pvalue(adjusted)})"


def _chi2(chi2: float, df: float) -> str:
    return DASH if math.isnan(chi2) else f"{chi2:.2f} ({int(df)})"


def _tests_columns(rows: pd.DataFrame, budget: int | None) -> dict[str, list[str]]:
    """The test columns shared by the factor and the pair tables: statistic, raw and Holm p."""
    get = lambda c: rows[c] if c in rows else pd.Series([math.nan] * len(rows))  # noqa: E731
    out = {
        "metric F (df, df error)": [
            _f(*r) for r in zip(get("F_metric"), get("df_metric"), get("df_error_metric"), strict=True)
        ],
        "p (metric)": [_p(p, a) for p, a in zip(get("p_metric"), get("adj_p_metric"), strict=True)],
    }
    if budget is not None:
        out[f"F at epoch {budget}"] = [
            _f(*r) for r in zip(get("F_budget"), get("df_budget"), get("df_error_budget"), strict=True)
        ]
        out[f"p (epoch {budget})"] = [_p(p, a) for p, a in zip(get("p_budget"), get("adj_p_budget"), strict=True)]
    out["divergence score χ² (df)"] = [_chi2(c, d) for c, d in zip(get("chi2_div"), get("df_div"), strict=True)]
    out["p (divergence)"] = [_p(p, a) for p, a in zip(get("p_div"), get("adj_p_div"), strict=True)]
    return out


def _noise_text(error: str | float, pure: bool) -> str:
    if error == "seed noise" or not isinstance(error, str):
        return (
            "the spread between seeds of the same cell (pure error), with the seed as a block where every "
            "seed ran in several cells (common random numbers: what one seed does to every cell leaves the error)"
        )
    why = "one seed per cell leaves no pure seed noise" if pure else "a sparse design leaves the factors entangled"
    return f"the residual of the additive model ({why}; this makes the test conservative)"


def _factor_tests(
    trials: pd.DataFrame, history: pd.DataFrame | None, factors: Factors, metric: str, direction: str, pure: bool
) -> list[str]:
    budget, tests = factor_verdicts(trials, history, list(factors), pure)
    if tests.empty:
        return []
    _, best = best_levels(trials, history, factors, direction)
    importance = fanova_importance(trials, factors, direction)
    eta = tests["eta2_metric"] if "eta2_metric" in tests else pd.Series([math.nan] * len(tests))
    out = pd.DataFrame(
        {
            "rank": range(1, len(tests) + 1),
            "factor": tests["factor"],
            **_tests_columns(tests, budget),
            "partial η²": [DASH if math.isnan(e) else f"{e:.3f}" for e in eta],
            "matters": [f"**yes** ({w})" if m else "no" for m, w in zip(tests["matters"], tests["why"], strict=True)],
            "best level": [str(best.get(f, DASH)) for f in tests["factor"]],
            "fANOVA importance": [f"{importance[f]:.3f}" if f in importance else DASH for f in tests["factor"]],
        }
    )
    error = (
        tests["error_metric"].dropna().iloc[0]
        if "error_metric" in tests and tests["error_metric"].notna().any()
        else math.nan
    )
    at_budget = (
        f" At epoch {budget}, the largest epoch every trial reached, the same F-test scores every trial, "
        "pruned ones included: the pruner's stopped trials speak there, at the budget where they were observed."
        if budget is not None
        else ""
    )
    return [
        "## Which factors matter",
        "",
        "A factor matters when it changes the result **or whether training works at all**. Per factor: an "
        "F-test of its main effect on the final "
        f"`{metric}` over the finished trials (completed, or early-stopped at their best epoch; pruned trials "
        f"are censored and not scored here), in a linear model with every factor, against {_noise_text(error, pure)}."
        f"{at_budget} Beside it, Rao's score test of the factor in a logistic model of the odds that a trial "
        "diverged or failed, given the other factors (a pruned trial counts as trained; rates per level with exact "
        "Clopper-Pearson intervals in the tables below). The score test needs only the model without the factor, "
        "so it stays finite under complete separation (e.g. 6/9 vs 0/9), and it holds its level better than the "
        "likelihood ratio at small counts. All p-values of this table are one family, "
        "adjusted by Holm's method; `yes` means an adjusted p < 0.05, and says which test carried it. Partial η² "
        "is the metric effect size; rows are ranked by it. `best level` is the top of the factor's level table "
        "(least-squares means, never a level where half or more of the trials broke)"
        + (
            f", read at epoch {budget} where every trial is observed: the finished trials are the pruner's survivors"
            if budget is not None
            else ""
        )
        + ". Optuna's fANOVA importance (completed trials, a random "
        "forest) is a cross-check of the metric ranking.",
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
            "diverged or failed (95% CI)": [
                rate_text(k, n) for k, n in zip(stats["broke"], stats["trials"], strict=True)
            ],
            "Δ vs best": [fmt(v, metric, signed=True) for v in stats["delta"]],
            "Δ 95% CI": intervals(stats["delta_low"], stats["delta_high"], metric, signed=True),
            "pairs": [str(n) if n else "Welch" for n in stats["paired"]],
        }
    )
    out.loc[0, ["Δ vs best", "Δ 95% CI", "pairs"]] = DASH  # the best level itself
    return [f"### {factor}", "", table(out), ""]


def _interactions(
    trials: pd.DataFrame, history: pd.DataFrame | None, factors: Factors, metric: str, pure: bool
) -> list[str]:
    tests = pair_verdicts(trials, history, list(factors), pure)
    if tests.empty:
        return []
    budget, _ = budget_frame(trials, history)
    ok = scored(trials)
    lines = [
        "## Interactions",
        "",
        "For each pair of factors: the mean final `" + metric + "` of every combination (finished trials, n in "
        "brackets, then how many of its trials diverged or failed) and the tests of whether the pair's effect "
        "differs from the sum of the two main effects: an F-test on the metric (and at the common budget when "
        "trials were pruned) and a score test of the pair's term in the logistic model of divergence. "
        "The pairs' p-values are one family, Holm-adjusted. On the odds scale a pattern such as 'diverges only "
        "without a norm at a high lr' is fully explained by the two main effects, so its pair term may test "
        "at nothing: the broken counts in the table show the pattern itself. "
        "A flagged interaction means one factor's effect "
        "depends on the other's level: read its main effects with care.",
        "",
    ]
    columns = _tests_columns(tests, budget)
    for i, test in tests.iterrows():
        a, b = test["a"], test["b"]
        flag = f"**significant interaction** ({test['why']})" if test["matters"] else "no significant interaction"
        eta = test.get("eta2_metric", math.nan)
        parts = [f"{name} = {values[i]}" for name, values in columns.items() if values[i] != DASH]
        eta_text = "" if math.isnan(eta) else f"; partial η² = {eta:.3f}"
        lines += [
            f"### {a} × {b}",
            "",
            f"{flag}: {'; '.join(parts)}{eta_text}",
            "",
            table(_pivot(ok, trials, a, b, factors, metric)),
            "",
        ]
    return lines


def _pivot(ok: pd.DataFrame, trials: pd.DataFrame, a: str, b: str, factors: Factors, metric: str) -> pd.DataFrame:
    rows = []
    for level_a in factors[a]:
        row: dict[str, str] = {f"{a} \\ {b}": str(level_a)}
        for level_b in factors[b]:
            values = ok.loc[(ok[a] == level_a) & (ok[b] == level_b), "objective"]
            group = trials[(trials[a] == level_a) & (trials[b] == level_b)]
            broke = int(group["outcome"].isin(BROKE).sum())
            text = f"{fmt(values.mean(), metric)} ({len(values)})" if len(values) else DASH
            row[str(level_b)] = f"{text}, {broke}/{len(group)} broke" if broke else text
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
    lines += _factor_tests(trials, history, factors, metric, direction, pure)
    lines += [
        "## Factors",
        "",
        f"Each level pools every cell and seed it appears in. `n`, mean, std and the 95% CI are over the finished "
        f"trials at the final budget (completed, or early-stopped at their best epoch); pruned trials are censored: "
        "counted, not scored (see the pruning-aware comparison). `diverged or failed` is k of all the level's "
        "trials with its exact (Clopper-Pearson) 95% interval. Levels ranked by least-squares mean (the additive "
        "model averaged over the other factors' levels), except that a level whose "
        f"trials diverged or failed half the time or more is never ranked best. "
        f"Δ vs best is the level's mean `{metric}` minus "
        "the best level's, with a 95% confidence interval: paired over trials that share the other factors' "
        "levels and the seed (`pairs`), or Welch's when too few trials pair up.",
        "",
    ]
    for factor in factors:
        lines += _levels(trials, factors, factor, metric, direction)
    lines += _interactions(trials, history, factors, metric, pure)
    if history is not None:
        lines += _budget(trials, history, factors, metric, direction)
    return lines
