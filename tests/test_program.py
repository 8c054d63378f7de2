"""Script mode end to end through the CLI: a space with `program:` runs a training script once
per trial (tests/scripts/fake_train.py, no torch, so it starts fast), with pruning, failures,
re-runs, the grace period, killed workers and W&B."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import optuna
import pytest

from ablations.study import open_storage
from tests.conftest import ROOT
from tests.workers_helpers import assert_exactly_once, finish, running_mid_trial, start, wait_for

SCRIPT = ROOT / "tests" / "scripts" / "fake_train.py"

SPACE = """
name: prog
program: python fake_train.py
seeds: 2
pruner: {name: median, n_startup_trials: 1}
train: {epochs: 3}
factors:
  train.lr: [0.2, 0.9]
  model.act: [relu, broken]
"""


@pytest.fixture(autouse=True)
def script_here(tmp_path: Path) -> None:
    shutil.copy(SCRIPT, tmp_path / "fake_train.py")  # `python fake_train.py`: relative to the cwd


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def trials(name: str = "prog") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(None)).get_trials()


def events(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(trial_id, event, detail) for each line the script wrote to events.log."""
    lines = (tmp_path / "events.log").read_text().splitlines()
    return [tuple((line.split(" ", 2) + [""])[:3]) for line in lines]  # type: ignore[misc]


def of_trial(tmp_path: Path, trial: optuna.trial.FrozenTrial) -> dict[str, str]:
    return {e: d for t, e, d in events(tmp_path) if t == str(trial.number)}


def log_of(trial: optuna.trial.FrozenTrial, suffix: str) -> str:
    return (Path("runs") / "logs" / "prog" / f"trial-{trial.number}{suffix}").read_text()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_script_sweep_prunes_fails_one_level_and_reruns_only_the_failed_cells(ablate, tmp_path):
    (tmp_path / "broken.flag").touch()  # model.act=broken crashes while this file exists
    space = write(tmp_path, SPACE)
    first = ablate("run", str(space), "--wandb", "disabled")
    assert first.code == 1, first
    done = trials()
    outcomes = Counter(t.user_attrs["outcome"] for t in done)
    assert outcomes["failed"] == 4 and outcomes["pruned"] >= 1, outcomes
    assert outcomes["complete"] + outcomes["pruned"] == 4
    for trial in done:
        seen = of_trial(tmp_path, trial)
        history = trial.user_attrs.get("history", [])
        if trial.user_attrs["cell"]["model.act"] == "broken":
            error = trial.user_attrs["error"]
            assert f"exited with status 1 (log: runs/logs/prog/trial-{trial.number}.err)" in error
            assert "mat1 and mat2 shapes cannot be multiplied" in error, error
            assert trial.state == optuna.trial.TrialState.FAIL and not history
            assert "building the model" in log_of(trial, ".out")
        elif trial.user_attrs["outcome"] == "pruned":
            # The script saw report() return True at the epoch the pruner stopped it, and exited.
            assert int(seen["pruned"]) == len(history) < 3 and "finished" not in seen
            assert trial.state == optuna.trial.TrialState.PRUNED
        else:
            assert seen["finished"] == "3" and [h["epoch"] for h in history] == [1, 2, 3]
            lr, seed = trial.user_attrs["cell"]["train.lr"], trial.user_attrs["seed"]
            assert trial.value == pytest.approx(lr + 0.01 * seed)
            assert history[-1]["score"] == pytest.approx(10 * trial.value)
    assert (tmp_path / "reports" / "prog" / "report.md").is_file()
    best = ablate("check", str(tmp_path / "reports" / "prog" / "best.yaml"))  # the best cell, runnable
    assert best.code == 0 and "program: python fake_train.py" in best.out, best

    (tmp_path / "broken.flag").unlink()
    started_before = sum(e == "start" for _, e, _ in events(tmp_path))
    again = ablate("run", str(space), "--wandb", "disabled", "--no-report")
    assert again.code == 0 and "4 trial(s) queued now" in again.out, again
    new = [t for t in trials() if t.number >= len(done)]
    assert len(new) == 4 and {t.user_attrs["cell"]["model.act"] for t in new} == {"broken"}
    assert sum(e == "start" for _, e, _ in events(tmp_path)) == started_before + 4
    assert_exactly_once("prog", 8)


def test_a_script_that_ignores_pruning_is_stopped_with_its_forked_children(ablate, tmp_path):
    space = write(
        tmp_path,
        """
        name: prog
        program: [python, fake_train.py]
        program_grace_seconds: 0.5
        seeds: 2
        pruner: {name: median, n_startup_trials: 1}
        train: {epochs: 3, ignore_pruning: true, fork_child: true, chatty: true}
        factors:
          train.lr: [0.2, 0.9]
        """,
    )
    result = ablate("run", str(space), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result
    done = trials()
    pruned = [t for t in done if t.user_attrs["outcome"] == "pruned"]
    assert pruned and all(t.user_attrs["cell"]["train.lr"] == 0.2 for t in pruned)
    for trial in pruned:
        seen = of_trial(tmp_path, trial)
        # It went on after report() said stop, ignored SIGTERM and was SIGKILLed, child and all.
        assert "pruned" in seen and "sigterm" in seen and "finished" not in seen
        assert not alive(int(seen["start"])) and not alive(int(seen["child"]))
    for trial in done:
        seen = of_trial(tmp_path, trial)
        assert seen["child-refused"].startswith("ablations.report()_called_in_process")
        assert not alive(int(seen["child"]))
        out = log_of(trial, ".out")
        assert out.count("epoch 1 batch") == 200  # all of stdout is in the log, and none of it was parsed
    complete = [t for t in done if t.user_attrs["outcome"] == "complete"]
    assert complete and all(len(t.user_attrs["history"]) == 3 for t in complete)


def test_a_report_without_the_objective_metric_fails_the_trial_and_names_it(ablate, tmp_path):
    space = write(tmp_path, "name: prog\nprogram: python fake_train.py\nobjective: {metric: accuracy}\n")
    result = ablate("run", str(space), "--wandb", "disabled", "--no-report")
    assert result.code == 1
    (trial,) = trials()
    assert (
        "has no 'accuracy'" in trial.user_attrs["error"] and "val_acc, train_loss, score" in trial.user_attrs["error"]
    )
    # The script's report() raised that message too, so the script ended at its first report.
    assert "finished" not in of_trial(tmp_path, trial)
    assert "has no 'accuracy'" in log_of(trial, ".err")


def test_nan_objective_is_diverged_and_the_script_is_told_to_stop(ablate, tmp_path):
    space = write(tmp_path, "name: prog\nprogram: python fake_train.py\nfactors: {train.explode: [false, true]}\n")
    assert ablate("run", str(space), "--wandb", "disabled", "--no-report").code == 0
    by_level = {t.user_attrs["cell"]["train.explode"]: t for t in trials()}
    diverged = by_level[True]
    assert diverged.user_attrs["outcome"] == "diverged" and len(diverged.user_attrs["history"]) == 1
    assert math.isnan(diverged.user_attrs["history"][0]["val_acc"])
    assert of_trial(tmp_path, diverged)["pruned"] == "1"  # report() returned True
    assert by_level[False].user_attrs["outcome"] == "complete"


def test_two_workers_in_script_mode_finish_every_cell_once_when_one_is_sigkilled(tmp_path):
    space = write(
        tmp_path,
        """
        name: prog
        program: python fake_train.py
        seeds: 2
        pruner: {name: none}
        train: {epochs: 6, sleep: 0.25}
        factors:
          train.lr: [0.2, 0.9]
          model.act: [relu, tanh]
        """,
    )
    run = start("run", str(space), "--workers", "2", "--threads", "1", "--device", "cpu", "--no-report", cwd=tmp_path)
    victim = wait_for("a trial mid-training", lambda: running_mid_trial("prog"))
    script_pid = int(of_trial(tmp_path, victim)["start"])
    os.kill(int(victim.user_attrs["worker"].rpartition(":")[2]), signal.SIGKILL)
    wait_for("the killed worker's script to die with it", lambda: not alive(script_pid), deadline=30)
    code, out, err = finish(run)
    assert code == 0, out + err
    assert "killed by SIGKILL" in out
    done = assert_exactly_once("prog", 8)
    killed = next(t for t in done if t.number == victim.number)
    assert killed.state == optuna.trial.TrialState.FAIL and "reaped" in killed.user_attrs
    envs = [json.loads(d) for _, e, d in events(tmp_path) if e == "env"]
    assert envs and all(e == {"OMP_NUM_THREADS": "1", "ABLATE_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""} for e in envs)


def test_offline_wandb_runs_of_script_trials_hold_the_reported_metrics(ablate, tmp_path):
    space = write(tmp_path, "name: prog\nprogram: python fake_train.py\nfactors: {train.lr: [0.2, 0.9]}\n")
    assert ablate("run", str(space), "--wandb", "offline", "--no-report").code == 0
    for trial in trials():
        run_dir = trial.user_attrs["wandb_run"]
        inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", run_dir]
        shown = subprocess.run(inspect, capture_output=True)
        assert shown.returncode == 0, shown.stderr
        run = json.loads(shown.stdout)
        last = trial.user_attrs["history"][-1]
        assert run["summary"]["score"] == pytest.approx(last["score"]) and run["step"] == 4
        assert run["summary"]["val_acc"] == pytest.approx(trial.value) and run["summary"]["outcome"] == "complete"
        assert run["config"]["train.lr"] == trial.user_attrs["cell"]["train.lr"] == run["config"]["train"]["lr"]


def test_the_same_script_runs_standalone_with_its_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABLATE_")}
    done = subprocess.run([sys.executable, "fake_train.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [e for _, e, _ in events(tmp_path)] == ["start", "env", "finished"]


def test_import_ablations_is_light_and_exports_the_script_api():
    code = (
        "import sys, ablations; print(sorted(ablations.__all__)); "
        "print([m for m in ('torch', 'optuna', 'pandas', 'pydantic') if m in sys.modules]); "
        "print(ablations.config({'train': {'lr': 1}}), ablations.report(1, val_acc=0.5))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": os.defpath})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "['config', 'make_report', 'report', 'sweep']",
        "[]",
        "{'train': {'lr': 1}} False",
    ]


def test_program_spaces_take_free_form_sections_and_built_in_spaces_stay_strict(ablate, tmp_path):
    text = """
    name: prog
    program: python fake_train.py --fast
    objective: {metric: val_error}
    model: {hidden: 8, enc: {layers: 2}}
    factors:
      norm: [a, b]
      model.enc.layers: [1, 3]
    exclude: [{norm: b, model.enc.layers: 3}]
    """
    shown = ablate("check", str(write(tmp_path, text)))
    assert shown.code == 0, shown
    assert "cells: 3  x  seeds: 1  =  trials: 3" in shown.out and "minimize val_error" in shown.out
    assert "program: python fake_train.py --fast" in shown.out and "model variant" not in shown.out
    bad = ablate("check", str(write(tmp_path, text.replace("model.enc.layers", "layers"))))
    assert bad.code == 2 and "factors.layers: with `program:` a factor is a dotted key" in bad.err
    builtin = ablate("check", str(write(tmp_path, "name: b\nmodel: {hidden: 8}\n")))
    assert builtin.code == 2 and "model.hidden: unknown key" in builtin.err
    empty = ablate("check", str(write(tmp_path, "name: b\nprogram: ''\n")))
    assert empty.code == 2 and "program: give a command" in empty.err


def test_a_program_that_is_not_there_is_bad_input_before_anything_is_queued(ablate, tmp_path):
    missing = ablate("run", str(write(tmp_path, "name: prog\nprogram: python no_such_train.py\n")))
    assert missing.code == 2 and "program: no script no_such_train.py in" in missing.err, missing
    absent = ablate("run", str(write(tmp_path, "name: prog\nprogram: no-such-binary --fast\n")))
    assert absent.code == 2 and "'no-such-binary' is not an executable" in absent.err
    assert not (tmp_path / "runs").exists()  # no study was created


def test_config_and_report_stay_callable_after_the_suite_modules_of_those_names_are_imported():
    code = (
        "import ablations, ablations.config, ablations.report; from ablations.config import short_key; "
        "from ablations import report; "
        "print(ablations.config({'a': 1}), ablations.report(1, val_acc=0.5), report(2, x=1), short_key('model.norm'))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "{'a': 1} False False norm"


def test_reports_from_several_threads_arrive_whole_and_each_is_answered(tmp_path):
    from ablations.program import program_records

    script = tmp_path / "threads.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading, ablations
            def work(t):
                for i in range(50):
                    assert ablations.report(100 * t + i, val_acc=t, padding=float(i)) is False
            threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            print("x" * 100_000)  # a long line on stdout changes nothing
            """
        )
    )
    records = list(program_records(["python", str(script)], {}, "val_acc", tmp_path / "logs" / "threads"))
    assert sorted(r["epoch"] for r in records) == sorted(100 * t + i for t in range(4) for i in range(50))
    assert all(r["epoch"] // 100 == r["val_acc"] and r["epoch"] % 100 == r["padding"] for r in records)
