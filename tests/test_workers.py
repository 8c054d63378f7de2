"""Parallel and crashing workers on the default journal storage: `ablate run --workers N`, SIGKILL
mid-trial, SIGINT then resume, duplicate queue entries, leases of lost machines, and a stress run.
Every test ends by reading the storage: each cell x seed has exactly one finished trial."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablations import lease
from ablations.config import load_space
from ablations.grid import schedule
from ablations.study import claim_next, create_or_resume, enqueue_task, open_storage, reap_stale
from tests.workers_helpers import (
    alive,
    assert_exactly_once,
    children_of,
    finish,
    pid_of,
    running_mid_trial,
    space_text,
    start,
    trials_of,
    wait_for,
)


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_two_workers_finish_every_cell_once_when_one_is_sigkilled_mid_trial(tmp_path):
    # 4 cells x 3 seeds, enough epochs that a worker is caught mid-trial.
    space = write(tmp_path, space_text(seeds=3, epochs=15, batch=16))
    run = start("run", str(space), "--workers", "2", "--no-report", cwd=tmp_path)
    victim = wait_for("a trial mid-training", lambda: running_mid_trial("tiny"))
    os.kill(pid_of(victim), signal.SIGKILL)
    code, out, err = finish(run)
    assert code == 0, out + err
    assert "killed by SIGKILL" in out and "queued again" in out
    trials = assert_exactly_once("tiny", 12)
    killed = next(t for t in trials if t._trial_id == victim._trial_id)  # noqa: SLF001
    assert killed.state == TrialState.FAIL and "reaped" in killed.user_attrs
    rerun = [t for t in trials if t.user_attrs["key"] == victim.user_attrs["key"] and t.state != TrialState.FAIL]
    assert len(rerun) == 1 and rerun[0].user_attrs["outcome"] == "complete"
    assert "Traceback" not in err


def test_workers_stop_when_their_supervisor_is_sigkilled_and_the_next_run_finishes_every_cell_once(tmp_path):
    lease_seconds = 30.0
    env = {"ABLATE_LEASE_SECONDS": str(lease_seconds)}
    space = write(tmp_path, space_text(seeds=3, epochs=15, batch=16))
    command = ("run", str(space), "--workers", "2", "--no-report")
    run = start(*command, cwd=tmp_path, env=env)
    wait_for("a trial mid-training", lambda: running_mid_trial("tiny"))
    workers = children_of(run.pid)
    assert len(workers) == 2
    os.kill(run.pid, signal.SIGKILL)
    finish(run)
    wait_for("every worker to exit", lambda: not any(alive(pid) for pid in workers), deadline=lease_seconds)
    trials = trials_of("tiny")
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # each worker let go of its trial
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all("interrupted" in t.user_attrs["error"] for t in interrupted)
    assert sum(t.state.is_finished() for t in trials) < 12  # they stopped; they did not run the sweep out

    code, out, err = finish(start(*command, cwd=tmp_path, env=env))
    assert code == 0, out + err
    assert_exactly_once("tiny", 12)


@pytest.mark.parametrize("supervised", [True, False])
def test_only_a_worker_started_by_a_supervisor_asks_to_be_stopped_when_its_parent_dies(supervised):
    # What the kernel was asked (PR_GET_PDEATHSIG), read in a fresh process as `ablate worker` is.
    probe = (
        "import ctypes, os; from ablations.workers import follow_supervisor; follow_supervisor(); "
        "sig = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0); print(sig.value)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ABLATE_SUPERVISOR_PID"}
    if supervised:
        env["ABLATE_SUPERVISOR_PID"] = str(os.getpid())
    shown = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert int(shown.stdout) == (signal.SIGTERM if supervised else 0)


def test_the_portable_fallback_stops_a_worker_whose_parent_was_sigkilled(tmp_path):
    # Where there is no PR_SET_PDEATHSIG: the worker notices that it was adopted, and stops itself.
    worker = (
        "import os, signal, sys; from pathlib import Path; from ablations.workers import _watch_parent; "
        "signal.signal(signal.SIGTERM, lambda *_: (Path('stopped').write_text('SIGTERM'), os._exit(0))); "
        "Path('ready').touch(); _watch_parent(os.getppid(), poll_seconds=0.05)"
    )
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(600)"
    supervisor = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path)
    wait_for("the worker to start", lambda: (tmp_path / "ready").exists())
    assert not (tmp_path / "stopped").exists()
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait()
    wait_for("the worker to stop itself", lambda: (tmp_path / "stopped").exists(), deadline=30)
    assert (tmp_path / "stopped").read_text() == "SIGTERM"


def test_sigint_mid_sweep_stops_cleanly_and_the_same_command_resumes(tmp_path):
    space = write(tmp_path, space_text(seeds=3, epochs=10, batch=16))
    command = ("run", str(space), "--workers", "2", "--no-report")
    run = start(*command, cwd=tmp_path)
    wait_for("two finished trials", lambda: sum(t.state.is_finished() for t in trials_of("tiny")) >= 2)
    wait_for("a trial mid-training", lambda: running_mid_trial("tiny"))
    os.kill(run.pid, signal.SIGINT)  # Ctrl-C on the command; it stops its workers itself
    code, out, err = finish(run)
    assert code == 130 and "run the same command again to resume" in err, out + err
    trials = trials_of("tiny")
    # Nothing half-written: no trial is left running, the interrupted ones say so.
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all("interrupted" in t.user_attrs.get("error", "") for t in interrupted)
    done_before = {t._trial_id for t in trials if t.user_attrs.get("outcome") == "complete"}  # noqa: SLF001

    code, out, err = finish(start(*command, cwd=tmp_path))
    assert code == 0, out + err
    trials = assert_exactly_once("tiny", 12)
    still_there = {t._trial_id for t in trials if t.user_attrs.get("outcome") == "complete"}  # noqa: SLF001
    assert done_before <= still_there  # nothing finished was trained again


def test_stress_two_concurrent_runs_of_two_workers_each_run_200_trials_once(tmp_path):
    # 2 x 5 x 5 cells x 4 seeds = 200 tiny trials; two `ablate run` enqueue the same study at once.
    text = space_text(seeds=4, epochs=1, activations="[relu, tanh, sigmoid, elu, gelu]")
    text += "  init: [default, kaiming, xavier, orthogonal, normal]\n"
    space = write(tmp_path, text)
    runs = [start("run", str(space), "--workers", "2", "--no-report", cwd=tmp_path) for _ in range(2)]
    results = [finish(run) for run in runs]
    for code, out, err in results:
        assert code == 0, out + err
        assert "Error" not in err and "Traceback" not in err, err
    trials = assert_exactly_once("tiny", 200)
    assert not [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("outcome") != "duplicate"]
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "logs" / "tiny").glob("worker-*.log"))
    assert "Traceback" not in logs and "Error" not in logs and "locked" not in logs
    status = start("status", "tiny", cwd=tmp_path)
    code, out, _ = finish(status)
    assert code == 0 and re.search(r"│ complete +│ 200 ", out) and re.search(r"│ total +│ 200 ", out), out


def test_several_worker_processes_stream_one_wandb_run_per_trial(tmp_path):
    space = write(tmp_path, space_text(seeds=1, epochs=2))
    code, out, err = finish(
        start("run", str(space), "--workers", "2", "--wandb", "offline", "--no-report", cwd=tmp_path)
    )
    assert code == 0, out + err
    trials = assert_exactly_once("tiny", 4)
    run_dirs = {Path(t.user_attrs["wandb_run"]) for t in trials if t.state == TrialState.COMPLETE}
    assert len(run_dirs) == 4
    for run_dir in run_dirs:
        assert list(run_dir.glob("run-*.wandb")), run_dir
    assert "wandb sync" in out


def test_a_task_queued_twice_runs_once_and_counts_once(ablate, write_space):
    # What two `ablate run` enqueueing one study at the same moment can leave behind.
    space = load_space(write_space(space_text(seeds=2, epochs=1)))
    study = create_or_resume(open_storage(None), space, "tiny", "ablate run", None)
    for task in schedule(space, "tiny") * 2:
        enqueue_task(study, task)
    joined = ablate("worker", "--study", "tiny", "--wandb", "disabled")
    assert joined.code == 0 and "ran 8 trial(s)" in joined.out, joined
    trials = assert_exactly_once("tiny", 8)
    assert sum(t.user_attrs.get("outcome") == "duplicate" for t in trials) == 8
    status = ablate("status", "tiny")
    assert re.search(r"│ complete +│ 8 ", status.out) and re.search(r"│ total +│ 8 ", status.out), status.out
    report = ablate("report", "tiny")
    assert report.code == 0
    import pandas as pd

    assert len(pd.read_csv(Path("reports") / "tiny" / "trials.csv")) == 8


def test_a_lost_machines_trial_is_rerun_once_its_lease_expires(ablate, write_space, monkeypatch):
    space_file = write_space(space_text(seeds=1, epochs=1))
    space = load_space(space_file)
    study = create_or_resume(open_storage(None), space, "tiny", "ablate run", None)
    for task in schedule(space, "tiny"):
        enqueue_task(study, task)
    trial, _ = claim_next(study)
    storage = study._storage  # noqa: SLF001
    storage.set_trial_user_attr(trial._trial_id, "worker", "elsewhere/4026531836:4242")  # noqa: SLF001
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())  # noqa: SLF001
    # Fresh lease on another machine: alive, whatever its pid means here.
    assert reap_stale(study) == 0
    assert not lease.is_stale(storage.get_trial(trial._trial_id))  # noqa: SLF001
    monkeypatch.setenv("ABLATE_LEASE_SECONDS", "5")
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time() - 6)  # noqa: SLF001
    assert lease.is_stale(storage.get_trial(trial._trial_id))  # noqa: SLF001
    result = ablate("run", str(space_file), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result
    trials = assert_exactly_once("tiny", 4)
    lost = next(t for t in trials if t._trial_id == trial._trial_id)  # noqa: SLF001
    assert lost.state == TrialState.FAIL and "elsewhere" in lost.user_attrs["reaped"]


def test_a_worker_of_this_machine_that_is_gone_is_stale_at_once_and_a_live_one_is_not(write_space):
    space = load_space(write_space(space_text(seeds=1, epochs=1)))
    study = create_or_resume(open_storage(None), space, "tiny", "ablate run", None)
    enqueue_task(study, schedule(space, "tiny")[0])
    trial, _ = claim_next(study)
    storage = study._storage  # noqa: SLF001
    assert not lease.is_stale(storage.get_trial(trial._trial_id))  # noqa: SLF001 - ours, fresh
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    here = lease.worker_id().rpartition(":")[0]
    storage.set_trial_user_attr(trial._trial_id, "worker", f"{here}:{gone}")  # noqa: SLF001
    assert lease.is_stale(storage.get_trial(trial._trial_id))  # noqa: SLF001


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_rerun(ablate, write_space, monkeypatch):
    import ablations.plugins.loops as trial_module  # where a trial builds and trains
    import ablations.study as study_module

    real_fit, stolen = trial_module.fit, []

    def fit_and_lose_the_lease(model, data, cfg, seed):
        for record in real_fit(model, data, cfg, seed):
            if not stolen:  # another worker decides this trial is stale, fails it, queues it again
                study = optuna.load_study(study_name="tiny", storage=open_storage(None))
                real_is_stale, study_module.is_stale = study_module.is_stale, lambda trial: True
                try:
                    stolen.append(reap_stale(study))
                finally:
                    study_module.is_stale = real_is_stale
            yield record

    monkeypatch.setattr(trial_module, "fit", fit_and_lose_the_lease)
    result = ablate("run", str(write_space(space_text(seeds=1, epochs=2))), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result
    assert stolen == [1] and "lost the lease" in result.err
    trials = assert_exactly_once("tiny", 4)
    assert len(trials) == 5 and sum(t.state == TrialState.FAIL for t in trials) == 1


def test_a_worker_killed_while_holding_the_journal_lock_does_not_block_the_others(write_space):
    # A SIGKILL can land while a worker appends to the journal; its lock must not outlive it.
    storage = open_storage(None)
    optuna.create_study(study_name="first", storage=storage)
    holder = os.fork()
    if holder == 0:
        open_storage(None)._backend._lock.acquire()  # noqa: SLF001
        time.sleep(600)
        os._exit(0)
    wait_for("the lock to be taken", lambda: os.path.lexists("runs/ablate.journal.lock"))
    os.kill(holder, signal.SIGKILL)
    os.waitpid(holder, 0)
    optuna.create_study(study_name="second", storage=open_storage(None))  # Optuna frees it after 30 s
    assert {s.study_name for s in optuna.get_all_study_summaries(open_storage(None))} == {"first", "second"}
