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


def gap_study(noise: float) -> optuna.Study:
    """Three cells with two seeds each at epochs 1-3: best at 0.9, mid at 0.85, weak at 0.5 (epoch 3),
    seeds spread by `noise` around each cell's mean."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for cell, top in (("best", 0.9), ("mid", 0.85), ("weak", 0.5)):
        for seed, spread in enumerate((-noise, noise)):
            values = {step: top * step / 3 + spread for step in (1, 2, 3)}
            study.add_trial(
                create_trial(
                    state=TrialState.PRUNED,
                    intermediate_values=values,
                    user_attrs={"cell_id": cell, "seed": seed, "key": f"{cell}/{seed}"},
                )
            )
    return study


def test_gap_pruner_stops_only_what_is_clearly_and_confidently_worse():
    from ablations.cell_pruner import GapPruner

    pruner = GapPruner(min_delta=0.1, z=2.0, n_warmup_steps=2, n_startup_cells=3)
    quiet = gap_study(noise=0.01)
    # A new cell 0.3 below the best at epoch 3: clear (> 0.1) and far beyond seed noise.
    assert decide(pruner, quiet, "new", {1: 0.2, 2: 0.4, 3: 0.6}) is True
    # 0.05 below the best: within min_delta, kept however small the noise.
    assert decide(pruner, quiet, "close", {1: 0.2, 2: 0.5, 3: 0.85}) is False
    # Warm-up: at epoch 1 nothing is judged, even a hopeless cell.
    assert decide(pruner, quiet, "slow", {1: 0.0}) is False
    # With noisy seeds (sd ~0.28) a gap of 0.3 is not confidently worse: kept.
    noisy = gap_study(noise=0.2)
    assert decide(pruner, noisy, "new", {1: 0.2, 2: 0.4, 3: 0.6}) is False
    # A replicate of a cell already pruned is judged from its first epoch.
    assert decide(pruner, quiet, "weak", {1: 0.0}) is True
