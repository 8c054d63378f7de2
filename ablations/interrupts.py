"""Ctrl-C and SIGTERM stop a worker without breaking the study storage.

Python raises KeyboardInterrupt wherever the main thread happens to be. Inside Optuna's storage
code that is unsafe: the journal file lock, interrupted while waiting, removes the lock another
process holds, and its cleanup can turn the interrupt into an unrelated OSError that a trial then
records as its failure. So a stop that arrives inside the storage is put off: a timer retries it a
moment later, once the storage call has returned, and it is raised there.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

RETRY_SECONDS = 0.05
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STORAGE_CODE = f"{os.sep}optuna{os.sep}storages{os.sep}"


def _inside_storage(frame: FrameType | None) -> bool:
    while frame is not None:
        if _STORAGE_CODE in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _stop(signum: int, frame: FrameType | None) -> None:
    if _inside_storage(frame):
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)  # SIGALRM comes back here
        return
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, but never inside a storage call."""
    if threading.current_thread() is threading.main_thread():
        for signum in (*STOP_SIGNALS, signal.SIGALRM):
            signal.signal(signum, _stop)
