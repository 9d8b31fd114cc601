"""Where and in what chunks coalitions are evaluated: the mesh and the chunk size, decided once.

``mesh=None`` means :func:`default_mesh`: every device of every process when
there is more than one (after :func:`gtap_jax.engine.distributed.initialize`,
that spans hosts), else plain ``jit`` on the one device. :func:`make_plan`
takes that decision and the chunk size once; every evaluating function
(``evaluate_coalitions``, ``estimate``, ``exact``, ``uncertainty_bands``, the
strategies' attribute functions) takes it as ``plan=``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from gtap_jax.engine.memory import DEFAULT_CHUNK_SIZE, max_chunk_size
from gtap_jax.shapes import ValueFn

COALITION_AXIS = "coalitions"

# Below this many coalitions a call does not measure the game's memory footprint
# (which compiles two probe chunks): the chunk is small anyway.
SMALL_CALL = 16


def coalition_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (``"coalitions"``) over ``devices``; default: every device of every process.

    ``coalition_mesh(jax.local_devices()[:1])`` keeps evaluation on one device
    where the default would use them all.

    Raises:
        ValueError: if ``devices`` is empty.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("a mesh needs at least one device")
    return Mesh(np.array(devices), (COALITION_AXIS,))


def default_mesh() -> Mesh | None:
    """The mesh used when none is given: all devices if there are several, else None (one device)."""
    return coalition_mesh() if jax.device_count() > 1 else None


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class Plan(NamedTuple):
    """Where and in what chunks coalitions are evaluated, decided once by :func:`make_plan`.

    Attributes:
        mesh: the resolved mesh (None: one device, plain ``jit``).
        limit: the largest chunk, a multiple of the mesh size.
        fixed: True when the caller fixed the chunk size: every call uses ``limit``.
    """

    mesh: Mesh | None
    limit: int
    fixed: bool = False

    @property
    def shards(self) -> int:
        """Devices the coalition axis is split over."""
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    def chunk(self, num_coalitions: int) -> int:
        """The fixed chunk size for ``num_coalitions`` coalitions.

        Without a fixed size, small batches use the next power of two (so
        repeated small calls share a handful of compiled shapes) and large ones
        ``limit``; always a multiple of the mesh size.
        """
        if self.fixed:
            return self.limit
        size = min(self.limit, 1 << max(0, math.ceil(math.log2(max(num_coalitions, 1)))))
        return _round_up(size, self.shards)

    def draws_per_call(self, num_draws: int, draw_size: int, *, whole_draws: bool = False) -> int:
        """Draws of ``draw_size`` coalitions per compiled call: about one chunk of coalitions, split evenly
        over the mesh (``whole_draws``: the mesh splits the draws themselves, as chains and stars are valued)."""
        b = max(1, self.chunk(num_draws * draw_size) // draw_size)
        step = self.shards if whole_draws else self.shards // math.gcd(draw_size, self.shards)
        return _round_up(b, step)


def make_plan(
    value_fn: ValueFn | None = None,
    num_players: int | None = None,
    *,
    num_coalitions: int | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
) -> Plan:
    """Decides the mesh and the chunk size once, for one call or for many.

    Pass the result as ``plan=`` to any evaluating function to reuse one
    decision over many calls (the experiment and ``by_estimate`` do, so the
    sub-games of a strategy do not re-measure memory). A function given no
    plan makes one for its own call.

    Args:
        value_fn, num_players: the game, whose per-coalition memory footprint
            bounds the chunk (:func:`~gtap_jax.engine.memory.max_chunk_size`)
            when ``chunk_size`` is None.
        num_coalitions: the size of the call, if known; calls of at most
            ``SMALL_CALL`` coalitions skip the footprint measurement.
        chunk_size: a fixed chunk (rounded up to a multiple of the mesh size).
        mesh: default :func:`default_mesh`; ``coalition_mesh(devices)`` picks devices.

    Raises:
        ValueError: if ``chunk_size`` is not positive.
    """
    mesh = default_mesh() if mesh is None else mesh
    shards = 1 if mesh is None else int(mesh.devices.size)
    if chunk_size is not None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        return Plan(mesh, _round_up(chunk_size, shards), fixed=True)
    if value_fn is None or (num_coalitions is not None and num_coalitions <= SMALL_CALL):
        return Plan(mesh, DEFAULT_CHUNK_SIZE)
    return Plan(mesh, max_chunk_size(value_fn, num_players, mesh))


__all__ = ["COALITION_AXIS", "SMALL_CALL", "Plan", "coalition_mesh", "default_mesh", "make_plan"]
