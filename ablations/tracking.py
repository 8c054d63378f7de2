"""Trackers: where a trial's live metrics are streamed. W&B is a live view, never the source of
truth: any W&B failure is warned about once per trial and the sweep goes on without it."""

from __future__ import annotations

import logging
import netrc
import os
import queue
import threading
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("ablations")

WANDB_MODES = ("auto", "online", "offline", "disabled")


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


class WandbTracker:
    """One W&B run per trial, grouped by study, with the factors as top-level config keys."""

    def __init__(self, mode: str, project: str, directory: Path, storage: str | None = None) -> None:
        self.mode = mode
        self.storage = storage  # shown masked (see `mask_url`): W&B configs are shared with a team
        self.project = project
        self.directory = directory
        self.offline_dirs: list[Path] = []
        self._run: Any = None
        self._requirements_saved = False

    def _failed(self, what: str, err: Exception) -> None:
        log.warning(
            "W&B %s failed (%s: %s); the trial goes on, the study keeps its results", what, type(err).__name__, err
        )
        self._run = None

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        try:
            import wandb

            self.directory.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(
                project=self.project,
                group=group,
                name=name,
                job_type="trial",
                config={**config, "storage": self.storage} if self.storage else config,
                mode=self.mode,
                dir=str(self.directory.resolve()),  # the W&B service keeps its own cwd
                settings=wandb.Settings(
                    console="off",
                    silent=True,
                    x_disable_stats=True,
                    disable_git=True,
                    # Listing the installed packages reads every package's metadata: ~0.4 s, more
                    # than a small trial trains. They cannot change within a process: record once.
                    x_save_requirements=not self._requirements_saved,
                ),
            )
            self._requirements_saved = True
        except Exception as err:  # noqa: BLE001 - W&B must never stop the sweep
            self._failed("init", err)

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
            where = run.path if self.mode == "online" else str(Path(run.dir).parent.resolve())
            run.finish()
        except Exception as err:  # noqa: BLE001
            self._failed("finish", err)
            return None
        if self.mode == "offline":
            self.offline_dirs.append(Path(where))
        return where


class BackgroundTracker:
    """Runs another tracker's calls in order on a thread of their own, so W&B's start-up (~0.1 s)
    and logging overlap with training instead of adding to every trial. Training uses the cores
    torch was given; the thread lives on the one left free (see device.cpu_threads). `finish`
    waits for everything queued before it, so a trial's run is complete when the trial is."""

    def __init__(self, inner: WandbTracker) -> None:
        self.inner = inner
        self._calls: queue.Queue[tuple[Any, tuple[Any, ...], queue.Queue[Any] | None]] = queue.Queue()
        threading.Thread(target=self._work, name="tracker", daemon=True).start()

    def _work(self) -> None:
        while True:
            call, args, reply = self._calls.get()
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
        return reply.get()


def make_tracker(option: str, project: str, directory: Path, storage: str | None = None) -> Tracker | BackgroundTracker:
    """`storage` names the study's storage in each run's config; pass it masked. We never pass
    an API key: W&B reads its own login (`wandb login`, WANDB_API_KEY) and we write none."""
    mode = resolve_wandb_mode(option)
    if mode == "disabled":
        return NullTracker()
    return BackgroundTracker(WandbTracker(mode, project, directory, storage))
