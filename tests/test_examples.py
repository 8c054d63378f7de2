"""Every example in examples/ runs end to end through the CLI (epochs cut down), from the
repository root's point of view: its import paths name `examples.*` modules."""

from __future__ import annotations

import optuna
import pytest

from tests.conftest import ROOT

EXAMPLES = ["own_cnn_swap", "own_builder", "torchvision_resnet18", "own_data", "own_loop"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(ablate, monkeypatch, name):
    monkeypatch.syspath_prepend(str(ROOT))  # as when `ablate` is started in the repository root
    space = str(ROOT / "examples" / f"{name}.yaml")
    check = ablate("check", space)
    assert check.code == 0, check.err
    result = ablate("run", space, "--wandb", "disabled", "--set", "train.epochs=1", "--set", "seeds=1")
    assert result.code == 0, result.err
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("runs/ablate.journal"))
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials and all(t.user_attrs["outcome"] in ("complete", "pruned") for t in trials)
