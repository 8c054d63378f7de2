"""Leases on running trials, so a worker that dies (SIGKILL, a lost machine) never holds a cell forever.

A worker that claims a trial writes who it is (`worker`: host, pid namespace, pid) and a
`heartbeat` timestamp into the trial's user attributes, and refreshes the heartbeat from a
background thread while the trial trains. Another worker, or the next `ablate run`, treats a
RUNNING trial as stale when its heartbeat is older than the lease, or at once when its worker ran
on this same machine and that process is gone. This works the same for the journal file (which
has no heartbeat of its own) and for PostgreSQL. Machines' clocks must agree to well within the
lease (NTP does this); the lease is `ABLATE_LEASE_SECONDS`, 120 s by default.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from functools import cache

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

DEFAULT_LEASE_SECONDS = 120.0


def lease_seconds() -> float:
    return float(os.environ.get("ABLATE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


def heartbeat_seconds() -> float:
    """Several beats per lease, so one slow write under load never expires a live trial."""
    return max(0.2, lease_seconds() / 6)


@cache
def _machine() -> str:
    # Containers on one host may share a hostname; their pid namespaces tell them apart.
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}"


def worker_id() -> str:
    return f"{_machine()}:{os.getpid()}"


def _process_gone(worker: str) -> bool:
    """True only when `worker` ran on this machine and its process no longer exists."""
    machine, _, pid = worker.rpartition(":")
    if machine != _machine() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still answers kill(0) but runs nothing."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def is_stale(trial: FrozenTrial, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is known to be gone, or that missed its lease."""
    worker = trial.user_attrs.get("worker")
    if isinstance(worker, str) and _process_gone(worker):
        return True
    beat = trial.user_attrs.get("heartbeat")
    if not isinstance(beat, (int, float)):
        # Claimed by a version without leases, or between the claim and its first beat.
        beat = trial.datetime_start.timestamp() if trial.datetime_start else None
    if beat is None:
        return False
    return (time.time() if now is None else now) - beat > lease_seconds()


class Heartbeat:
    """Context manager: mark `trial_id` as ours and keep its lease fresh until the block ends."""

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_seconds()):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except UpdateFinishedTrialError:
                return  # the trial was told (or failed as stale elsewhere): nothing left to hold
            except Exception:  # noqa: BLE001 - a storage hiccup; the next beat retries
                continue
