"""Helpers for tests that run `ablate` as real processes and kill them: generous deadlines, polling,
and exactly-once checks read straight from the study storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablations.study import open_storage

DEADLINE = 600.0  # seconds: a loaded 2-core CI machine may be slow; only a hang should hit this
FINISHED = ("complete", "pruned", "diverged")

# Tiny trials: width 8, one hidden layer; a few epochs so a worker can be caught mid-trial.
SPACE = """
name: {name}
seeds: {seeds}
pruner: {{name: none}}
model: {{width: 8, depth: 1}}
train: {{epochs: {epochs}, lr: 0.05, batch_size: {batch}}}
factors:
  norm: [none, batch]
  activation: {activations}
"""


def space_text(
    name: str = "tiny", seeds: int = 2, epochs: int = 2, batch: int = 128, activations: str = "[relu, tanh]"
) -> str:
    return SPACE.format(name=name, seeds=seeds, epochs=epochs, batch=batch, activations=activations)


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`ablate ARGS` as a separate process, in its own session like a command from a shell."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "ablations.cli", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], deadline: float = DEADLINE) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"`ablate` did not finish within {deadline:.0f}s\n{out}\n{err}")
    return process.returncode, out, err


def wait_for(what: str, condition: Callable[[], object], deadline: float = DEADLINE) -> object:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def load(name: str, storage: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def trials_of(name: str, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    try:
        return load(name, storage).get_trials(deepcopy=False)
    except KeyError:
        return []


def finished_per_key(trials: list[optuna.trial.FrozenTrial]) -> Counter[str]:
    return Counter(t.user_attrs["key"] for t in trials if t.user_attrs.get("outcome") in FINISHED)


def assert_exactly_once(name: str, tasks: int, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    trials = trials_of(name, storage)
    per_key = finished_per_key(trials)
    assert len(per_key) == tasks and set(per_key.values()) == {1}, per_key
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


def running_mid_trial(name: str, storage: str | None = None) -> optuna.trial.FrozenTrial | None:
    """A RUNNING trial that has trained at least one epoch, and the worker that holds it."""
    for trial in trials_of(name, storage):
        if trial.state == TrialState.RUNNING and trial.intermediate_values and "worker" in trial.user_attrs:
            return trial
    return None


def pid_of(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs["worker"].rpartition(":")[2])


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, read from /proc (Linux)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a (possibly absent) parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
