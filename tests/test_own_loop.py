"""`train.loop`: a user's training function in-process, under the built-in loop's contract."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna

from tests.test_config import assert_one_clear_line
from tests.user_code import write_user_package

LOOPS = '''
import json, math, os
import torch
import torch.nn.functional as F


def train(model, data, config, seed):
    """Plain SGD; the objective is a metric of the user's own naming (`val_error`)."""
    opt = torch.optim.SGD(model.parameters(), lr=config["train"]["lr"])
    gen = torch.Generator().manual_seed(seed)
    closed = []
    try:
        for epoch in range(1, config["train"]["epochs"] + 1):
            model.train()
            for x, y in data.train.batches(64, gen):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                x, y = next(iter(data.val.batches(10_000)))
                error = (model(x).argmax(1) != y).float().mean()
            if config["train"]["args"].get("explode") and epoch == 2:
                error = torch.tensor(float("nan"))
            yield {"val_error": error, "lr_seen": config["train"]["lr"]}
    finally:
        closed.append(True)
        explode = config["train"]["args"].get("explode")
        with open(f"closed_{seed}_{config['train']['lr']}_{explode}.json", "w") as f:
            json.dump({"epoch": epoch}, f)


def no_metric(model, data, config):
    yield {"accuracy": 1.0}
'''


def test_a_training_function_with_its_own_metric_prunes_and_diverges(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path, LOOPS)
    space = write_space(
        textwrap.dedent(
            f"""
            name: loop
            seeds: 2
            objective: {{metric: val_error}}
            pruner: {{name: median, n_startup_trials: 2, n_warmup_steps: 2}}
            model: {{width: 16, depth: 1}}
            train: {{loop: "{pkg}.nets:train", epochs: 4}}
            factors:
              train.lr: [0.2, 0.0001]
              train.args.explode: [false, true]
            """
        )
    )
    result = ablate("run", str(space), "--wandb", "disabled")
    assert result.code == 0, result.err
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("runs/ablate.journal"))
    study = optuna.load_study(study_name="loop", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # `error` is minimized
    by_cell: dict[tuple, list[str]] = {}
    for t in study.trials:
        by_cell.setdefault((t.user_attrs["cell"]["train.lr"], t.user_attrs["cell"]["train.args.explode"]), []).append(
            t.user_attrs["outcome"]
        )
    assert by_cell[(0.2, True)] == ["diverged", "diverged"] and by_cell[(0.0001, True)] == ["diverged", "diverged"]
    assert "complete" in by_cell[(0.2, False)]
    assert by_cell[(0.0001, False)].count("pruned") >= 1, by_cell  # slow lr: worse than the median
    history = next(t for t in study.trials if t.user_attrs["outcome"] == "complete").user_attrs["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and {"val_error", "lr_seen"} <= set(history[0])
    # A stopped loop is closed: its finally block ran at the epoch it was stopped.
    for t in study.trials:
        cell = t.user_attrs["cell"]
        name = f"closed_{t.user_attrs['seed']}_{cell['train.lr']}_{cell['train.args.explode']}.json"
        assert json.loads(Path(name).read_text())["epoch"] == t.user_attrs["epochs_run"], name
    report = (tmp_path / "reports" / "loop" / "report.md").read_text()
    assert "val_error" in report


def test_a_loop_that_breaks_the_contract_fails_with_a_clear_message(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path, LOOPS)
    space = write_space(
        f"""
        name: loop2
        objective: {{metric: val_acc}}
        pruner: {{name: none}}
        train: {{loop: "{pkg}.nets:no_metric", epochs: 1}}
        """
    )
    result = ablate("run", str(space), "--wandb", "disabled", "--no-report")
    assert result.code == 1
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("runs/ablate.journal"))
    (trial,) = optuna.load_study(study_name="loop2", storage=storage).trials
    assert "without 'val_acc' (the objective's metric); it has: accuracy" in trial.user_attrs["error"]


def test_builtin_loop_refuses_an_objective_it_does_not_report(ablate, write_space):
    space = write_space("name: x\nobjective: {metric: val_error}\ntrain: {epochs: 1}\n")
    assert_one_clear_line(ablate("check", str(space)), "objective.metric", "val_acc", "train.loop")
