"""The workdir: each finished step of a run is one JSON file, written atomically, and one run holds it at a time.

A record carries the hash of the config that made it and a checksum of its
content; a record that is damaged (truncated, emptied, edited) or that another
config wrote is recomputed, with a warning naming it.

The lock (:func:`workdir_lock`, on ``workdir/.lock``) is the operating system's
(``flock``), so it is released when the process holding it dies however it dies:
a stale lock file from a dead run is simply taken over. The file names the
process holding it, for the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("gtap_jax")


def _canonical(record: Any) -> str:
    return json.dumps(record, sort_keys=True, default=_jsonable)


def _checksum(record: Any) -> str:
    return hashlib.sha256(_canonical(record).encode()).hexdigest()


class Steps:
    """Finished steps of a run under ``workdir/steps/``; a valid record there is never recomputed.

    Args:
        workdir: the run's folder.
        config_hash: the hash of the config (``validation.config_hash``); records
            of another config are recomputed.
    """

    def __init__(self, workdir: Path, config_hash: str = ""):
        self.dir = workdir / "steps"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_hash = config_hash

    def _path(self, step: str) -> Path:
        return self.dir / (step.replace("/", "__") + ".json")

    def get(self, step: str) -> Any | None:
        """The record of ``step``, or None if it is missing, damaged or another config's (with a warning)."""
        path = self._path(step)
        if not path.exists():
            return None
        try:
            stored = json.loads(path.read_text())
            record, problem = stored["record"], None
            if stored.get("config") != self.config_hash:
                problem = "written by another config"
            elif stored.get("sha256") != _checksum(record):
                problem = "its checksum does not match its content"
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            problem = f"unreadable ({type(e).__name__})"
        if problem:
            log.warning("step %s: the record %s is %s; recomputing it", step, path, problem)
            return None
        return record

    def put(self, step: str, record: Any) -> Any:
        """Records ``step``; returns the record as it will read back (JSON types)."""
        record = json.loads(_canonical(record))
        write_json(self._path(step), {"config": self.config_hash, "sha256": _checksum(record), "record": record})
        return record

    def run(self, step: str, fn: Callable[[], Any]) -> Any:
        """The recorded result of ``step``, computing and recording it if missing."""
        done = self.get(step)
        if done is not None:
            log.debug("skip %s (done)", step)
            return done
        t0 = time.perf_counter()
        record = fn()
        log.info("done %s (%.1f s)", step, time.perf_counter() - t0)
        return self.put(step, record)


def write_json(path: Path, obj: Any) -> None:
    """Writes ``obj`` as JSON atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


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


__all__ = ["Steps", "WorkdirBusyError", "workdir_lock", "write_json"]
