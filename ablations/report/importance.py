"""Optuna's fANOVA importance, as a cross-check of the F-tests.

Computed on an in-memory study rebuilt from the trials table (completed trials, factors as
categorical params), so the report stays a pure function of the table; the evaluator's forest is
seeded, so the same table gives the same numbers.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
import pandas as pd

MIN_TRIALS = 4  # fewer completed trials leave the forest nothing to split


def fanova_importance(trials: pd.DataFrame, factors: dict[str, list[Any]], direction: str) -> dict[str, float]:
    """Factor name -> normalised importance; empty when it cannot be computed."""
    done = trials[(trials["outcome"] == "complete") & trials["objective"].notna()]
    varying = {f: levels for f, levels in factors.items() if done[f].astype(str).nunique() > 1}
    if len(done) < MIN_TRIALS or not varying:
        return {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a scratch study: no "study created" line
    try:
        study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in done.iterrows():
        params = {f: row[f] for f in varying}
        # Levels read back from trials.csv may be strings of what the space holds (e.g. "0.1").
        distributions = {
            f: optuna.distributions.CategoricalDistribution(_choices(levels, params[f]))
            for f, levels in varying.items()
        }
        params = {f: _match(levels, params[f]) for f, levels in varying.items()}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(row["objective"]))
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature notices are not the reader's concern
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {f: float(v) for f, v in scores.items() if not math.isnan(v)}


def _match(levels: list[Any], value: Any) -> Any:
    return next((level for level in levels if str(level) == str(value)), value)


def _choices(levels: list[Any], value: Any) -> tuple[Any, ...]:
    matched = _match(levels, value)
    return tuple(levels) if matched in levels else (*levels, matched)
