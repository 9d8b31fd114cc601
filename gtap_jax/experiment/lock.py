"""One run per workdir at a time: an exclusive lock on ``workdir/.lock``.

The lock is the operating system's (``flock``), so it is released when the
process holding it dies however it dies: a stale lock file from a dead run is
simply taken over. The file names the process holding it, for the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path


class WorkdirBusyError(RuntimeError):
    """Another live run holds the workdir; the message names its process."""


@contextlib.contextmanager
def workdir_lock(workdir: Path):
    """Holds ``workdir/.lock`` for the duration of the ``with`` block.

    Raises:
        WorkdirBusyError: if another process holds it.
    """
    path = workdir / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process that has not written its name yet"
            raise WorkdirBusyError(
                f"workdir {workdir} is in use by another run ({holder}); wait for it to finish or use another"
                " --workdir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["WorkdirBusyError", "workdir_lock"]
