"""Trackers: where a trial's live metrics are streamed. W&B is a live view, never the source of
truth: a W&B failure never stops a trial nor makes it wait. After an online failure (an error, or
no answer within `wandb_timeout()`) the process writes its next runs offline, so nothing is lost
(`wandb sync` uploads them), and tries online again at most every RETRY_ONLINE_SECONDS."""

from __future__ import annotations

import logging
import netrc
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("ablations")

WANDB_MODES = ("auto", "online", "offline", "disabled")
DEFAULT_WANDB_TIMEOUT = 15.0
RETRY_ONLINE_SECONDS = 300.0


def wandb_timeout() -> float:
    """The most a trial waits on W&B: `ABLATE_WANDB_TIMEOUT` seconds (W&B's own default is 90)."""
    return float(os.environ.get("ABLATE_WANDB_TIMEOUT", DEFAULT_WANDB_TIMEOUT))


class Tracker(Protocol):
    def start(self, name: str, group: str, config: dict[str, Any]) -> None: ...
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def finish(self, summary: dict[str, Any]) -> str | None: ...


class NullTracker:
    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> str | None:
        return None


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(option: str) -> str:
    """`auto`: WANDB_MODE if set, else online with credentials, else offline."""
    if option != "auto":
        return option
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_wandb_credentials() else "offline"


class Breaker:
    """Shared by a process's W&B trackers: open (write offline) for a while after an online failure."""

    def __init__(self, retry_seconds: float = RETRY_ONLINE_SECONDS) -> None:
        self.retry_seconds = retry_seconds
        self.offline_until = 0.0
        self.trips = 0

    def trip(self, reason: str) -> None:
        if not self.is_open():
            log.warning(
                "W&B is unreachable (%s); the next runs are written offline (upload them with `wandb sync`) "
                "and online is tried again in %.0f min",
                reason,
                self.retry_seconds / 60,
            )
        self.trips += 1
        self.offline_until = time.monotonic() + self.retry_seconds

    def is_open(self) -> bool:
        return time.monotonic() < self.offline_until


class WandbTracker:
    """One W&B run per trial, grouped by study, with the factors as top-level config keys."""

    def __init__(
        self,
        mode: str,
        project: str,
        directory: Path,
        storage: str | None = None,
        timeout: float = DEFAULT_WANDB_TIMEOUT,
        breaker: Breaker | None = None,
        offline_dirs: list[Path] | None = None,
    ) -> None:
        self.mode = mode
        self.storage = storage  # shown masked (see `mask_url`): W&B configs are shared with a team
        self.project = project
        self.directory = directory
        self.timeout = timeout
        self.breaker = breaker or Breaker()
        self.offline_dirs: list[Path] = [] if offline_dirs is None else offline_dirs
        self._run: Any = None
        self._run_mode = mode
        self._requirements_saved = False

    def successor(self) -> WandbTracker:
        """A tracker for the next runs while this one stays stuck in a call that never returned."""
        return WandbTracker(
            self.mode, self.project, self.directory, self.storage, self.timeout, self.breaker, self.offline_dirs
        )

    def gave_up(self) -> None:
        """The trial stopped waiting for this tracker's calls after `timeout` seconds."""
        if self._run_mode == "online":
            self.breaker.trip(f"no answer within {self.timeout:.0f}s")
        else:  # a busy machine or disk; the run is still written, by the thread left behind
            log.warning("W&B took over %.0fs to write a run offline; the trial goes on without waiting", self.timeout)

    def _failed(self, what: str, err: Exception) -> None:
        if self._run_mode == "online":
            self.breaker.trip(f"{what}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        else:
            log.warning(
                "W&B %s failed (%s: %s); the trial goes on, the study keeps its results", what, type(err).__name__, err
            )
        self._run = None

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        mode = "offline" if self.mode == "online" and self.breaker.is_open() else self.mode
        try:
            self._run = self._init(mode, name, group, config)
        except Exception as err:  # noqa: BLE001 - W&B must never stop the sweep
            self._failed("init", err)
            if mode == "online":  # the same run, offline, so that nothing is lost
                self.start(name, group, config)

    def _init(self, mode: str, name: str, group: str, config: dict[str, Any]) -> Any:
        import wandb

        self._run_mode = mode
        self.directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            group=group,
            name=name,
            job_type="trial",
            config={**config, "storage": self.storage} if self.storage else config,
            mode=mode,
            dir=str(self.directory.resolve()),  # the W&B service keeps its own cwd
            # A run left behind by a call that never returned must not be reused or waited for.
            reinit="create_new",
            settings=wandb.Settings(
                console="off",
                silent=True,
                x_disable_stats=True,
                disable_git=True,
                # Inside our own limit, so that W&B gives up (and the run falls back offline)
                # before the trial stops waiting for it.
                init_timeout=self.timeout * 0.75,
                finish_timeout=self.timeout * 0.75,
                # Listing the installed packages reads every package's metadata: ~0.4 s, more
                # than a small trial trains. They cannot change within a process: record once.
                x_save_requirements=not self._requirements_saved,
            ),
        )
        self._requirements_saved = True
        return run

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._run is None:
            return
        try:
            self._run.log(metrics, step=step)
        except Exception as err:  # noqa: BLE001
            self._failed("log", err)

    def finish(self, summary: dict[str, Any]) -> str | None:
        if self._run is None:
            return None
        run, self._run = self._run, None
        try:
            run.summary.update(summary)
            where = run.path if self._run_mode == "online" else str(Path(run.dir).parent.resolve())
            run.finish()
        except Exception as err:  # noqa: BLE001
            self._failed("finish", err)
            return None
        if self._run_mode == "offline":
            self.offline_dirs.append(Path(where))
        return where


class BackgroundTracker:
    """Runs another tracker's calls in order on a thread of their own, so W&B's start-up (~0.1 s)
    and logging overlap with training instead of adding to every trial. Training uses the cores
    torch was given; the thread lives on the one left free (see device.cpu_threads). `finish`
    waits for everything queued before it, so a trial's run is complete when the trial is; but
    never longer than the tracker's timeout: a thread stuck in W&B is left behind with its calls,
    and the next trials get a fresh thread and tracker (offline for a while, see Breaker)."""

    def __init__(self, inner: WandbTracker) -> None:
        self.inner = inner
        self._calls = self._start_thread(inner)

    @staticmethod
    def _start_thread(inner: WandbTracker) -> queue.Queue[tuple[Any, tuple[Any, ...], queue.Queue[Any] | None]]:
        calls: queue.Queue[tuple[Any, tuple[Any, ...], queue.Queue[Any] | None]] = queue.Queue()
        threading.Thread(target=BackgroundTracker._work, args=(calls,), name="tracker", daemon=True).start()
        return calls

    @staticmethod
    def _work(calls: queue.Queue[tuple[Any, tuple[Any, ...], queue.Queue[Any] | None]]) -> None:
        while True:
            call, args, reply = calls.get()
            try:
                result = call(*args)
            except Exception as err:  # noqa: BLE001 - the inner tracker already warns; this is a bug guard
                log.warning("tracker call failed (%s: %s)", type(err).__name__, err)
                result = None
            if reply is not None:
                reply.put(result)

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        self._calls.put((self.inner.start, (name, group, config), None))

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._calls.put((self.inner.log, (dict(metrics), step), None))

    def finish(self, summary: dict[str, Any]) -> str | None:
        reply: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._calls.put((self.inner.finish, (summary,), reply))
        try:
            return reply.get(timeout=self.inner.timeout)
        except queue.Empty:
            stuck = self.inner
            stuck.gave_up()
            self.inner = stuck.successor()
            self._calls = self._start_thread(self.inner)
            return None


def make_tracker(option: str, project: str, directory: Path, storage: str | None = None) -> Tracker | BackgroundTracker:
    """`storage` names the study's storage in each run's config; pass it masked. We never pass
    an API key: W&B reads its own login (`wandb login`, WANDB_API_KEY) and we write none."""
    mode = resolve_wandb_mode(option)
    if mode == "disabled":
        return NullTracker()
    if mode == "online":
        # W&B's own error reports to its servers are flushed when the process exits, with probes
        # that ignore init_timeout: ~20 s per process during an outage. WANDB_ERROR_REPORTING=true
        # turns them back on.
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    return BackgroundTracker(WandbTracker(mode, project, directory, storage, timeout=wandb_timeout()))
