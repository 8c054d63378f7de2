"""Prune cells, not trials: the seeds of a cell are replicates of one experiment.

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
