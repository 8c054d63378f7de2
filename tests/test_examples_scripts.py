"""The script-mode examples (examples/scripts/) run through `ablate run`, as the README says."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import optuna
import pytest

from ablations.study import open_storage
from tests.conftest import ROOT


def run_example(ablate, tmp_path: Path, space: str, *overrides: str) -> list[optuna.trial.FrozenTrial]:
    shutil.copytree(ROOT / "examples" / "scripts", tmp_path / "examples" / "scripts")  # the program's relative path
    args = [f"--set={o}" for o in overrides]
    result = ablate("run", f"examples/scripts/{space}.yaml", "--wandb", "disabled", "--no-report", *args)
    assert result.code == 0, result
    return optuna.load_study(study_name=f"script-{space}", storage=open_storage(None)).get_trials()


def test_plain_pytorch_script_example(ablate, tmp_path):
    trials = run_example(ablate, tmp_path, "plain", "seeds=1", "model.hidden=16")
    assert sorted(t.user_attrs["cell"]["model.activation"] for t in trials) == ["relu", "tanh"]
    for trial in trials:
        history = trial.user_attrs["history"]
        assert trial.user_attrs["outcome"] == "complete" and [h["epoch"] for h in history] == [1, 2, 3, 4]
        assert trial.value == history[-1]["val_acc"] > 0.5  # ten classes: chance is 0.1
        assert 0.5 < trial.user_attrs["test_acc"] <= 1 and "test_acc" in history[-1]
        assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_lightning_script_example(ablate, tmp_path):
    pytest.importorskip("lightning")  # the `lightning` extra; CI installs it with the `test` extra
    (trial,) = run_example(ablate, tmp_path, "lightning", "seeds=1", "model.hidden=64", "dropout=0.0", "train.epochs=2")
    history = trial.user_attrs["history"]
    assert trial.user_attrs["outcome"] == "complete" and [h["epoch"] for h in history] == [1, 2]
    assert all(math.isfinite(h["val_loss"]) and 0 <= h["val_acc"] <= 1 for h in history)
    assert trial.value == history[-1]["val_loss"] < history[0]["val_loss"]
