"""Does a factor decide whether training works at all? Divergence as an outcome of the factors.

A trial *broke* when it diverged (NaN/inf loss) or failed (an exception): it has no score, so the
metric analysis cannot see it, and dropping it would hide the factor that caused it. Here the
binary outcome broke / trained is modelled by logistic regression on the factors (every trial
with an outcome; a pruned trial counts as trained: it was finite when it was stopped, though it is
censored and might have diverged later).

- Per level: broken k of n with the exact Clopper-Pearson 95% interval.
- Per factor (type II): Rao's score statistic for adding the factor to the additive logit model of
  the other factors, with an exact (Monte Carlo) conditional p-value: the factor's labels are
  permuted within each combination of the other factors' levels (trials there are exchangeable
  when the factor does nothing), 1999 times with a fixed seed, so the same table gives the same p.
- Per pair a x b: the score test of adding the a x b cells to the additive model.

Why the score statistic rather than the likelihood ratio (LR): it needs only the fit of the smaller
model (which permutations of the factor leave unchanged), and with few events per level the LR's
chi-squared p is liberal. On null tables (54 trials, divergence rate 0.1-0.4 independent of the
factors) the LR's chi-squared p rejected 7.7% at the 5% level and the score's 6.5%; hence the
permutation p for main effects (`p_chi2` keeps the asymptotic one). In one-factor tables the score
statistic is exactly Pearson's chi-squared. Pairs use the score test's chi-squared p (no exact
permutation exists for an interaction). Complete separation
(a level where every trial broke, or none did, e.g. 6/9 vs 0/9) sends the maximum-likelihood
coefficients of the larger model to infinity, which the score test never fits; where the smaller
model is itself separated, iteratively reweighted least squares with fitted probabilities kept
inside [1e-12, 1 - 1e-12] converges to its finite limit (0/1 probabilities), and those trials carry
no information, as they should. The LR statistic is kept beside it (`lr` column) for reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ablations.report.distributions import beta_quantile, chi2_survival

BROKE = ("diverged", "failed")
EPS = 1e-12
TEST_COLUMNS = ["factor", "df", "chi2", "p", "lr", "p_chi2"]
PERMUTATIONS = 1999
PAIR_COLUMNS = ["a", "b", "df", "chi2", "p", "lr"]


def broke(trials: pd.DataFrame) -> np.ndarray:
    return trials["outcome"].isin(BROKE).to_numpy(float)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials (NaN when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = 0.0 if k == 0 else beta_quantile(tail, k, n - k + 1)
    high = 1.0 if k == n else beta_quantile(1 - tail, k + 1, n - k)
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


def logistic_fit(y: np.ndarray, x: np.ndarray, max_iter: int = 200) -> tuple[np.ndarray, float]:
    """Fitted probabilities and deviance (-2 log likelihood) of the logistic regression of y on x at
    its maximum (or, under separation, its limit). x may be rank deficient: the least-squares steps
    take the minimum-norm solution, which leaves the fitted probabilities unchanged."""
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
    return p, dev


def _test(y: np.ndarray, small: np.ndarray, big: np.ndarray) -> tuple[int, float, float, float]:
    """df, score statistic, its chi-squared p-value and the LR statistic, for `small` nested in `big`."""
    df = int(np.linalg.matrix_rank(big)) - int(np.linalg.matrix_rank(small))
    if df <= 0:
        return 0, math.nan, math.nan, math.nan
    p, dev_small = logistic_fit(y, small)
    w = p * (1 - p)
    score = big.T @ (y - p)  # zero in the directions of `small`, which fitted them
    information = big.T @ (w[:, None] * big)
    chi2 = max(float(score @ np.linalg.pinv(information, rcond=1e-10, hermitian=True) @ score), 0.0)
    lr = max(dev_small - logistic_fit(y, big)[1], 0.0)
    return df, chi2, chi2_survival(chi2, df), lr


def _usable(trials: pd.DataFrame, factors: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    frame = trials[trials["outcome"].notna()]
    return frame, [f for f in factors if frame[f].astype(str).nunique() > 1]


def divergence_tests(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per varying factor: the score test of its main effect on the odds of breaking. Empty
    when no trial broke or every trial did (nothing to explain)."""
    frame, varying = _usable(trials, factors)
    y = broke(frame)
    rows = []
    if varying and 0 < y.sum() < len(y):
        full = _design(frame, [[f] for f in varying])
        for factor in varying:
            others = [f for f in varying if f != factor]
            small = _design(frame, [[f] for f in others])
            df, chi2, p_chi2, lr = _test(y, small, full)
            codes = pd.factorize(frame[factor].astype(str), sort=True)[0]
            strata = _strata(frame, others)
            p = _permutation_p(y, small, codes, strata) if df > 0 else math.nan
            rows.append([factor, df, chi2, p, lr, p_chi2])
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def _strata(frame: pd.DataFrame, others: Sequence[str]) -> np.ndarray:
    if not others:
        return np.zeros(len(frame), int)
    joint = np.stack([pd.factorize(frame[f].astype(str), sort=True)[0] for f in others], axis=1)
    return np.unique(joint, axis=0, return_inverse=True)[1].ravel()


def _permutation_p(y: np.ndarray, small: np.ndarray, codes: np.ndarray, strata: np.ndarray) -> float:
    """Share of within-strata permutations of the factor's labels whose score statistic reaches the
    observed one (the observed labelling counted once: never 0)."""
    rng = np.random.default_rng(0)
    n, k = len(y), int(codes.max()) + 1
    labels = np.empty((PERMUTATIONS + 1, n), int)
    labels[0] = codes  # the observed labelling, scored by the same arithmetic as the permuted ones
    for stratum in np.unique(strata):
        where = np.flatnonzero(strata == stratum)
        labels[1:, where] = rng.permuted(np.broadcast_to(codes[where], (PERMUTATIONS, len(where))), axis=1)
    p, _ = logistic_fit(y, small)
    w, residual = p * (1 - p), y - p
    onehot = (labels[:, :, None] == np.arange(k)).astype(float)  # permutation x trial x level
    score = np.einsum("bnk,n->bk", onehot, residual)
    info_aa = np.einsum("bnk,n->bk", onehot, w)[:, :, None] * np.eye(k)
    info_a0 = np.einsum("bnk,n,np->bkp", onehot, w, small)
    inverse_00 = np.linalg.pinv(small.T @ (w[:, None] * small), rcond=1e-10, hermitian=True)
    schur = info_aa - info_a0 @ inverse_00 @ info_a0.transpose(0, 2, 1)
    stats_b = np.einsum("bk,bkm,bm->b", score, np.linalg.pinv(schur, rcond=1e-10, hermitian=True), score)
    observed = stats_b[0]
    return float(np.sum(stats_b >= observed * (1 - 1e-7) - 1e-9) / (PERMUTATIONS + 1))


def divergence_interactions(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per pair with an estimable interaction: the score test of the a x b cells beyond the
    additive logit model."""
    frame, varying = _usable(trials, factors)
    y = broke(frame)
    rows = []
    if len(varying) >= 2 and 0 < y.sum() < len(y):
        mains = [[f] for f in varying]
        additive = _design(frame, mains)
        for i, a in enumerate(varying):
            for b in varying[i + 1 :]:
                df, chi2, p, lr = _test(y, additive, _design(frame, [*mains, [a, b]]))
                if df > 0:
                    rows.append([a, b, df, chi2, p, lr])
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
