"""Does a factor (or a pair of factors) matter beyond seed noise? F-tests on nested linear models.

The error term is the pure seed noise: the residual of the cell-means model (every cell its own
mean), so a factor is called significant only when it moves the objective by more than re-running
the same cell with another seed does. A main effect is tested by dropping it from the additive model
(type II); an interaction a x b by adding the a x b cells to the additive model. Both differences
are projections inside the cell-means space, so the test stays exact with missing trials
(pruned/diverged holes), provided the remaining terms describe the means. With one seed per cell
there is no pure error; the residual of the additive model (plus the pair, for interactions)
stands in, which also absorbs any other interaction and so only makes the tests conservative.
The same residual is used on request (`pure_error=False`) for a sparse design such as a random
fraction of the grid: there the factors are not orthogonal, so an interaction left out of the model
leaks into the main effects, and testing against pure seed noise would call that leak significant.

Seeds as blocks: every cell runs the same seeds (0, 1, 2, ...), and a seed fixes the data order
and the random draws of every cell alike (common random numbers). When each seed appears in more
than one cell, the seed enters every model as an additive block (a randomized complete block
design): variation shared by all cells run with one seed leaves the error term, at the price of
(seeds - 1) error degrees of freedom. The factor tests stay exact: the block is in both nested models.

Effect size: partial eta squared, SS_effect / (SS_effect + SS_error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ablations.report.distributions import f_survival

TEST_COLUMNS = ["factor", "levels", "df", "df_error", "F", "p", "eta2", "error"]
PAIR_COLUMNS = ["a", "b", "df", "df_error", "F", "p", "eta2", "error"]
ALPHA = 0.05


class _Model:
    """The factors of a table as integer codes, so the many nested fits below stay plain numpy."""

    def __init__(self, frame: pd.DataFrame, factors: Sequence[str]) -> None:
        self.y = frame["objective"].to_numpy(float)
        self.codes = {f: pd.factorize(frame[f].astype(str), sort=True)[0] for f in factors}
        self.block: list[list[str]] = []
        if "seed" in frame and _seed_blocks(frame, factors):
            self.codes["seed"] = pd.factorize(frame["seed"].astype(str), sort=True)[0]
            self.block = [["seed"]]

    def onehot(self, term: Sequence[str]) -> np.ndarray:
        """One-hot columns of a term (a factor, or the joint levels of several)."""
        joint = np.stack([self.codes[f] for f in term], axis=1)
        _, inverse = np.unique(joint, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        return np.eye(inverse.max() + 1)[inverse]

    def fit(self, terms: Sequence[Sequence[str]]) -> tuple[float, int]:
        """Residual sum of squares and rank of the linear model with an intercept and these terms."""
        x = np.column_stack([np.ones(len(self.y)), *(self.onehot(t) for t in [*terms, *self.block])])
        beta, *_ = np.linalg.lstsq(x, self.y, rcond=None)
        resid = self.y - x @ beta
        return float(resid @ resid), int(np.linalg.matrix_rank(x))

    def pure_error(self, factors: list[str]) -> tuple[float, int]:
        rss, rank = self.fit([factors] if factors else [])
        return rss, len(self.y) - rank


def _seed_blocks(frame: pd.DataFrame, factors: Sequence[str]) -> bool:
    """Seeds are blocks when there are several and each one ran in more than one cell."""
    if frame["seed"].nunique() < 2 or not factors:
        return False
    cells = frame[list(factors)].astype(str).agg("|".join, axis=1)
    return bool((cells.groupby(frame["seed"].to_numpy()).nunique() > 1).all())


def _usable(frame: pd.DataFrame, factors: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    frame = frame[frame["objective"].notna()]
    varying = [f for f in factors if frame[f].astype(str).nunique() > 1]
    return frame, varying


def _ftest(ss: float, df: int, rss_error: float, df_error: int) -> tuple[float, float, float]:
    if df <= 0 or df_error <= 0:
        return math.nan, math.nan, math.nan
    ss = max(ss, 0.0)  # round-off may leave a tiny negative difference
    eta2 = ss / (ss + rss_error) if ss + rss_error > 0 else math.nan
    if rss_error <= 0:
        return (math.inf, 0.0, eta2) if ss > 0 else (math.nan, math.nan, eta2)
    f = (ss / df) / (rss_error / df_error)
    return f, f_survival(f, df, df_error), eta2


def factor_tests(frame: pd.DataFrame, factors: Sequence[str], pure_error: bool = True) -> pd.DataFrame:
    """One row per factor with more than one observed level, ranked by effect size (largest first)."""
    frame, varying = _usable(frame, factors)
    rows = []
    if varying and len(frame) > 1:
        model = _Model(frame, varying)
        y = model.y
        rss_pe, df_pe = model.pure_error(varying)
        full_rss, full_rank = model.fit([[f] for f in varying])
        error = "seed noise"
        if df_pe <= 0 or not pure_error:  # see the module docstring
            rss_pe, df_pe, error = full_rss, len(y) - full_rank, "additive residual"
        for factor in varying:
            rss, rank = model.fit([[f] for f in varying if f != factor])
            f, p, eta2 = _ftest(rss - full_rss, full_rank - rank, rss_pe, df_pe)
            levels = frame[factor].astype(str).nunique()
            rows.append([factor, levels, full_rank - rank, df_pe, f, p, eta2, error])
    table = pd.DataFrame(rows, columns=TEST_COLUMNS)
    return table.sort_values("eta2", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def interaction_tests(frame: pd.DataFrame, factors: Sequence[str], pure_error: bool = True) -> pd.DataFrame:
    """One row per pair of varying factors whose interaction is estimable (crossed levels observed)."""
    frame, varying = _usable(frame, factors)
    rows = []
    if len(varying) >= 2:
        model = _Model(frame, varying)
        y = model.y
        rss_pe, df_pe = model.pure_error(varying)
        mains = [[f] for f in varying]
        add_rss, add_rank = model.fit(mains)
        for i, a in enumerate(varying):
            for b in varying[i + 1 :]:
                rss, rank = model.fit([*mains, [a, b]])
                if rank <= add_rank:
                    continue  # e.g. a one-at-a-time design: no cell changes a and b together
                error_rss, error_df, error = rss_pe, df_pe, "seed noise"
                if df_pe <= 0 or not pure_error:
                    error_rss, error_df, error = rss, len(y) - rank, "additive + pair residual"
                f, p, eta2 = _ftest(add_rss - rss, rank - add_rank, error_rss, error_df)
                rows.append([a, b, rank - add_rank, error_df, f, p, eta2, error])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def significant(p: float) -> bool:
    return not math.isnan(p) and p < ALPHA
