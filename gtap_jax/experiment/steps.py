"""The step store: each finished step of a run is one JSON file, written atomically."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("gtap_jax")


class Steps:
    """Finished steps of a run under ``workdir/steps/``; a step recorded there is never recomputed."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "steps"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, step: str) -> Path:
        return self.dir / (step.replace("/", "__") + ".json")

    def get(self, step: str) -> Any | None:
        path = self._path(step)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, step: str, record: Any) -> Any:
        write_json(self._path(step), record)
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


__all__ = ["Steps", "write_json"]
