"""A W&B outage costs one bounded timeout, not one per trial, and loses no run: after the first
online failure the process writes its runs offline (`wandb sync` uploads them later). The server
is a loopback port that refuses connections, or one that accepts them and never answers."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from ablations import tracking
from tests.workers_helpers import assert_exactly_once, finish, space_text, start

TIMEOUT = 4.0  # ABLATE_WANDB_TIMEOUT for these tests
# What an outage may add beyond the one timeout: W&B's import and service start-up, its shutdown,
# and the offline runs' own writing (all measured at 2-5 s on a busy 2-core machine).
SLACK = 12.0
SWEEP = space_text(seeds=1, epochs=3)  # 4 trials


@pytest.fixture
def refusing() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


@pytest.fixture
def black_hole() -> Iterator[str]:
    """Accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def timed_sweep(folder: Path, space: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, str, str]:
    folder.mkdir(exist_ok=True)
    (folder / "space.yaml").write_text(space)
    began = time.monotonic()
    code, out, err = finish(start("run", "space.yaml", "--no-report", *args, cwd=folder, env=env))
    assert code == 0, out + err
    return time.monotonic() - began, out, err


@pytest.fixture(scope="module")
def disabled_seconds(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The same sweep with W&B disabled: what an outage is compared with."""
    return timed_sweep(tmp_path_factory.mktemp("disabled"), SWEEP, "--wandb", "disabled")[0]


@pytest.mark.parametrize("server", ["refusing", "black_hole"])
def test_an_unreachable_wandb_costs_one_bounded_timeout_and_every_run_is_kept_offline(
    tmp_path, server, request, monkeypatch, disabled_seconds
):
    url = request.getfixturevalue(server)
    env = {
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": url,
        "WANDB_API_KEY": "f" * 40,  # a key, so that W&B really tries to go online
        "ABLATE_WANDB_TIMEOUT": str(TIMEOUT),
    }
    outage, out, err = timed_sweep(tmp_path / "outage", SWEEP, "--wandb", "online", env=env)

    runs = tmp_path / "outage" / "runs" / "wandb"
    assert len(list(runs.glob("run-*"))) == 1, "one online attempt, then offline for the rest of the sweep"
    assert err.count("W&B is unreachable") == 1, err
    offline = sorted(runs.glob("offline-run-*"))
    assert len(offline) == 4 and all(list(d.glob("run-*.wandb")) for d in offline)
    monkeypatch.chdir(tmp_path / "outage")
    trials = assert_exactly_once("tiny", 4)
    assert {Path(t.user_attrs["wandb_run"]) for t in trials if t.state == TrialState.COMPLETE} == set(offline)
    assert f"wandb sync {Path('runs') / 'wandb'}/offline-run-*" in out
    assert outage < 1.5 * disabled_seconds + TIMEOUT + SLACK, (outage, disabled_seconds)


def test_workers_that_find_wandb_unreachable_write_offline_and_the_supervisor_says_how_to_sync(tmp_path, refusing):
    env = {
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": refusing,
        "WANDB_API_KEY": "f" * 40,
        "ABLATE_WANDB_TIMEOUT": str(TIMEOUT),
    }
    space = space_text(seeds=1, epochs=2)
    _, out, _ = timed_sweep(tmp_path / "w", space, "--workers", "2", "--wandb", "online", env=env)
    runs = tmp_path / "w" / "runs" / "wandb"
    assert 1 <= len(list(runs.glob("run-*"))) <= 2  # at most one online attempt per worker process
    assert len(list(runs.glob("offline-run-*"))) == 4
    assert "their runs were written offline; to upload them: wandb sync runs/wandb/offline-run-*" in out


class FakeRun:
    def __init__(self, mode: str, directory: Path, hang: threading.Event | None) -> None:
        self.mode, self.hang = mode, hang
        self.summary: dict[str, object] = {}
        self.path = f"team/project/{id(self)}"
        self.dir = str(directory / f"{mode}-run-{id(self)}" / "files")
        self.logged: list[dict[str, float]] = []

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append(metrics)

    def finish(self) -> None:
        if self.hang is not None:
            self.hang.wait()  # a server that never answers


def test_a_finish_that_hangs_costs_the_trial_one_timeout_then_runs_go_offline_and_online_is_retried_later(
    tmp_path, monkeypatch
):
    import wandb

    never = threading.Event()
    runs: list[FakeRun] = []

    def init(mode: str, **kwargs: object) -> FakeRun:
        runs.append(FakeRun(mode, tmp_path, never if mode == "online" and len(runs) == 0 else None))
        return runs[-1]

    monkeypatch.setattr(wandb, "init", init)
    tracker = tracking.BackgroundTracker(tracking.WandbTracker("online", "p", tmp_path, timeout=0.5))
    first = tracker.inner
    answers: queue.Queue[str | None] = queue.Queue()

    def trial(name: str) -> None:
        tracker.start(name, "g", {})
        tracker.log({"val_loss": 1.0}, step=1)
        answers.put(tracker.finish({"outcome": "complete"}))

    threading.Thread(target=trial, args=("hangs",), daemon=True).start()
    assert answers.get(timeout=30) is None  # the stuck finish would block this trial forever
    assert tracker.inner is not first and first.breaker.is_open()

    trial("offline")
    assert [r.mode for r in runs] == ["online", "offline"] and runs[1].logged == [{"val_loss": 1.0}]
    assert answers.get(timeout=30) == str(Path(runs[1].dir).parent.resolve())
    assert tracker.inner.offline_dirs == [Path(runs[1].dir).parent.resolve()]

    later = time.monotonic() + tracking.RETRY_ONLINE_SECONDS + 1
    monkeypatch.setattr(tracking.time, "monotonic", lambda: later)
    trial("online again")
    assert [r.mode for r in runs] == ["online", "offline", "online"]
    assert answers.get(timeout=30) == runs[2].path
    never.set()


def test_an_offline_sweep_is_never_switched_online_and_a_failed_offline_init_is_only_warned(tmp_path, monkeypatch):
    import wandb

    calls: list[str] = []

    def init(mode: str, **kwargs: object) -> FakeRun:
        calls.append(mode)
        raise OSError("disk full")

    monkeypatch.setattr(wandb, "init", init)
    tracker = tracking.WandbTracker("offline", "p", tmp_path, timeout=0.5)
    tracker.start("a", "g", {})
    assert calls == ["offline"] and tracker.finish({}) is None and not tracker.breaker.is_open()
