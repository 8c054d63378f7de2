"""Prune cells, not trials: the seeds of a cell are replicates of one experiment.

Two pruners: `CellPruner` (the percentile rule, decided per cell) and `GapPruner` (a cell is
stopped only when it is clearly and confidently worse than the best cell at the same epoch).

A per-trial pruner (median, percentile) judges every seed afresh, so on a noisy epoch it stops
one seed of a winning cell and leaves that cell's mean resting on a half-trained value, which can
reorder the leaderboard. This pruner makes the decision once per cell:

- the first seeds of a cell are judged by the percentile rule (the median rule at 50%, Golovin et
  al. 2017): stop when the best objective so far is worse than the given percentile of the other
  trials at the same epoch, after `n_startup_trials` finished trials and `n_warmup_steps` epochs;
- once a seed of the cell has completed, later seeds of that cell are never pruned: a cell that
  earned the full budget gets its replicates, so its mean ± std over seeds is complete;
- once seeds of a cell were pruned and none completed, later seeds face the same rule from the
  first epoch on (no warm-up), so a cell already judged weak costs one or two epochs per seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.trial import FrozenTrial, TrialState


class CellPruner(BasePruner):
    def __init__(self, percentile: float = 50.0, n_startup_trials: int = 5, n_warmup_steps: int = 0) -> None:
        self._first_seed = PercentilePruner(percentile, n_startup_trials, n_warmup_steps)
        self._judged_cell = PercentilePruner(percentile, n_startup_trials, 0)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        cell = trial.user_attrs.get("cell_id")
        siblings = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.user_attrs.get("cell_id") == cell and t.number != trial.number
        ]
        if any(t.state == TrialState.COMPLETE for t in siblings):
            return False
        if siblings:
            return bool(self._judged_cell.prune(study, trial))
        return bool(self._first_seed.prune(study, trial))


class GapPruner(BasePruner):
    """Stop a cell only when it is confidently worse than the best cell at the same epoch.

    At each epoch from `n_warmup_steps` on (from the first epoch for a replicate of a cell already
    pruned), the cell's mean so far (this trial and its siblings at that epoch) is compared with
    the best cell's mean there. The cell is stopped when the gap exceeds both `min_delta` (in the
    objective's units: what the user would call a clear loss) and `z` standard errors of the
    difference of the two means, the seed noise being the pooled spread between seeds of the same
    cell at that epoch (once some cell has two seeds there). A cell a seed of which completed is
    never stopped, so every cell either runs all its seeds or is stopped as a whole. It needs
    `n_startup_cells` cells observed at the epoch before it judges anything.
    """

    def __init__(
        self, min_delta: float = 0.1, z: float = 2.0, n_warmup_steps: int = 2, n_startup_cells: int = 3
    ) -> None:
        self.min_delta, self.z = min_delta, z
        self.n_warmup_steps, self.n_startup_cells = n_warmup_steps, n_startup_cells

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        cell = trial.user_attrs.get("cell_id")
        if step is None:
            return False
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        others = [t for t in study.get_trials(deepcopy=False, states=states) if t.number != trial.number]
        siblings = [t for t in others if t.user_attrs.get("cell_id") == cell]
        if any(t.state == TrialState.COMPLETE for t in siblings):
            return False
        judged = any(t.state == TrialState.PRUNED for t in siblings)
        if step < self.n_warmup_steps and not judged:
            return False
        values: dict[str, list[float]] = {}
        for t in [*others, trial]:
            value = t.intermediate_values.get(step)
            if value is not None and math.isfinite(value):
                values.setdefault(t.user_attrs.get("cell_id"), []).append(value)
        if len(values) < self.n_startup_cells or cell not in values:
            return False
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        means = {c: sign * float(np.mean(v)) for c, v in values.items()}
        best = max(means, key=means.__getitem__)
        gap = means[best] - means[cell]
        threshold = self.min_delta
        noise = _pooled_std(values.values())
        if noise is not None:
            threshold = max(threshold, self.z * noise * math.sqrt(1 / len(values[cell]) + 1 / len(values[best])))
        return gap > threshold


def _pooled_std(groups: Iterable[list[float]]) -> float | None:
    """The within-group standard deviation pooled over groups of two or more values."""
    squares, dof = 0.0, 0
    for values in groups:
        if len(values) > 1:
            squares += float(np.var(values) * len(values))
            dof += len(values) - 1
    return math.sqrt(squares / dof) if dof else None
