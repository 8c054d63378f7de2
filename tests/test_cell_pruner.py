"""The cell pruner decides per cell: replicates of a completed cell run in full, replicates of a
pruned cell are judged from the first epoch, first seeds by the percentile rule after warm-up."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from ablations.cell_pruner import CellPruner


def make_study() -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    curve = {1: 0.5, 2: 0.7, 3: 0.8, 4: 0.9}
    for number, cell in enumerate(["good", "weak", "x", "y"]):
        values = {step: v if cell != "weak" else v - 0.4 for step, v in curve.items()}
        state = TrialState.PRUNED if cell == "weak" else TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=state,
                value=values[4] if state == TrialState.COMPLETE else None,
                intermediate_values=values if state == TrialState.COMPLETE else {1: values[1], 2: values[2]},
                user_attrs={"cell_id": cell, "seed": 0, "key": f"{cell}/0"},
            )
        )
        assert number == study.trials[-1].number
    return study


def decide(pruner: CellPruner, study: optuna.Study, cell: str, values: dict[int, float]) -> bool:
    trial = study.ask()
    trial.set_user_attr("cell_id", cell)
    for step, value in values.items():
        trial.report(value, step)
    return pruner.prune(study, study._storage.get_trial(trial._trial_id))  # noqa: SLF001


def test_replicates_of_a_completed_cell_are_never_pruned():
    study = make_study()
    pruner = CellPruner(percentile=50.0, n_startup_trials=1, n_warmup_steps=0)
    assert decide(pruner, study, "good", {1: 0.0, 2: 0.0}) is False
    assert decide(pruner, study, "new", {1: 0.0, 2: 0.0}) is True, "the same curve in a new cell is pruned"


def test_replicates_of_a_pruned_cell_skip_the_warm_up():
    study = make_study()
    pruner = CellPruner(percentile=50.0, n_startup_trials=1, n_warmup_steps=3)
    low = {1: 0.1}
    assert decide(pruner, study, "weak", low) is True, "a cell already judged weak is stopped at epoch 1"
    assert decide(pruner, study, "fresh", low) is False, "a first seed is protected by the warm-up"
    assert decide(pruner, study, "weak", {1: 0.9}) is False, "a replicate that does well goes on"
