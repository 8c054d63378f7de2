"""Script mode, the script's side: `ablations.config()` and `ablations.report()`.

A training script run by `ablate run` (a space with `program:`) reads its trial's config and
reports its metrics through these two calls; run on its own, the same script gets its defaults
and reports go nowhere. Standard library only, so `import ablations` stays light in any script.

The suite passes two paths in the environment: a JSON file with the trial's config, and a
Unix-domain socket on which each report is one JSON line answered by one JSON line. Nothing is
read from the script's stdout, so a script may print what it likes.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

CONFIG_ENV = "ABLATE_CONFIG"
CHANNEL_ENV = "ABLATE_CHANNEL"

# The process that imported us first; a process forked from it (a data-loader worker) inherits
# this value and the channel's socket, and must not write to it: two writers would interleave.
_MAIN_PID = os.getpid()


def in_sweep() -> bool:
    """Whether this process runs as a trial of `ablate run`."""
    return bool(os.environ.get(CHANNEL_ENV))


def config(defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trial's config: every section of the space's YAML with the cell's levels filled in,
    plus `seed`, `trial_id` and `study`, laid over (a copy of) `defaults`. Outside a sweep: a
    copy of `defaults` (or {})."""
    merged = copy.deepcopy(defaults) if defaults else {}
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return merged
    with open(path, encoding="utf-8") as file:
        _merge(merged, json.load(file))
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def report(step: int, **metrics: float) -> bool:
    """Report the metrics of one evaluation step (an epoch, 1-based). Returns True when the trial
    is pruned: stop training and exit (exit code 0); the suite ends a script that does not stop
    within the space's `program_grace_seconds`. Outside a sweep: does nothing, returns False.
    Thread-safe; refused in a process forked from the script (a data-loader worker)."""
    if not in_sweep():
        return False
    if os.getpid() != _MAIN_PID:
        raise RuntimeError(
            f"ablations.report() called in process {os.getpid()}, forked from the training script "
            f"(pid {_MAIN_PID}); report from the script's main process only"
        )
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"ablations.report(step={step!r}): the step must be an int (the epoch, 1-based)")
    values = {}
    for name, value in metrics.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"ablations.report(): {name}={value!r} is not a number") from None
    return _channel().send(step, values)


class _Channel:
    """One connection per trial, one report at a time (a lock: a script may report from threads)."""

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()
        self.stopped = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as err:
            raise RuntimeError(
                f"ablations.report(): cannot reach the ablate worker at {path} ({err}); another process of this "
                "trial may have connected first: report from the script's main process only"
            ) from None
        self.replies = self.sock.makefile("rb")

    def send(self, step: int, metrics: dict[str, float]) -> bool:
        with self.lock:
            if self.stopped:  # pruned already: keep saying so, without asking again
                return True
            line = json.dumps({"step": step, "metrics": metrics}, allow_nan=True) + "\n"
            try:
                self.sock.sendall(line.encode())
                reply = self.replies.readline()
            except OSError:
                reply = b""
            if not reply:
                # The worker that runs this trial is gone (killed): nobody records this run.
                raise SystemExit("ablations.report(): the ablate worker running this trial is gone; stopping")
            answer = json.loads(reply)
            self.stopped = bool(answer.get("stop"))
            if answer.get("error"):
                raise ValueError(answer["error"])
            return self.stopped


_open: _Channel | None = None
_open_lock = threading.Lock()


def _channel() -> _Channel:
    global _open
    with _open_lock:
        if _open is None:
            _open = _Channel(os.environ[CHANNEL_ENV])
        return _open


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Make the module `name` callable as `function`. `ablations.config` and `ablations.report`
    are the script API's functions and also submodules of the suite (ablations/config.py,
    ablations/report/); importing a submodule makes it the package's attribute in place of the
    function, so the submodule itself must answer the call."""
    module = sys.modules[name]
    module.__class__ = type("CallableModule", (type(module),), {"__call__": staticmethod(function)})
