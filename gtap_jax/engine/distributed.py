"""Multi-host runs: one Python process per host, the coalition axis over every host's devices.

JAX runs multi-host programs as one controller per host (SPMD): every process
runs the same script. After :func:`initialize`, ``jax.devices()`` lists the
devices of all processes, so the engine's default mesh
(:func:`gtap_jax.engine.plan.default_mesh`) spans them. Each process draws the same
coalitions (same key), evaluates only its own devices' slice, and receives
every value back, so every process ends with the same indices and masks.

The value function must be the same on every process: the same trained
parameters and evaluation data (load a checkpoint, do not train separately
per host). Write results from one process (:func:`is_main_process`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import Mesh

from gtap_jax.engine.plan import coalition_mesh


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    cpu_devices: int | None = None,
    timeout_s: int = 300,
) -> Mesh:
    """Joins this process to a multi-host run and returns the mesh over every process's devices.

    On TPU pods and on GPU clusters under SLURM, Open MPI or Kubernetes, call
    it with no arguments: JAX finds the coordinator and the process numbers
    in the environment (or in ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``). Elsewhere, for example several CPU processes on
    one machine, give all three. Call it before any other JAX work.

    Args:
        coordinator_address: ``"host:port"`` of process 0's coordinator service.
        num_processes: number of processes in the run.
        process_id: this process's number, ``0 <= process_id < num_processes``.
        local_device_ids: the local devices this process uses (default: all).
        cpu_devices: on CPU, how many devices this process simulates.
        timeout_s: how long to wait for every process to join.

    Returns:
        The one-axis coalition mesh over ``jax.devices()`` (all processes).

    Raises:
        ValueError: for a process number outside ``[0, num_processes)`` or a
            non-positive ``num_processes`` or ``cpu_devices``.
        RuntimeError: if this process already joined a run.
    """
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be positive, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    if cpu_devices is not None:
        if cpu_devices < 1:
            raise ValueError(f"cpu_devices must be positive, got {cpu_devices}")
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    if jax.distributed.is_initialized():
        raise RuntimeError("jax.distributed is already initialized in this process")
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=local_device_ids,
        initialization_timeout=timeout_s,
    )
    return coalition_mesh()


def is_main_process() -> bool:
    """True in the process that should write results (process 0)."""
    return jax.process_index() == 0


__all__ = ["initialize", "is_main_process"]
