"""How many coalitions fit in one chunk: XLA's measured footprint against free device memory."""

from __future__ import annotations

import math
import os
import weakref

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core
from jax.sharding import Mesh

from gtap_jax.shapes import ValueFn

DEFAULT_CHUNK_SIZE = 4096
# Share of a device's free memory that one chunk's temporaries may take.
MEMORY_FRACTION = 0.25
# value_fn -> {num_players: bytes of temporaries per coalition}.
_FOOTPRINT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def free_memory_bytes(device: jax.Device | None = None) -> int:
    """Free memory of ``device`` (default: the first local device).

    Accelerators report it through ``memory_stats()``; CPU devices share the
    host's available physical memory.
    """
    device = jax.local_devices()[0] if device is None else device
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def coalition_footprint(value_fn: ValueFn, num_players: int) -> int:
    """Bytes of device temporaries one coalition adds to a vmapped chunk.

    Measured from XLA's memory analysis of two small compiled chunks (8 and
    16 coalitions), so it accounts for the activations the suffix really
    keeps; at least twice the largest per-coalition intermediate of the traced
    chunk (an operation's input and output), because the CPU backend leaves
    the buffers of library calls such as convolutions out of its analysis (a
    Linen CNN reported 24 kB per coalition where one conv output is 12.5 MB,
    and a 4,096-coalition chunk then failed to allocate). Cached per value
    function. Returns 0 if the backend reports none and nothing is traced.
    """
    try:
        per_fn = _FOOTPRINT_CACHE.setdefault(value_fn, {})
    except TypeError:
        per_fn = {}
    if num_players not in per_fn:
        temps = []
        for k in (8, 16):
            shape = jax.ShapeDtypeStruct((k, num_players), jnp.bool_)
            analysis = jax.jit(jax.vmap(value_fn)).lower(shape).compile().memory_analysis()
            temps.append(getattr(analysis, "temp_size_in_bytes", 0) if analysis is not None else 0)
        largest = [_largest_intermediate(jax.make_jaxpr(jax.vmap(value_fn))(
            jax.ShapeDtypeStruct((k, num_players), jnp.bool_)).jaxpr) for k in (8, 16)]
        per_fn[num_players] = max(0, (temps[1] - temps[0]) // 8, 2 * (largest[1] - largest[0]) // 8)
    return per_fn[num_players]


def _largest_intermediate(jaxpr) -> int:
    """Bytes of the largest output of one equation of ``jaxpr`` or of the jaxprs inside it."""
    best = 0
    for eqn in jaxpr.eqns:
        best = max(best, sum(int(v.aval.size) * v.aval.dtype.itemsize for v in eqn.outvars
                             if hasattr(v.aval, "size") and hasattr(v.aval, "dtype")))
        for sub in jex_core.jaxprs_in_params(eqn.params):
            best = max(best, _largest_intermediate(sub))
    return best


def max_chunk_size(value_fn: ValueFn, num_players: int, mesh: Mesh | None = None) -> int:
    """Largest power-of-two chunk whose temporaries fit in ``MEMORY_FRACTION`` of free memory.

    On a mesh, each device holds ``chunk / devices`` coalitions; CPU devices
    share the host's memory. ``mesh=None`` is one device. Capped at
    ``DEFAULT_CHUNK_SIZE``.
    """
    per = coalition_footprint(value_fn, num_players)
    n = 1 if mesh is None else int(mesh.devices.size)
    first = mesh.local_devices[0] if mesh is not None else jax.local_devices()[0]
    budget = MEMORY_FRACTION * free_memory_bytes(first)
    if first.platform == "cpu":
        budget /= n  # simulated CPU devices share one host memory
    if per <= 0:
        return DEFAULT_CHUNK_SIZE
    per_device = max(1, int(budget // per))
    return max(1, min(DEFAULT_CHUNK_SIZE, n * (1 << int(math.log2(per_device)))))


__all__ = ["DEFAULT_CHUNK_SIZE", "MEMORY_FRACTION", "coalition_footprint", "free_memory_bytes", "max_chunk_size"]
