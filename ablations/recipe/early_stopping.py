"""Early stopping on the objective, fed one value per epoch, so it works for any trainer: the
built-in loop, a user's training function, a user's script."""

from __future__ import annotations

import math


class EarlyStopping:
    """Stop when `patience` epochs in a row have not improved the best value by more than
    `min_delta` (Prechelt 1998, "Early stopping - but when?"; the rule of Keras's and
    Lightning's EarlyStopping). The best value only moves on such an improvement, so `best`
    and `best_epoch` are the epoch whose weights a user would keep. A NaN never improves."""

    def __init__(self, patience: int, min_delta: float = 0.0, direction: str = "maximize") -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.epoch = 0
        self.waited = 0

    def update(self, value: float) -> bool:
        """Take the next epoch's value; True when training should stop now."""
        self.epoch += 1
        better = math.isfinite(value) and (self.best is None or self.sign * (value - self.best) > self.min_delta)
        if better:
            self.best, self.best_epoch, self.waited = value, self.epoch, 0
        else:
            self.waited += 1
        return self.waited >= self.patience

    @property
    def improved(self) -> bool:
        """Whether the last value was a new best."""
        return self.best_epoch == self.epoch
