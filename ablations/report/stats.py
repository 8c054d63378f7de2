"""Statistics over the tidy trials table: cell leaderboard and per-factor level comparisons.

A trial is scored at the final budget when it finished: completed (its last epoch) or stopped by its
own early-stopping rule (its best epoch). A pruned trial is censored at the epoch it stopped: it is
counted, never averaged with finished trials (the pruning-aware comparison scores every trial at a
common epoch instead). Diverged and failed trials are counted, and the divergence analysis
(`divergence.py`) tests them; a level or cell where half or more of the trials broke is never ranked best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablations.report.distributions import t_quantile

SCORED = ("complete", "early_stopped")
BROKE = ("diverged", "failed")
LEVEL_COLUMNS = [
    "level", "n", "mean", "adj_mean", "std", "ci_low", "ci_high", "best",
    "trials", "broke", "pruned", "diverged", "failed",
]  # fmt: skip


def scored(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["outcome"].isin(SCORED) & trials["objective"].notna()]


def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std and the t-based confidence interval of the mean (NaN where undefined)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = t_quantile((1 + confidence) / 2, len(x) - 1) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def diff_ci(a: Any, b: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a Welch t interval: groups may differ in size and spread."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile((1 + confidence) / 2, dof) * se
    return diff, diff - half, diff + half


def pair_keys(frame: pd.DataFrame, others: Sequence[str]) -> np.ndarray:
    """An integer per row naming its other factors' levels and its seed: rows of two levels with the
    same key differ only in the compared factor."""
    keys = [*others, "seed"]
    codes = np.stack([pd.factorize(frame[k].astype(str))[0] for k in keys], axis=1)
    return np.unique(codes, axis=0, return_inverse=True)[1].ravel() if len(frame) else np.zeros(0, int)


def paired_diff(
    a: np.ndarray, keys_a: np.ndarray, b: np.ndarray, keys_b: np.ndarray
) -> tuple[float, float, float, int]:
    """mean(a) - mean(b) over the pairs with equal keys, with a paired t interval.

    Seeds are shared across cells (common random numbers), so a matched pair differs only in the
    compared factor. Returns (diff, low, high, pairs); no pairs when a key repeats within a level
    (the keys leave out a factor that varies, so a partner would not be unique).
    """
    if len(np.unique(keys_a)) < len(keys_a) or len(np.unique(keys_b)) < len(keys_b):
        return math.nan, math.nan, math.nan, 0
    _, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    mean, _, low, high = mean_ci(a[ia] - b[ib])
    return mean, low, high, len(ia)


OUTCOME_ORDER = ("complete", "early_stopped", "pruned", "diverged", "failed")


def _outcomes(group: pd.DataFrame) -> str:
    counts = group["outcome"].value_counts()
    return ", ".join(f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOME_ORDER if o in counts)


def _rank(frame: pd.DataFrame, column: str, direction: str, tier: str | None = None) -> pd.DataFrame:
    # Best first by direction within each tier (lower tiers first); rows without a score go last.
    keys = [tier, column] if tier else [column]
    ascending = [True, direction == "minimize"] if tier else direction == "minimize"
    return frame.sort_values(keys, ascending=ascending, na_position="last", kind="stable")


def mostly_broke(broken: int, total: int) -> bool:
    """Half or more of the trials diverged or failed: such a level or cell is never called best."""
    return total > 0 and broken >= total / 2


def _stopped_value(group: pd.DataFrame, direction: str) -> tuple[float, int]:
    """Mean objective of pruned trials at the epoch they stopped, and that epoch (the latest one)."""
    pruned = group[(group["outcome"] == "pruned") & group["objective"].notna()]
    if pruned.empty:
        return math.nan, 0
    return float(pruned["objective"].mean()), int(pruned["epochs_run"].max())


def leaderboard(trials: pd.DataFrame, direction: str, epochs: int | None = None) -> pd.DataFrame:
    """One row per cell, ranked in tiers: cells whose seeds all finished, ranked by their mean at the
    final budget; then cells with some seeds pruned (the mean of their survivors, flattering); then
    cells with some diverged or failed seeds; then cells that were only pruned
    (scored at the epoch they stopped, `budget` says which); then cells that only broke."""
    rows = []
    for cell, group in trials.groupby("cell", sort=False):
        values = scored(group)["objective"]
        mean, std, _, _ = mean_ci(values)
        best = values.max() if direction == "maximize" else values.min()
        broken = int(group["outcome"].isin(BROKE).sum())
        budget = f"final (ep {epochs})" if epochs else "final"
        if len(values) == 0:
            mean, last = _stopped_value(group, direction)
            budget = f"ep {last} (pruned)" if last else "—"
        pruned = int((group["outcome"] == "pruned").sum())
        # Every seed finished: an unbiased mean. Some seeds pruned: the mean of the survivors.
        tier = 0 if broken == 0 and pruned == 0 else 0.5 if broken == 0 else 1
        if pruned and len(values):
            budget += f", {len(values)} survivor(s) of {len(values) + pruned}"
        if len(values) == 0:
            tier = 2 if not math.isnan(mean) else 3
        rows.append(
            {
                "cell": cell,
                "mean": mean,
                "std": std,
                "n": len(values),
                "best": best,
                "budget": budget,
                "test_acc": group.loc[group["outcome"].isin(SCORED), "test_acc"].mean(),
                "broke": broken,
                "trials": len(group),
                "outcomes": _outcomes(group),
                "tier": tier + (broken / max(len(group), 1) if tier == 1 else 0),
            }
        )
    columns = ["cell", "mean", "std", "n", "best", "budget", "test_acc", "broke", "trials", "outcomes", "tier"]
    board = _rank(pd.DataFrame(rows, columns=columns), "mean", direction, tier="tier")
    return board.reset_index(drop=True)


def adjusted_means(ok: pd.DataFrame, factor: str, others: Sequence[str]) -> dict[str, float]:
    """Each level's mean as the additive model of all factors predicts it, averaged over the observed
    levels of the others (least-squares means). On a complete balanced grid this is the plain mean;
    when pruning or divergence removed cells, it compares levels within the cells that remain
    instead of rewarding the level whose weak cells were removed (survivorship)."""
    terms = [factor, *(f for f in others if ok[f].astype(str).nunique() > 1)]
    if ok.empty:
        return {}
    codes = [pd.factorize(ok[f].astype(str), sort=True) for f in terms]
    blocks = [np.eye(len(names))[code] for code, names in codes]
    x = np.column_stack([np.ones(len(ok)), *blocks])
    beta = np.linalg.lstsq(x, ok["objective"].to_numpy(float), rcond=None)[0]
    offsets = np.cumsum([1, *(len(names) for _, names in codes)])
    rest = beta[0] + sum(beta[offsets[i] : offsets[i + 1]].mean() for i in range(1, len(terms)))
    return {name: float(rest + beta[offsets[0] + j]) for j, name in enumerate(codes[0][1])}


def level_table(
    trials: pd.DataFrame, factor: str, levels: list[Any], direction: str, others: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per level of `factor`: its scored trials' statistics and its difference to the best level.

    Each level pools every cell and seed it appears in. Levels are ranked by their adjusted mean
    (`adjusted_means`), and levels where half or more of the trials broke (diverged or failed) rank below the
    others. `delta` is the level's mean minus the best level's mean. Its 95% interval is paired
    (`paired` > 0: the number of trials matched on the `others` factors and the seed) when at least
    half of the smaller level finds a partner, which removes the other factors' and the data order's
    variation; otherwise a Welch interval of the pooled means (e.g. a random fraction of a grid,
    where few cells differ in one factor only).
    """
    seen = [v for v in trials[factor].dropna().drop_duplicates() if v not in levels]
    ok = scored(trials)
    keys = pair_keys(ok, others)
    adjusted = adjusted_means(ok, factor, others)
    rows = []
    for level in [*levels, *seen]:
        group = trials[trials[factor] == level]
        mask = (ok[factor] == level).to_numpy()
        values = ok["objective"].to_numpy()[mask]
        mean, std, low, high = mean_ci(values)
        best = (values.max() if direction == "maximize" else values.min()) if len(values) else math.nan
        rows.append(
            {
                "level": level,
                "n": len(values),
                "mean": mean,
                "adj_mean": adjusted.get(str(level), math.nan),
                "std": std,
                "ci_low": low,
                "ci_high": high,
                "best": best,
                "trials": len(group),
                "broke": int(group["outcome"].isin(BROKE).sum()),
                "pruned": int((group["outcome"] == "pruned").sum()),
                "diverged": int((group["outcome"] == "diverged").sum()),
                "failed": int((group["outcome"] == "failed").sum()),
                "values": values,
                "keys": keys[mask],
            }
        )
    table = pd.DataFrame(rows, columns=[*LEVEL_COLUMNS, "values", "keys"])
    # A level that broke half the time or more is never the best, whatever its survivors scored.
    table["mostly_broke"] = [mostly_broke(b, t) for b, t in zip(table["broke"], table["trials"], strict=True)]
    table = _rank(table, "adj_mean", direction, tier="mostly_broke").reset_index(drop=True)
    top = table["values"].iloc[0] if len(table) else np.array([])
    top_keys = table["keys"].iloc[0] if len(table) else np.array([])
    deltas, paired = [], []
    for values, level_keys in zip(table["values"], table["keys"], strict=True):
        diff, low, high, n = paired_diff(values, level_keys, top, top_keys)
        if n < 2 or n < min(len(values), len(top)) / 2:
            (diff, low, high), n = diff_ci(values, top), 0
        deltas.append((diff, low, high))
        paired.append(n)
    table["delta"] = [d[0] for d in deltas]
    table["delta_low"] = [d[1] for d in deltas]
    table["delta_high"] = [d[2] for d in deltas]
    table["paired"] = paired
    return table.drop(columns=["values", "keys", "mostly_broke"])
