"""Does a factor decide whether training works at all? Divergence as an outcome of the factors.

A trial *broke* when it diverged (NaN/inf loss) or failed (an exception): it has no score, so the
metric analysis cannot see it, and dropping it would hide the factor that caused it. Here the
binary outcome broke / trained is modelled by logistic regression on the factors (every trial
with an outcome; a pruned trial counts as trained: it was finite when it was stopped).

- Per level: broken k of n with the exact Clopper-Pearson 95% interval.
- Per factor: a likelihood-ratio test, type II: the deviance of the additive logit model without
  the factor minus that of the additive model (chi-squared, df = the difference in rank).
- Per pair a x b: the deviance of the additive model minus that of the additive model plus the
  a x b cells.

Complete separation (a level where every trial broke, or none did, e.g. 6/9 vs 0/9) sends the
maximum-likelihood coefficients to infinity, but the deviance has a finite limit: iteratively
reweighted least squares with fitted probabilities kept inside [1e-12, 1 - 1e-12] converges to
it, so the LR statistic stays finite and well defined (a Wald test would not be).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

BROKE = ("diverged", "failed")
EPS = 1e-12
TEST_COLUMNS = ["factor", "df", "chi2", "p"]
PAIR_COLUMNS = ["a", "b", "df", "chi2", "p"]


def broke(trials: pd.DataFrame) -> np.ndarray:
    return trials["outcome"].isin(BROKE).to_numpy(float)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials (NaN when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def rate_text(k: int, n: int) -> str:
    """'6/9 [0.30, 0.93]': broken of all trials, with the exact 95% interval of the rate."""
    if n == 0:
        return "—"
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} [{low:.2f}, {high:.2f}]"


def _onehot(frame: pd.DataFrame, term: Sequence[str]) -> np.ndarray:
    joint = np.stack([pd.factorize(frame[f].astype(str), sort=True)[0] for f in term], axis=1)
    inverse = np.unique(joint, axis=0, return_inverse=True)[1].ravel()
    return np.eye(inverse.max() + 1)[inverse]


def _design(frame: pd.DataFrame, terms: Sequence[Sequence[str]]) -> np.ndarray:
    return np.column_stack([np.ones(len(frame)), *(_onehot(frame, t) for t in terms)])


def deviance(y: np.ndarray, x: np.ndarray, max_iter: int = 200) -> float:
    """Deviance (-2 log likelihood) of the logistic regression of y on x at its maximum (or, under
    separation, its limit). x may be rank deficient: the least-squares steps take the minimum-norm
    solution, which leaves the fitted probabilities, and so the deviance, unchanged."""
    beta = np.zeros(x.shape[1])
    previous = math.inf
    for _ in range(max_iter):
        eta = x @ beta
        p = np.clip(1 / (1 + np.exp(-eta)), EPS, 1 - EPS)
        dev = float(-2 * (y * np.log(p) + (1 - y) * np.log(1 - p)).sum())
        if abs(previous - dev) < 1e-10 * (1 + dev):
            break
        previous = dev
        w = p * (1 - p)
        z = eta + (y - p) / w
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(x * sw[:, None], z * sw, rcond=None)[0]
    return dev


def _lr(y: np.ndarray, small: np.ndarray, big: np.ndarray) -> tuple[int, float, float]:
    df = int(np.linalg.matrix_rank(big)) - int(np.linalg.matrix_rank(small))
    if df <= 0:
        return 0, math.nan, math.nan
    chi2 = max(deviance(y, small) - deviance(y, big), 0.0)
    return df, chi2, float(stats.chi2.sf(chi2, df))


def _usable(trials: pd.DataFrame, factors: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    frame = trials[trials["outcome"].notna()]
    return frame, [f for f in factors if frame[f].astype(str).nunique() > 1]


def divergence_tests(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per varying factor: the LR test of its main effect on the odds of breaking. Empty
    when no trial broke or every trial did (nothing to explain)."""
    frame, varying = _usable(trials, factors)
    y = broke(frame)
    rows = []
    if varying and 0 < y.sum() < len(y):
        full = _design(frame, [[f] for f in varying])
        for factor in varying:
            small = _design(frame, [[f] for f in varying if f != factor])
            rows.append([factor, *_lr(y, small, full)])
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def divergence_interactions(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per pair with an estimable interaction: the LR test of the a x b cells beyond the
    additive logit model."""
    frame, varying = _usable(trials, factors)
    y = broke(frame)
    rows = []
    if len(varying) >= 2 and 0 < y.sum() < len(y):
        mains = [[f] for f in varying]
        additive = _design(frame, mains)
        for i, a in enumerate(varying):
            for b in varying[i + 1 :]:
                df, chi2, p = _lr(y, additive, _design(frame, [*mains, [a, b]]))
                if df > 0:
                    rows.append([a, b, df, chi2, p])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error); NaN p-values stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
