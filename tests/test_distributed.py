"""Multi-host: two CPU processes on localhost (two simulated devices each) agree with one process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from gtap_jax import engine
from gtap_jax.engine import distributed

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    coordinator = f"localhost:{_free_port()}"
    worker = Path(__file__).parent / "distributed_worker.py"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), coordinator, str(i), str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a worker process hung")
        assert proc.returncode == 0, out[-3000:]

    # One process, its four simulated devices as the default mesh: the same four-way split.
    assert engine.make_plan().shards == 4
    want = distributed_worker.compute()
    for i in range(2):
        got = np.load(tmp_path / f"process{i}.npz")
        assert set(got.files) == set(want)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-7, err_msg=f"process {i}: {name}")


def test_initialize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="process_id"):
        distributed.initialize("localhost:1", 2, 2)
    with pytest.raises(ValueError, match="num_processes"):
        distributed.initialize("localhost:1", 0, 0)
    with pytest.raises(ValueError, match="cpu_devices"):
        distributed.initialize("localhost:1", 1, 0, cpu_devices=0)
    assert distributed.is_main_process() and jax.process_count() == 1
