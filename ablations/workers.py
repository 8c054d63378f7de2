"""`ablate run --workers N`: N local `ablate worker` processes pulling cells from one study.

Each worker is a separate process (its own torch thread pool, its own W&B run per trial), in its
own session so that Ctrl-C reaches only this supervisor, which stops them once and in order. The
supervisor trains nothing: it watches the study storage and shows one progress display for the
whole sweep, counting trials finished by any worker (on this machine or another). Its workers
stop when it dies, however it dies (see `follow_supervisor`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from ablations.progress import SweepDisplay
from ablations.study import reap_stale, task_of
from ablations.trial import TrialResult

STOP_GRACE_SECONDS = 60.0  # a worker told to stop finishes writing its trial's state first
SUPERVISOR_VARIABLE = "ABLATE_SUPERVISOR_PID"  # set only for the workers `ablate run --workers` starts
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class WorkerProcess:
    index: int
    device: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    log_start: int = 0  # the log is appended to by every run: this run's part begins here

    @property
    def label(self) -> str:
        return f"worker {self.index} (pid {self.process.pid}, {self.device})"

    def said(self, text: str) -> bool:
        """Whether this run's part of the worker's log holds `text`."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return text.encode() in log.read()


def worker_devices(device: str, workers: int) -> list[str]:
    """One device per worker: `auto`/`cuda` spread the workers round-robin over every visible
    GPU (several per GPU when there are more workers than GPUs); anything else is used as given."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device in ("auto", "cuda") and gpus:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [("cpu" if device == "auto" else device)] * workers


def start_workers(
    study_name: str,
    storage_url: str | None,
    devices: list[str],
    threads: int,
    wandb_mode: str,
    wandb_project: str | None,
    log_dir: Path,
) -> list[WorkerProcess]:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The storage URL may hold a password: pass it in the environment, never on a command line
    # that `ps` shows to every user of the machine.
    env.pop("ABLATE_STORAGE", None)
    if storage_url is not None:
        env["ABLATE_STORAGE"] = storage_url
    if wandb_project:
        env["WANDB_PROJECT"] = wandb_project
    env[SUPERVISOR_VARIABLE] = str(os.getpid())
    started = []
    for index, device in enumerate(devices, start=1):
        command = [sys.executable, "-m", "ablations.cli", "worker", "--study", study_name]
        command += ["--device", device, "--threads", str(threads), "--wandb", wandb_mode]
        log_path = log_dir / f"worker-{index}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        started.append(WorkerProcess(index, device, process, log_path, log, log.tell()))
    return started


def follow_supervisor() -> None:
    """In a worker that `ablate run --workers` started: stop as on SIGTERM (the running trial is
    marked interrupted and run again) when the supervisor dies, SIGKILL included, rather than go
    on unseen and oversubscribe the cores of the next `ablate run`. A worker started on its own
    (`ablate worker`) has no supervisor and is left alone."""
    supervisor = os.environ.pop(SUPERVISOR_VARIABLE, "")
    if not supervisor.isdigit():
        return
    if _signal_me_when_my_parent_dies(signal.SIGTERM):
        if os.getppid() != int(supervisor):  # it died before the kernel was asked to tell us
            os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_watch_parent, args=(int(supervisor),), name="supervisor", daemon=True).start()


def _signal_me_when_my_parent_dies(signum: int) -> bool:
    """Linux's PR_SET_PDEATHSIG; it survives exec and needs no thread. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(supervisor: int, poll_seconds: float = 1.0) -> None:
    """Elsewhere: a dead parent's children are adopted by another process; notice it once."""
    while os.getppid() == supervisor:
        time.sleep(poll_seconds)
    os.kill(os.getpid(), signal.SIGTERM)


def result_of(trial: FrozenTrial) -> TrialResult:
    """What the display shows for a trial some worker finished, read back from the storage."""
    attrs = trial.user_attrs
    if "reaped" in attrs and "outcome" not in attrs:
        outcome, error = "lost", f"{attrs['reaped']}; queued again"
    else:
        outcome, error = str(attrs.get("outcome", "failed")), attrs.get("error")
    epochs = int(attrs.get("epochs_run", 0))
    return TrialResult(task_of(trial), outcome, epochs, attrs.get("objective"), attrs.get("test_acc"), error)


class SupervisorDisplay(SweepDisplay):
    """The sweep display, fed from the storage instead of from a trial run in this process."""

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def running(self, trials: int, workers: int) -> None:
        self.progress.update(self.bar, description=self._status(f"running {trials} on {workers} worker(s)"))


class Supervisor:
    """Runs the workers to the end (or until interrupted) and feeds the display from the study."""

    def __init__(self, study: optuna.Study, workers: list[WorkerProcess], display: SupervisorDisplay) -> None:
        self.study = study
        self.workers = workers
        self.display = display
        finished = self._finished_trials()
        self.seen = {t._trial_id for t in finished}  # noqa: SLF001
        self.lost = 0
        self.ended: dict[int, int] = {}

    def _finished_trials(self) -> list[FrozenTrial]:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return self.study._storage.get_all_trials(self.study._study_id, deepcopy=False, states=states)  # noqa: SLF001

    def poll(self) -> None:
        for trial in self._finished_trials():
            if trial._trial_id in self.seen or "key" not in trial.user_attrs:  # noqa: SLF001
                continue
            self.seen.add(trial._trial_id)  # noqa: SLF001
            if trial.user_attrs.get("outcome") == "duplicate":
                continue  # a second queued copy of a finished task, closed unrun
            result = result_of(trial)
            if result.outcome == "lost":
                self.lost += 1
                self.display.note(f"lost     {result.task.label}  ({result.error})")
            else:
                self.display.finished(result)
        running = self.study._storage.get_all_trials(  # noqa: SLF001
            self.study._study_id,  # noqa: SLF001
            deepcopy=False,
            states=(TrialState.RUNNING,),
        )
        alive = sum(w.process.poll() is None for w in self.workers)
        self.display.running(len(running), alive)

    def wait(self, poll_seconds: float = 1.0) -> dict[int, int]:
        """Until every worker has exited; returns their exit codes by worker index."""
        try:
            while len(self.ended) < len(self.workers):
                time.sleep(poll_seconds)
                self._collect()
                self.poll()
            # A worker that died took no part in the end game: fail its trial so the next run
            # (or another machine's worker) runs that cell again.
            if reap_stale(self.study):
                self.poll()
            self._note_offline_wandb()
        finally:
            for worker in self.workers:
                worker.log.close()
        return self.ended

    def _note_offline_wandb(self) -> None:
        """Workers that found W&B unreachable wrote their runs offline (see tracking.Breaker)."""
        offline = [str(w.index) for w in self.workers if w.said("W&B is unreachable")]
        if offline:
            self.display.note(
                f"W&B was unreachable from worker(s) {', '.join(offline)}: their runs were written offline; "
                "to upload them: wandb sync runs/wandb/offline-run-*"
            )

    def _collect(self) -> None:
        for worker in self.workers:
            code = worker.process.poll()
            if code is None or worker.index in self.ended:
                continue
            self.ended[worker.index] = code
            if code < 0:
                self.display.note(
                    f"{worker.label} was killed by {signal.Signals(-code).name}; its trial is queued again "
                    f"and run by another worker (log: {worker.log_path})"
                )
            elif code not in (0, 1):
                self.display.note(f"{worker.label} exited with code {code}; see {worker.log_path}")

    def stop(self) -> None:
        """Ctrl-C or SIGTERM on the supervisor: tell every worker once, wait, then insist."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.log.close()
        reap_stale(self.study)  # a worker that had to be killed left its trial RUNNING: free it
