"""One trial: build data and model for a (cell, seed), train, and report every epoch to the
pruner, the tracker and the study storage. The outcome is told to Optuna here."""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from ablations.config import ProgramSpaceConfig, SpaceConfig, short_key
from ablations.diagnostics import Diagnostics
from ablations.grid import Task
from ablations.plugins.loops import Training, diverged, start_training
from ablations.recipe import EarlyStopping
from ablations.tracking import Tracker


@dataclass(frozen=True)
class TrialResult:
    task: Task
    outcome: str  # complete | pruned | diverged | failed
    epochs_run: int
    objective: float | None
    test_acc: float | None = None
    error: str | None = None


def tracker_config(space: SpaceConfig, task: Task, study_name: str) -> dict[str, Any]:
    """The fully resolved config, plus each factor as a top-level key so W&B's parallel
    coordinates and parameter-importance panels see the factors directly."""
    config: dict[str, Any] = space.trial_config(task.cell.values).model_dump()
    config.update({short_key(k): v for k, v in task.cell.values.items()})
    config.update(seed=task.seed, study=study_name, cell_id=task.cell.id)
    return config


def suggest_factors(trial: optuna.Trial, space: SpaceConfig, task: Task) -> None:
    """Record the factors as Optuna params (fixed by the queue), for Optuna's own tools."""
    for key, levels in space.factors.items():
        try:
            value = trial.suggest_categorical(short_key(key), levels)
        except ValueError:
            # `--extend` added levels, and Optuna keeps one set of choices per param name per
            # study; the cell's levels are in the trial's user attributes, which the report reads.
            continue
        assert value == task.cell.values[key], "queued trial params disagree with its cell"


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    task: Task,
    space: SpaceConfig,
    tracker: Tracker,
    device: torch.device,
) -> TrialResult:
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    probe: Diagnostics | None = None
    stopper: EarlyStopping | None = None
    outcome, error, test_acc = "complete", None, None
    metric = space.objective.metric
    tracker.start(name=task.label, group=study.study_name, config=tracker_config(space, task, study.study_name))
    try:
        suggest_factors(trial, space, task)
        config = space.trial_config(task.cell.values)
        torch.manual_seed(task.seed)
        if isinstance(space, ProgramSpaceConfig):
            training = _program_training(study, trial, task, space, config, device)
        else:
            training = start_training(space, config, task.seed, device)
        probe = training.probe
        if probe:
            tracker.log(probe.at_init(), step=0)
        rule = None if isinstance(space, ProgramSpaceConfig) else config.train.early_stopping  # a script stops itself
        stopper, best_weights = _early_stopping(space, rule), None
        # History and diagnostics reach the storage once, when the trial ends (see _finish): a
        # trial killed before that is re-run from scratch. Each epoch writes one number, the
        # objective (`trial.report`), for the pruner and for whoever watches a running trial.
        # Leaving the `with` closes the loop (pruned, diverged, stopped early).
        with closing(training.records) as records:
            for record in records:
                history.append(record)
                # Diagnostics go to the tracker and their own attribute, not the compact history.
                per_layer = probe.after_epoch() if probe else {}
                tracker.log(record | per_layer, step=int(record["epoch"]))
                if diverged(record, metric):
                    outcome = "diverged"
                    break
                trial.report(record[metric], int(record["epoch"]))
                if stopper is not None:  # the trial's own rule; it keeps (and is tested at) its best epoch
                    stop = stopper.update(record[metric])
                    if training.model is not None and stopper.improved:
                        best_weights = _state_copy(training.model)
                    if stop:
                        outcome = "early_stopped"
                        if training.model is not None and best_weights is not None:
                            training.model.load_state_dict(best_weights)
                        break
                if trial.should_prune():
                    outcome = "pruned"
                    break
        if outcome in ("complete", "early_stopped"):
            test_acc = training.test_acc(history[-1] if history else None)
    except KeyboardInterrupt:
        _save_diagnostics(trial, probe)
        interrupted = "interrupted; the next run re-runs this cell"
        _finish(study, trial, tracker, space, history, "failed", None, interrupted, started)
        raise
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded and the sweep goes on
        outcome, error = "failed", f"{type(err).__name__}: {err}"
    _save_diagnostics(trial, probe)
    best_epoch = stopper.best_epoch if stopper is not None and outcome == "early_stopped" else None
    objective = _finish(study, trial, tracker, space, history, outcome, test_acc, error, started, best_epoch)
    return TrialResult(task, outcome, len(history), objective, test_acc, error)


def _program_training(
    study: optuna.Study, trial: optuna.Trial, task: Task, space: ProgramSpaceConfig, config: Any, device: torch.device
) -> Training:
    """Script mode (ablations.program): the space's program builds and trains; each of its reports
    is a record. Closing the records tells the script to stop (pruned, diverged, stopped early)."""
    from ablations.program import program_records

    given = config.model_dump()
    given.update(seed=task.seed, trial_id=trial.number, study=study.study_name)
    log_stem = Path("runs") / "logs" / study.study_name / f"trial-{trial.number}"
    trial.set_user_attr("program_log", str(log_stem))
    threads, grace = torch.get_num_threads(), space.program_grace_seconds
    records = program_records(space.program, given, space.objective.metric, log_stem, str(device), threads, grace)
    return Training(records, test_acc=lambda last: (last or {}).get("test_acc"))


def _early_stopping(space: SpaceConfig, rule: Any) -> EarlyStopping | None:
    return None if rule is None else EarlyStopping(rule.patience, rule.min_delta, space.objective.direction)


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save_diagnostics(trial: optuna.Trial, probe: Diagnostics | None) -> None:
    if probe is not None:
        trial.set_user_attr("diagnostics", probe.record())


def _finish(
    study: optuna.Study,
    trial: optuna.Trial,
    tracker: Tracker,
    space: SpaceConfig,
    history: list[dict[str, float]],
    outcome: str,
    test_acc: float | None,
    error: str | None,
    started: float,
    best_epoch: int | None = None,
) -> float | None:
    metric = space.objective.metric
    finite = [h[metric] for h in history if math.isfinite(h.get(metric, math.nan))]
    objective = finite[-1] if finite and outcome != "failed" else None
    summary: dict[str, Any] = {"outcome": outcome, "epochs_run": len(history)}
    if best_epoch is not None:  # early stopped: scored at its best epoch
        objective = history[best_epoch - 1][metric]
        summary["best_epoch"] = best_epoch
    if objective is not None:
        summary["objective"] = objective
    if test_acc is not None:
        summary["test_acc"] = test_acc
    if error:
        summary["error"] = error
    run_path = tracker.finish(summary)
    attrs = dict(summary, wall_time=time.perf_counter() - started, history=history)
    if run_path:
        attrs["wandb_run"] = run_path
    for name, value in attrs.items():
        trial.set_user_attr(name, value)
    if outcome in ("complete", "early_stopped"):
        study.tell(trial, objective)
    elif outcome in ("pruned", "diverged"):
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return objective
