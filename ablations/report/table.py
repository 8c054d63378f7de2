"""The study's trials as tidy pandas tables: the one input every other part of the report reads.

`trials_table` has one row per cell x seed key; `history_table` one row per trial x epoch. Both
read only what the runner stores in the study's and trials' user attributes.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd

from ablations.config import short_key

FINISHED = ("complete", "pruned", "diverged", "early_stopped")
OUTCOMES = (*FINISHED, "failed")
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def space_of(study: optuna.Study) -> dict[str, Any]:
    """The stored search space, with the defaults a report needs when parts are missing."""
    space = dict(study.user_attrs.get("space") or {})
    space.setdefault("name", study.study_name)
    space["study"] = study.study_name  # may differ from the space's name (`--study NEW_NAME`)
    space.setdefault("factors", {})
    objective = {"metric": "val_acc", **(space.get("objective") or {})}
    objective.setdefault("direction", "minimize" if objective["metric"].endswith("loss") else "maximize")
    space["objective"] = objective
    return space


def factor_names(space: dict[str, Any]) -> list[str]:
    """Display names of the factors, in the order the search space lists them."""
    return [short_key(key) for key in space["factors"]]


def cell_label(cell: dict[str, Any], space: dict[str, Any]) -> str:
    return " ".join(f"{short_key(key)}={cell.get(key)}" for key in space["factors"]) or "(base)"


def outcome_of(trial: optuna.trial.FrozenTrial) -> str | None:
    """The recorded outcome; a trial failed by Optuna itself (a dead worker) has none, but failed."""
    state = optuna.trial.TrialState
    default = {state.COMPLETE: "complete", state.PRUNED: "pruned", state.FAIL: "failed"}.get(trial.state)
    outcome = trial.user_attrs.get("outcome", default)
    return outcome if outcome in OUTCOMES else None


def latest_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """One trial per key: a retried key counts once, by its finished attempt, else its latest failure."""
    chosen: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        outcome = outcome_of(trial)
        if outcome is None:
            continue  # still running or waiting: no result yet
        key = trial.user_attrs.get("key", f"trial-{trial.number}")
        previous = chosen.get(key)
        if previous is None or outcome in FINISHED or outcome_of(previous) == "failed":
            chosen[key] = trial
    return sorted(chosen.values(), key=lambda t: t.number)


def pending_count(study: optuna.Study) -> int:
    """Keys with a running or waiting attempt and no recorded outcome yet."""
    done = {t.user_attrs.get("key") for t in latest_trials(study)}
    active = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return len({t.user_attrs.get("key", t.number) for t in study.get_trials(states=active)} - done)


def _finite(x: Any) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _trial_row(trial: optuna.trial.FrozenTrial, space: dict[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    cell = attrs.get("cell") or {}
    history = attrs.get("history") or []
    last = history[-1] if history else {}
    steps = sorted(trial.intermediate_values)
    reported = [_finite(trial.intermediate_values[s]) for s in steps]
    # A pruned or diverged trial has no final value: its score is the last objective it reported.
    objective = trial.value
    if objective is None and steps:
        objective = trial.intermediate_values[steps[-1]]
    finite = [v for v in reported if not math.isnan(v)]
    best = max if space["objective"]["direction"] == "maximize" else min
    row = {
        "trial_number": trial.number,
        "key": attrs.get("key", f"trial-{trial.number}"),
        "cell_id": attrs.get("cell_id", ""),
        "cell": cell_label(cell, space),
        **{short_key(k): cell.get(k) for k in space["factors"]},
        "seed": attrs.get("seed"),
        "outcome": outcome_of(trial),
        "epochs_run": attrs.get("epochs_run", len(history)),
        "objective": _finite(objective),
        "best_objective": best(finite) if finite else math.nan,
        **{m: _finite(last.get(m)) for m in METRICS},
        "test_acc": _finite(attrs.get("test_acc")),
        "wall_time": _finite(attrs.get("wall_time")),
        "wandb_run": attrs.get("wandb_run"),
        "error": attrs.get("error"),
    }
    return row


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per key, with the factor levels as columns. Non-finite metrics are NaN."""
    space = space_of(study)
    rows = [_trial_row(t, space) for t in latest_trials(study)]
    columns = [
        "trial_number", "key", "cell_id", "cell", *factor_names(space), "seed", "outcome", "epochs_run",
        "objective", "best_objective", *METRICS, "test_acc", "wall_time", "wandb_run", "error",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    # Text columns as strings with NaN for missing, as they read back from trials.csv.
    return table.astype({"wandb_run": "str", "error": "str"})


def history_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial x epoch; `objective` is the objective metric at that epoch."""
    space = space_of(study)
    metric = space["objective"]["metric"]
    rows = []
    for trial in latest_trials(study):
        attrs = trial.user_attrs
        cell = attrs.get("cell") or {}
        for record in attrs.get("history") or []:
            rows.append(
                {
                    "trial_number": trial.number,
                    "key": attrs.get("key", f"trial-{trial.number}"),
                    "cell": cell_label(cell, space),
                    **{short_key(k): cell.get(k) for k in space["factors"]},
                    "seed": attrs.get("seed"),
                    "outcome": outcome_of(trial),
                    "epoch": record.get("epoch"),
                    **{m: _finite(record.get(m)) for m in METRICS},
                    "seconds": _finite(record.get("seconds")),
                    "objective": _finite(record.get(metric)),
                }
            )
    columns = [
        "trial_number", "key", "cell", *factor_names(space), "seed", "outcome", "epoch", *METRICS,
        "seconds", "objective",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def diagnostics_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial that stored per-layer diagnostics (trial user attr `diagnostics`), with its
    factors and seed; the `diagnostics` column holds the stored object as it is, for the figures
    of the factor catalog to read. Empty (same columns) when no trial stored any."""
    space = space_of(study)
    rows = []
    for trial in latest_trials(study):
        attrs = trial.user_attrs
        if attrs.get("diagnostics") is None:
            continue
        cell = attrs.get("cell") or {}
        rows.append(
            {
                "key": attrs.get("key", f"trial-{trial.number}"),
                "cell": cell_label(cell, space),
                **{short_key(k): cell.get(k) for k in space["factors"]},
                "seed": attrs.get("seed"),
                "outcome": outcome_of(trial),
                "diagnostics": attrs["diagnostics"],
            }
        )
    return pd.DataFrame(rows, columns=["key", "cell", *factor_names(space), "seed", "outcome", "diagnostics"])
