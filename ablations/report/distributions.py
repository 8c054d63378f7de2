"""The four distribution functions the report's statistics need, from scipy.special.

`import scipy.stats` costs about 0.8 s (it loads every distribution and test), more than the
report takes to compute; scipy.special holds the same functions (scipy.stats evaluates these
very ones) and loads in about 0.1 s. tests/test_report_stats.py checks each against scipy.stats.
"""

from __future__ import annotations

import math

from scipy import special


def t_quantile(q: float, df: float) -> float:
    """Quantile of Student's t with `df` degrees of freedom (scipy.stats.t.ppf)."""
    return float(special.stdtrit(df, q))


def f_survival(x: float, dfn: float, dfd: float) -> float:
    """P(F > x) for F(dfn, dfd) (scipy.stats.f.sf); 1 below the support."""
    return 1.0 if x < 0 else float(special.fdtrc(dfn, dfd, x))


def chi2_survival(x: float, df: float) -> float:
    """P(X > x) for chi-squared with `df` degrees of freedom (scipy.stats.chi2.sf); 1 below the support."""
    if df <= 0:
        return math.nan
    return 1.0 if x < 0 else float(special.chdtrc(df, x))


def beta_quantile(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b) (scipy.stats.beta.ppf)."""
    return float(special.betaincinv(a, b, q))
