"""End-to-end sweeps through the CLI on tiny grids: exactly once, resume, pruning, divergence,
failures, W&B read back from its own run files, and the report at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest

from ablations.study import open_storage
from tests.conftest import ROOT, TINY_SPACE


def load(name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None))


def finished_keys(study: optuna.Study) -> Counter[str]:
    return Counter(
        t.user_attrs["key"]
        for t in study.get_trials()
        if t.user_attrs.get("outcome") in ("complete", "pruned", "diverged")
    )


def test_sweep_runs_every_cell_and_seed_once_and_resumes_without_retraining(ablate, write_space, tmp_path):
    space = write_space(TINY_SPACE)
    result = ablate("run", str(space))
    assert result.code == 0, result
    study = load()
    keys = finished_keys(study)
    assert len(keys) == 2 * 2 * 2 and set(keys.values()) == {1}
    assert len(study.trials) == 8
    for trial in study.trials:
        assert trial.user_attrs["outcome"] == "complete"
        assert [h["epoch"] for h in trial.user_attrs["history"]] == [1, 2, 3]
        assert 0 <= trial.user_attrs["test_acc"] <= 1
        assert trial.value == trial.user_attrs["history"][-1]["val_acc"]
        assert trial.params["norm"] == trial.user_attrs["cell"]["model.norm"]
    assert (tmp_path / "reports" / "tiny" / "report.md").is_file()
    assert (tmp_path / "reports" / "tiny" / "trials.csv").is_file()

    again = ablate("run", str(space))
    assert again.code == 0 and "0 trial(s) queued now" in again.out and "ran 0 trial(s)" in again.out
    assert len(load().trials) == 8

    status = ablate("status", "tiny")
    assert status.code == 0
    assert [line.split() for line in status.out.splitlines() if "complete" in line][0][-2:] == ["complete", "8"] or (
        "8" in [w for line in status.out.splitlines() if "complete" in line for w in line.replace("│", " ").split()]
    )


def test_pruner_stops_weak_trials_which_keep_their_history(ablate, write_space):
    space = write_space(
        TINY_SPACE.replace("pruner: {name: none}", "pruner: {name: percentile, percentile: 75.0, n_startup_trials: 2}")
        .replace("epochs: 3", "epochs: 5")
        .replace("seeds: 2", "seeds: 3")
        .replace("[relu, tanh]", "[relu, sigmoid]")
    )
    assert ablate("run", str(space), "--wandb", "disabled", "--set", "init=normal,kaiming").code == 0
    study = load()
    outcomes = Counter(t.user_attrs["outcome"] for t in study.trials)
    assert outcomes["pruned"] > 0 and outcomes["complete"] > 0
    assert set(finished_keys(study).values()) == {1} and len(finished_keys(study)) == 2 * 2 * 2 * 3
    for trial in study.trials:
        if trial.user_attrs["outcome"] == "pruned":
            history = trial.user_attrs["history"]
            assert 1 <= len(history) < 5 and trial.user_attrs["epochs_run"] == len(history)
            assert trial.state == optuna.trial.TrialState.PRUNED


def test_nan_loss_is_recorded_as_diverged_not_a_crash(ablate, write_space):
    space = write_space(TINY_SPACE.replace("  activation: [relu, tanh]", "  train.lr: [0.05, 10000.0]"))
    result = ablate("run", str(space), "--wandb", "disabled", "--set", "train.epochs=8")
    assert result.code == 0, result
    by_lr = {}
    for trial in load().trials:
        by_lr.setdefault(trial.user_attrs["cell"]["train.lr"], set()).add(trial.user_attrs["outcome"])
    assert by_lr[0.05] == {"complete"}
    assert "diverged" in by_lr[10000.0]
    diverged = [t for t in load().trials if t.user_attrs["outcome"] == "diverged"]
    assert all(t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["history"] for t in diverged)


def test_offline_wandb_runs_hold_metrics_config_and_outcome(ablate, write_space):
    if shutil.which("wandb", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("the wandb CLI must be installed next to python")
    assert ablate("run", str(write_space(TINY_SPACE)), "--wandb", "offline", "--no-report").code == 0
    trial = load().trials[0]
    run_dir = Path(trial.user_attrs["wandb_run"])
    assert list(run_dir.glob("run-*.wandb")), sorted(p.name for p in run_dir.iterdir())
    wandb_cli = str(Path(sys.executable).parent / "wandb")
    shown = subprocess.run(
        [wandb_cli, "leet", "inspect", "--summary", "--json", str(run_dir)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    cell = trial.user_attrs["cell"]
    assert run["config"]["norm"] == cell["model.norm"] and run["config"]["activation"] == cell["model.activation"]
    assert run["config"]["model"]["width"] == 16 and run["config"]["seed"] == trial.user_attrs["seed"]
    assert run["group"] == "tiny" if "group" in run else True
    assert (
        run["name"]
        == f"norm={cell['model.norm']} activation={cell['model.activation']} seed={trial.user_attrs['seed']}"
    )
    summary = run["summary"]
    assert summary["outcome"] == "complete" and summary["epochs_run"] == 3 and run["step"] == 3
    last = trial.user_attrs["history"][-1]
    assert summary["val_acc"] == pytest.approx(last["val_acc"]) and summary["train_loss"] == pytest.approx(
        last["train_loss"]
    )
    assert summary["test_acc"] == pytest.approx(trial.user_attrs["test_acc"])


def test_wandb_failure_never_stops_the_sweep(ablate, write_space, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("W&B is down")

    monkeypatch.setattr(wandb, "init", broken_init)
    result = ablate("run", str(write_space(TINY_SPACE)), "--wandb", "online", "--no-report")
    assert result.code == 0
    assert "W&B init failed" in result.err and "RuntimeError: W&B is down" in result.err
    assert len(finished_keys(load())) == 8


def test_interrupted_sweep_resumes_and_finishes_exactly_once(ablate, write_space, monkeypatch):
    import ablations.plugins.loops as trial_module  # where a trial builds and trains

    real_fit, calls = trial_module.fit, []

    def fit_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        yield from real_fit(*args, **kwargs)

    space = write_space(TINY_SPACE)
    monkeypatch.setattr(trial_module, "fit", fit_then_interrupt)
    interrupted = ablate("run", str(space), "--wandb", "disabled")
    assert interrupted.code == 130 and "run the same command again to resume" in interrupted.err
    assert len(finished_keys(load())) == 3
    monkeypatch.setattr(trial_module, "fit", real_fit)
    assert ablate("run", str(space), "--wandb", "disabled").code == 0
    keys = finished_keys(load())
    assert len(keys) == 8 and set(keys.values()) == {1}


def test_worker_joins_a_study_and_runs_what_is_queued(ablate, write_space, monkeypatch):
    import ablations.plugins.loops as trial_module  # where a trial builds and trains

    real_fit, calls = trial_module.fit, []

    def fit_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        yield from real_fit(*args, **kwargs)

    monkeypatch.setattr(trial_module, "fit", fit_then_interrupt)
    assert ablate("run", str(write_space(TINY_SPACE)), "--wandb", "disabled").code == 130
    monkeypatch.setattr(trial_module, "fit", real_fit)
    # The interrupted trial is failed, so a worker (which never re-queues) runs the 5 still waiting.
    joined = ablate("worker", "--study", "tiny", "--wandb", "disabled")
    assert joined.code == 0 and "ran 5 trial(s)" in joined.out, joined
    assert len(finished_keys(load())) == 7
    assert ablate("run", str(write_space(TINY_SPACE)), "--wandb", "disabled").code == 0
    assert len(finished_keys(load())) == 8


def test_failed_trial_is_recorded_and_retried_next_run(ablate, write_space, monkeypatch):
    import ablations.plugins.loops as trial_module  # where a trial builds and trains

    real_build = trial_module.build_model

    def build_or_fail(cfg, *args):
        if cfg.activation == "tanh":
            raise MemoryError("out of memory (simulated)")
        return real_build(cfg, *args)

    space = write_space(TINY_SPACE)
    monkeypatch.setattr(trial_module, "build_model", build_or_fail)
    first = ablate("run", str(space), "--wandb", "disabled")
    assert first.code == 1
    failed = [t for t in load().trials if t.user_attrs["outcome"] == "failed"]
    assert len(failed) == 4 and all("out of memory" in t.user_attrs["error"] for t in failed)
    monkeypatch.setattr(trial_module, "build_model", real_build)
    assert ablate("run", str(space), "--wandb", "disabled").code == 0
    keys = finished_keys(load())
    assert len(keys) == 8 and set(keys.values()) == {1}


def test_changed_grid_under_the_same_study_name_is_refused_and_the_study_kept(ablate, write_space):
    space = write_space(TINY_SPACE)
    assert ablate("run", str(space), "--wandb", "disabled", "--no-report").code == 0
    before = [(t.number, t.state, t.value) for t in load().trials]
    result = ablate("run", str(space), "--wandb", "disabled", "--set", "norm=none,layer")
    assert result.code == 2 and "different grid" in result.err and "--study" in result.err
    assert "Traceback" not in result.err
    assert [(t.number, t.state, t.value) for t in load().trials] == before
    assert (
        ablate(
            "run", str(space), "--wandb", "disabled", "--no-report", "--set", "norm=none,layer", "--study", "tiny-layer"
        ).code
        == 0
    )


def test_unknown_study_and_missing_device_are_bad_input(ablate, write_space):
    result = ablate("status", "nothing-here")
    assert result.code == 2 and "no study named 'nothing-here'" in result.err
    import torch

    if not torch.cuda.is_available():
        result = ablate("run", str(write_space(TINY_SPACE)), "--device", "cuda")
        assert result.code == 2 and "no CUDA device" in result.err and "--device cpu" in result.err


def test_runner_py_is_the_same_program_as_ablate(tmp_path):
    space = ROOT / "search_spaces" / "quickstart.yaml"
    bin_dir = Path(sys.executable).parent
    via_runner = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), "check", str(space)], capture_output=True, text=True, cwd=tmp_path
    )
    via_script = subprocess.run(
        [str(bin_dir / "ablate"), "check", str(space)], capture_output=True, text=True, cwd=tmp_path
    )
    assert via_runner.returncode == via_script.returncode == 0, via_runner.stderr
    assert via_runner.stdout == via_script.stdout
    assert "cells: 18" in via_script.stdout or "cells:" in via_script.stdout
