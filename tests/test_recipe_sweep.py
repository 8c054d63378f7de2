"""The recipe end to end through the CLI: the lr of a schedule in each trial's history, and a
trial stopped by its own early-stopping rule as the `early_stopped` outcome."""

from __future__ import annotations

import math
import re

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ablations.study import open_storage

SCHEDULE_SPACE = """
name: sched
seeds: 1
pruner: {name: none}
model: {width: 16, depth: 1}
train: {lr: 0.1, batch_size: 256, epochs: 6, warmup_epochs: 2, min_lr: 0.001, milestones: [2, 4], gamma: 0.1}
factors:
  train.schedule: [cosine, multistep]
"""

STOPPING_SPACE = """
name: stop
seeds: 2
pruner: {name: none}
model: {width: 16, depth: 1}
train: {lr: 0.05, batch_size: 128, epochs: 8, early_stopping: {patience: 2, min_delta: 0.5}}
"""


def load(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None))


def test_schedules_put_their_lr_in_the_history(ablate, write_space):
    result = ablate("run", str(write_space(SCHEDULE_SPACE)), "--wandb", "disabled")
    assert result.code == 0, result.out + result.err
    history = {t.user_attrs["cell"]["train.schedule"]: t.user_attrs["history"] for t in load("sched").trials}
    # digits: 1078 training images in batches of 256 is 5 steps per epoch, 30 in all; warmup 10 steps
    cosine = [h["lr"] for h in history["cosine"]]
    assert cosine[0] == pytest.approx(0.5 * (0.001 + 0.099 * (1 + math.cos(math.pi * 4 / 30)) / 2))
    assert cosine[0] < cosine[1] and cosine[1] == max(cosine)  # rises over the 2 warmup epochs
    assert all(a > b for a, b in zip(cosine[1:], cosine[2:], strict=False))  # then falls
    assert cosine[-1] == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi * 29 / 30)) / 2)
    assert cosine[-1] - 0.001 < 0.003 * 0.1  # ends near min_lr
    multistep = [h["lr"] for h in history["multistep"]]
    assert multistep == pytest.approx([0.05, 0.1, 0.01, 0.01, 0.001, 0.001])  # / 10 after epochs 2 and 4
    for h in history["cosine"] + history["multistep"]:
        assert math.isfinite(h["grad_norm"]) and h["grad_norm"] > 0


def test_a_trial_stopped_by_its_own_rule_is_early_stopped_and_scored_at_its_best_epoch(ablate, write_space, tmp_path):
    space = write_space(STOPPING_SPACE)
    result = ablate("run", str(space), "--wandb", "disabled")
    assert result.code == 0, result.out + result.err
    assert "2 early_stopped" in result.out
    study = load("stop")
    for trial in study.trials:
        history = trial.user_attrs["history"]
        # val_acc cannot rise by 0.5 after epoch 1: epochs 2 and 3 use up the patience
        assert trial.user_attrs["outcome"] == "early_stopped" and len(history) == 3
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["best_epoch"] == 1
        assert trial.value == history[0]["val_acc"] == trial.user_attrs["objective"]
        assert 0 < trial.user_attrs["test_acc"] <= 1
    status = ablate("status", "stop")
    assert status.code == 0 and re.search(r"early_stopped\W+2\b", status.out), status.out
    trials = pd.read_csv(tmp_path / "reports" / "stop" / "trials.csv")
    assert list(trials["outcome"]) == ["early_stopped"] * 2
    assert list(trials["objective"]) == pytest.approx([t.value for t in study.trials])
    again = ablate("run", str(space), "--wandb", "disabled")  # finished: nothing is trained again
    assert again.code == 0 and len(load("stop").trials) == 2, again.out
    # its test accuracy is that of the best epoch's weights: the same seeds trained for 1 epoch
    one_epoch = STOPPING_SPACE.replace("name: stop", "name: one").replace("epochs: 8", "epochs: 1")
    assert ablate("run", str(write_space(one_epoch, "one.yaml")), "--wandb", "disabled").code == 0
    test_acc = lambda name: sorted((t.user_attrs["seed"], t.user_attrs["test_acc"]) for t in load(name).trials)  # noqa: E731
    assert test_acc("stop") == test_acc("one")
