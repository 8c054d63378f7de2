"""Trackers: where a trial's live metrics are streamed. W&B is a live view, never the source of
truth: any W&B failure is warned about once per trial and the sweep goes on without it."""

from __future__ import annotations

import logging
import netrc
import os
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
                settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True),
            )
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


def make_tracker(option: str, project: str, directory: Path, storage: str | None = None) -> Tracker | WandbTracker:
    """`storage` names the study's storage in each run's config; pass it masked. We never pass
    an API key: W&B reads its own login (`wandb login`, WANDB_API_KEY) and we write none."""
    mode = resolve_wandb_mode(option)
    if mode == "disabled":
        return NullTracker()
    return WandbTracker(mode, project, directory, storage)
