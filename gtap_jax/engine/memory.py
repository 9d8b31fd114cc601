"""How many coalitions fit in one chunk: XLA's measured footprint against free device memory (a small game's
traced intermediates alone, where even all of them fit the largest chunk many times over)."""

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
# A chunk whose every traced intermediate, together, takes under 1 / TRACED_MARGIN of the budget is not measured
# (what XLA keeps is at most those, and the copies its layouts add).
TRACED_MARGIN = 16
# value_fn -> {num_players: bytes of temporaries per coalition, ("traced", num_players): traced_footprint}.
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
    per_fn = _cache_of(value_fn)
    if num_players not in per_fn:
        temps = []
        for k in (8, 16):
            shape = jax.ShapeDtypeStruct((k, num_players), jnp.bool_)
            analysis = jax.jit(jax.vmap(value_fn)).lower(shape).compile().memory_analysis()
            temps.append(getattr(analysis, "temp_size_in_bytes", 0) if analysis is not None else 0)
        largest, _ = traced_footprint(value_fn, num_players)
        per_fn[num_players] = max(0, (temps[1] - temps[0]) // 8, 2 * largest)
    return per_fn[num_players]


def traced_footprint(value_fn: ValueFn, num_players: int) -> tuple[int, int]:
    """``(largest, every)``: bytes per coalition of the largest intermediate of a traced vmapped chunk, and of all
    its intermediates together (traced on 8 and 16 coalitions; nothing is compiled). Cached per value function."""
    per_fn = _cache_of(value_fn)
    if ("traced", num_players) not in per_fn:
        sizes = [_intermediates(jax.make_jaxpr(jax.vmap(value_fn))(
            jax.ShapeDtypeStruct((k, num_players), jnp.bool_)).jaxpr) for k in (8, 16)]
        per_fn["traced", num_players] = tuple(max(0, (b - a) // 8) for a, b in zip(*sizes, strict=True))
    return per_fn["traced", num_players]


def _cache_of(value_fn) -> dict:
    try:
        return _FOOTPRINT_CACHE.setdefault(value_fn, {})
    except TypeError:  # not weak-referenceable: measured every time
        return {}


def _intermediates(jaxpr) -> tuple[int, int]:
    """Bytes of the largest output of one equation of ``jaxpr`` (or of the jaxprs inside it), and of all of them."""
    largest = every = 0
    for eqn in jaxpr.eqns:
        out = sum(int(v.aval.size) * v.aval.dtype.itemsize for v in eqn.outvars
                  if hasattr(v.aval, "size") and hasattr(v.aval, "dtype"))
        largest, every = max(largest, out), every + out
        for sub in jex_core.jaxprs_in_params(eqn.params):
            sub_largest, sub_every = _intermediates(sub)
            largest, every = max(largest, sub_largest), every + sub_every
    return largest, every


def max_chunk_size(value_fn: ValueFn, num_players: int, mesh: Mesh | None = None) -> int:
    """Largest power-of-two chunk whose temporaries fit in ``MEMORY_FRACTION`` of free memory.

    On a mesh, each device holds ``chunk / devices`` coalitions; CPU devices
    share the host's memory. ``mesh=None`` is one device. Capped at
    ``DEFAULT_CHUNK_SIZE``. A game whose traced intermediates, all of them
    together for ``DEFAULT_CHUNK_SIZE`` coalitions, take at most
    ``1 / TRACED_MARGIN`` of that memory gets the cap without compiling its
    probe chunks (:func:`coalition_footprint`): the traced pass bounds what a
    chunk keeps.
    """
    n = 1 if mesh is None else int(mesh.devices.size)
    first = mesh.local_devices[0] if mesh is not None else jax.local_devices()[0]
    budget = MEMORY_FRACTION * free_memory_bytes(first)
    if first.platform == "cpu":
        budget /= n  # simulated CPU devices share one host memory
    if TRACED_MARGIN * DEFAULT_CHUNK_SIZE * traced_footprint(value_fn, num_players)[1] <= budget:
        return DEFAULT_CHUNK_SIZE  # a small game: the largest chunk fits whatever XLA keeps, nothing is compiled
    per = coalition_footprint(value_fn, num_players)
    if per <= 0:
        return DEFAULT_CHUNK_SIZE
    per_device = max(1, int(budget // per))
    return max(1, min(DEFAULT_CHUNK_SIZE, n * (1 << int(math.log2(per_device)))))


__all__ = ["DEFAULT_CHUNK_SIZE", "MEMORY_FRACTION", "TRACED_MARGIN", "coalition_footprint", "free_memory_bytes",
           "max_chunk_size", "traced_footprint"]
