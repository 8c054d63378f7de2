"""Script mode, the suite's side: run a space's `program` once per trial as a subprocess and turn
what it reports (`ablations.report(step, **metrics)`, see ablations.client) into per-epoch
records, the same contract as the built-in loop.

`program_records` is a generator: each report becomes one `{"epoch": step, **metrics}` record,
and the script's `report()` call stays blocked until the consumer asks for the next record
(the answer is then "go on") or closes the generator (the answer is "stop": pruned or
diverged). A script that does not exit within the grace period gets SIGTERM, then SIGKILL, sent
to its whole process group so that forked data-loader workers end too. The script dies with the
worker process that runs it (PR_SET_PDEATHSIG on Linux), so a SIGKILLed worker leaves nothing
behind. A non-zero exit, or death by a signal, raises ProgramError with the tail of stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablations.client import CHANNEL_ENV, CONFIG_ENV
from ablations.errors import ConfigError

KILL_WAIT_SECONDS = 5.0  # after SIGTERM, before SIGKILL
POLL_SECONDS = 0.2  # how often a waiting worker looks whether the script is still alive
STDERR_TAIL_LINES = 15
PR_SET_PDEATHSIG = 1


class ProgramError(Exception):
    """The script failed: a non-zero exit, a signal, or reports the suite cannot use."""


def program_env(device: str, threads: int) -> dict[str, str]:
    """The worker's device and CPU thread budget, in the variables frameworks read."""
    env = dict(os.environ)
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        # cuda:N of this worker is the N-th of the GPUs this worker sees.
        env["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
        env["ABLATE_DEVICE"] = "cuda"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker's script must not take a GPU
        env["ABLATE_DEVICE"] = "cpu"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"  # the log shows where the script is, even when it is killed
    return env


def resolve_command(command: list[str]) -> list[str]:
    """`python ...` runs under the Python that runs `ablate` (its virtual environment), whatever
    PATH says; any other command is looked up on PATH, relative paths from the current folder."""
    if command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return list(command)


def check_program(command: list[str], source: Path | str) -> None:
    """Bad input before anything is queued: a command that is not there, or a Python script
    that is not there (relative paths are read from the current folder, as the trials will)."""
    resolved = resolve_command(command)
    if shutil.which(resolved[0]) is None:
        raise ConfigError(f"{source}: program: {command[0]!r} is not an executable on PATH nor a path to one")
    if resolved[0] == sys.executable and len(resolved) > 1 and resolved[1].endswith(".py"):
        script = Path(resolved[1])
        if not script.is_file():
            raise ConfigError(
                f"{source}: program: no script {script} in {Path.cwd()}; relative paths are read from the folder "
                "`ablate run` starts in: run it from there or give an absolute path"
            )


def program_records(
    command: list[str],
    config: dict[str, Any],
    metric: str,
    log_stem: Path,
    device: str = "cpu",
    threads: int = 1,
    grace_seconds: float = 10.0,
) -> Iterator[dict[str, float]]:
    """Run `command` with `config` and yield one record per report; see the module docstring.
    stdout and stderr go to `log_stem`.out and .err."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ablate-") as folder:
        config_path, channel_path = Path(folder) / "config.json", Path(folder) / "channel"
        config_path.write_text(json.dumps(config))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(channel_path))
        listener.listen(1)
        env = program_env(device, threads) | {CONFIG_ENV: str(config_path), CHANNEL_ENV: str(channel_path)}
        err_path = log_stem.with_suffix(".err")
        with log_stem.with_suffix(".out").open("wb") as out, err_path.open("wb") as err:
            process = _start(resolve_command(command), env, out, err)
            channel: _Reports | None = None
            try:
                conn = _accept(listener, process)
                listener.close()  # one connection per trial: a second process cannot take it over
                if conn is not None:
                    channel = _Reports(conn, process)
                    for step, metrics in channel:
                        if metric not in metrics:
                            raise ProgramError(
                                f"report(step={step}) has no {metric!r} (the space's objective.metric); it "
                                f"reported: {', '.join(metrics) or 'nothing'}"
                            )
                        yield {"epoch": step, **metrics}
                        channel.answer(stop=False)
                code = process.wait()
                if code != 0:
                    raise ProgramError(_describe_exit(code, err_path))
                if channel is None or not channel.count:
                    raise ProgramError(
                        f"the program exited 0 without a report; call ablations.report(step, {metric}=...) "
                        "after each epoch"
                    )
            except BaseException as stop:  # closed (pruned, diverged), interrupted, or failed
                reason = str(stop) if isinstance(stop, ProgramError) else None
                # Pruned, diverged or failed: the script may finish its step; interrupted: stop now.
                asked = isinstance(stop, (GeneratorExit, ProgramError))
                _end(process, channel, grace_seconds if asked else 0.0, reason)
                raise
            finally:
                listener.close()
                if channel is not None:
                    channel.close()
                _kill_group(process, signal.SIGKILL)  # stragglers: forked children of a finished script


def _start(command: list[str], env: dict[str, str], out: Any, err: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,  # its own process group: one signal reaches its forked workers
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    except OSError as error:
        raise ProgramError(f"cannot start {' '.join(command)!r}: {error}") from None


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child before exec: the kernel SIGKILLs it when the worker that started it dies."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _accept(listener: socket.socket, process: subprocess.Popen[bytes]) -> socket.socket | None:
    """The script's connection, made at its first report; None if it exits without one."""
    while True:
        ready, _, _ = select.select([listener], [], [], POLL_SECONDS)
        if ready:
            return listener.accept()[0]
        if process.poll() is not None:
            return None


class _Reports:
    """The script's reports as (step, metrics), until it closes the channel or exits."""

    def __init__(self, conn: socket.socket, process: subprocess.Popen[bytes]) -> None:
        self.conn, self.process = conn, process
        self.buffer = b""
        self.pending = False  # a report waits for its answer
        self.count = 0

    def __iter__(self) -> Iterator[tuple[int, dict[str, float]]]:
        while (line := self._line()) is not None:
            message = json.loads(line)
            self.pending = True
            self.count += 1
            yield int(message["step"]), {str(k): float(v) for k, v in message["metrics"].items()}

    def _line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.conn], [], [], POLL_SECONDS)
            if not ready:
                # The socket may outlive the script in its forked children: watch the script too.
                if self.process.poll() is not None:
                    return None
                continue
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def answer(self, stop: bool, error: str | None = None) -> None:
        if not self.pending:
            return
        self.pending = False
        with contextlib.suppress(OSError):  # the script is gone already
            self.conn.sendall((json.dumps({"stop": stop, "error": error}) + "\n").encode())

    def close(self) -> None:
        self.conn.close()


def _end(process: subprocess.Popen[bytes], channel: _Reports | None, grace: float, error: str | None) -> None:
    """Tell a script that waits on its report to stop, give it `grace` seconds, then insist."""
    if channel is not None:
        channel.answer(stop=True, error=error)
    for signum, wait in ((None, grace), (signal.SIGTERM, KILL_WAIT_SECONDS), (signal.SIGKILL, None)):
        if signum is not None:
            _kill_group(process, signum)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _describe_exit(code: int, err_path: Path) -> str:
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    tail = _tail(err_path)
    return f"the program {how} (log: {err_path})" + (f"; stderr ends with:\n{tail}" if tail else "; stderr is empty")


def _tail(path: Path, lines: int = STDERR_TAIL_LINES, max_bytes: int = 8192) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - max_bytes))
        text = file.read().decode(errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])
