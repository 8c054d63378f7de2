"""One trial: build data and model for a (cell, seed), train, and report every epoch to the
pruner, the tracker and the study storage. The outcome is told to Optuna here."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from ablations.config import ProgramSpaceConfig, SpaceConfig, short_key
from ablations.data import load_dataset
from ablations.diagnostics import Diagnostics, first_batch
from ablations.grid import Task
from ablations.models import build_model
from ablations.tracking import Tracker
from ablations.train import evaluate, fit


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
    if isinstance(space, ProgramSpaceConfig):  # script mode: the script builds and trains
        return run_program_trial(study, trial, task, space, tracker, device)
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    probe: Diagnostics | None = None
    outcome, error, test_acc = "complete", None, None
    tracker.start(name=task.label, group=study.study_name, config=tracker_config(space, task, study.study_name))
    try:
        suggest_factors(trial, space, task)
        config = space.trial_config(task.cell.values)
        torch.manual_seed(task.seed)
        data = load_dataset(config.data, device)
        batch_x, batch_y = first_batch(data.train)  # for LSUV and the diagnostics
        model = build_model(config.model, data.input_shape, data.num_classes, batch_x).to(device)
        probe = Diagnostics(model, batch_x, batch_y) if space.diagnostics else None
        if probe:
            tracker.log(probe.at_init(), step=0)
        # History and diagnostics reach the storage once, when the trial ends (see _finish): a
        # trial killed before that is re-run from scratch. Each epoch writes one number, for
        # whoever watches a running trial.
        for record in fit(model, data, config.train, task.seed):
            history.append(record.metrics())
            trial.set_user_attr("epochs_run", len(history))
            # Diagnostics go to the tracker and their own attribute, not the compact history.
            per_layer = probe.after_epoch() if probe else {}
            tracker.log(record.metrics() | per_layer, step=record.epoch)
            if record.diverged:
                outcome = "diverged"
                break
            trial.report(getattr(record, space.objective.metric), record.epoch)
            if trial.should_prune():
                outcome = "pruned"
                break
        if outcome == "complete":
            test_acc = evaluate(model, data.test, precision=config.train.precision)[1]
    except KeyboardInterrupt:
        _save_diagnostics(trial, probe)
        interrupted = "interrupted; the next run re-runs this cell"
        _finish(study, trial, tracker, space, history, "failed", None, interrupted, started)
        raise
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded and the sweep goes on
        outcome, error = "failed", f"{type(err).__name__}: {err}"
    _save_diagnostics(trial, probe)
    objective = _finish(study, trial, tracker, space, history, outcome, test_acc, error, started)
    return TrialResult(task, outcome, len(history), objective, test_acc, error)


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
) -> float | None:
    metric = space.objective.metric
    finite = [h[metric] for h in history if math.isfinite(h[metric])]
    objective = finite[-1] if finite and outcome != "failed" else None
    summary: dict[str, Any] = {"outcome": outcome, "epochs_run": len(history)}
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
    if outcome == "complete":
        study.tell(trial, objective)
    elif outcome in ("pruned", "diverged"):
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return objective


def run_program_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    task: Task,
    space: ProgramSpaceConfig,
    tracker: Tracker,
    device: torch.device,
) -> TrialResult:
    """Script mode (ablations.program): the space's program trains; each of its reports is a
    per-epoch record. Closing the records tells the script to stop (pruned or diverged)."""
    from ablations.program import program_records

    started = time.perf_counter()
    history: list[dict[str, float]] = []
    outcome, error, metric = "complete", None, space.objective.metric
    tracker.start(name=task.label, group=study.study_name, config=tracker_config(space, task, study.study_name))
    given = space.trial_config(task.cell.values).model_dump()
    given.update(seed=task.seed, trial_id=trial.number, study=study.study_name)
    log_stem = Path("runs") / "logs" / study.study_name / f"trial-{trial.number}"
    threads, grace = torch.get_num_threads(), space.program_grace_seconds
    records = program_records(space.program, given, metric, log_stem, str(device), threads, grace)
    try:
        suggest_factors(trial, space, task)
        trial.set_user_attr("program_log", str(log_stem))
        with contextlib.closing(records):
            for record in records:
                history.append(record)
                trial.set_user_attr("epochs_run", len(history))
                tracker.log(record, step=int(record["epoch"]))
                losses = [v for k, v in record.items() if k == metric or k.endswith("loss")]
                if not all(math.isfinite(v) for v in losses):
                    outcome = "diverged"
                    break
                trial.report(record[metric], int(record["epoch"]))
                if trial.should_prune():
                    outcome = "pruned"
                    break
    except KeyboardInterrupt:
        interrupted = "interrupted; the next run re-runs this cell"
        _finish(study, trial, tracker, space, history, "failed", None, interrupted, started)
        raise
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded and the sweep goes on
        outcome, error = "failed", f"{type(err).__name__}: {err}"
    test_acc = history[-1].get("test_acc") if outcome == "complete" and history else None
    objective = _finish(study, trial, tracker, space, history, outcome, test_acc, error, started)
    return TrialResult(task, outcome, len(history), objective, test_acc, error)
