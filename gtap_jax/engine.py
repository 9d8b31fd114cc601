"""Batched, chunked and sharded evaluation of coalition values.

This is the one place where a value function of a single coalition is vmapped
over the coalition axis and jitted. Chunks have a fixed size (the last one is
padded), so evaluating any number of coalitions compiles once per chunk size.
Each chunk's coalition axis is split over every device of a
:class:`jax.sharding.Mesh` with ``shard_map``: each device evaluates its own
slice; nothing is communicated but the values (all-gathered when the mesh
spans processes).
``mesh=None`` means :func:`default_mesh`: every device of every process when
there is more than one (after :func:`gtap_jax.distributed.initialize`, that
spans hosts), else plain ``jit`` on the one device.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS
from jaxtyping import Array, Bool, Float

from gtap_jax.shapes import ValueFn

DEFAULT_CHUNK_SIZE = 4096
COALITION_AXIS = "coalitions"
# Share of a device's free memory that one chunk's temporaries may take.
MEMORY_FRACTION = 0.25

# value_fn -> {mesh: jitted batched function}. The jitted function holds only a
# weak reference to value_fn, so a game (and the evaluation data it closes over)
# is freed once the caller drops it.
_BATCHED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# value_fn -> {num_players: bytes of temporaries per coalition}.
_FOOTPRINT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def resolve_mesh(mesh: Mesh | None) -> Mesh | None:
    """``mesh``, or :func:`default_mesh` when it is None."""
    return default_mesh() if mesh is None else mesh


def num_shards(mesh: Mesh | None) -> int:
    """Number of devices the coalition axis is split over (None: the default mesh)."""
    mesh = resolve_mesh(mesh)
    return 1 if mesh is None else int(mesh.devices.size)


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
    keeps. Cached per value function. Returns 0 if the backend reports none.
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
        per_fn[num_players] = max(0, (temps[1] - temps[0]) // 8)
    return per_fn[num_players]


def max_chunk_size(value_fn: ValueFn, num_players: int, mesh: Mesh | None = None) -> int:
    """Largest power-of-two chunk whose temporaries fit in ``MEMORY_FRACTION`` of free memory.

    On a mesh, each device holds ``chunk / devices`` coalitions; CPU devices
    share the host's memory. Capped at ``DEFAULT_CHUNK_SIZE``.
    """
    mesh = resolve_mesh(mesh)
    per = coalition_footprint(value_fn, num_players)
    n = num_shards(mesh)
    first = mesh.local_devices[0] if mesh is not None else jax.local_devices()[0]
    budget = MEMORY_FRACTION * free_memory_bytes(first)
    if first.platform == "cpu":
        budget /= n  # simulated CPU devices share one host memory
    if per <= 0:
        return DEFAULT_CHUNK_SIZE
    per_device = max(1, int(budget // per))
    return max(1, min(DEFAULT_CHUNK_SIZE, n * (1 << int(math.log2(per_device)))))


def chunk_size_for(
    num_coalitions: int, chunk_size: int | None, mesh: Mesh | None, limit: int = DEFAULT_CHUNK_SIZE
) -> int:
    """The fixed chunk size used for ``num_coalitions`` coalitions.

    Without an explicit ``chunk_size``, small batches use the next power of two
    (so repeated small calls share a handful of compiled shapes) and large ones
    ``limit`` (see :func:`max_chunk_size`). The result is always a multiple of
    the mesh size.

    Raises:
        ValueError: if ``chunk_size`` is not positive.
    """
    if chunk_size is None:
        chunk_size = min(limit, 1 << max(0, math.ceil(math.log2(max(num_coalitions, 1)))))
    elif chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n = num_shards(mesh)
    return -(-chunk_size // n) * n


def _coalition_spec(mesh: Mesh) -> PS:
    # Split the coalition axis over every mesh axis, whatever the mesh's shape.
    return PS(tuple(mesh.axis_names))


def batched_value_fn(
    value_fn: ValueFn, mesh: Mesh | None = None
) -> Callable[[Bool[Array, "C P"]], Float[Array, C]]:
    """Jitted ``masks[C, P] -> values[C]`` for ``value_fn``, sharded over ``mesh``.

    On one process the values stay split over the mesh's devices (no
    collective at all). On a mesh spanning processes they are all-gathered
    (``C`` floats) so that every process can read them all. Cached per
    (value_fn, mesh) so that repeated calls reuse compilations.
    """
    mesh = resolve_mesh(mesh)
    try:
        per_fn = _BATCHED_CACHE.setdefault(value_fn, {})
        ref = weakref.ref(value_fn)
    except TypeError:  # not weak-referenceable: no caching across calls
        per_fn = {}

        def ref():
            return value_fn

    if mesh not in per_fn:

        def local(masks):
            return jax.vmap(ref())(masks).astype(jnp.float32)

        if mesh is None:
            per_fn[mesh] = jax.jit(local)
        elif not mesh.is_multi_process:
            spec = _coalition_spec(mesh)
            per_fn[mesh] = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec))
        else:
            per_fn[mesh] = _gathered(local, mesh)
    return per_fn[mesh]


def _gathered(local, mesh: Mesh):
    """``local`` over a multi-process mesh, its values all-gathered to every device."""
    axes = tuple(mesh.axis_names)

    def gathered(masks):
        return jax.lax.all_gather(local(masks), axes, tiled=True)

    # check_vma=False: all_gather's result is the same on every device, which
    # the replicated out_spec states but the type system does not infer.
    fn = jax.jit(jax.shard_map(gathered, mesh=mesh, in_specs=_coalition_spec(mesh), out_specs=PS(), check_vma=False))
    if mesh.local_devices[0].platform != "cpu":
        return fn

    def one_at_a_time(masks):
        # CPU collectives wait for every local device's thread; with several
        # chunks in flight the threads can all be waiting on different chunks
        # (a deadlock XLA ends by aborting), so a chunk finishes before the next.
        return fn(masks).block_until_ready()

    return one_at_a_time


def place(masks: Array | np.ndarray, mesh: Mesh | None) -> Array:
    """Puts a chunk of masks on the device(s), split over ``mesh`` (None: the default mesh).

    On a mesh spanning several processes every process passes the same masks
    and keeps only its devices' slices.
    """
    mesh = resolve_mesh(mesh)
    if mesh is None:
        return jnp.asarray(masks)
    sharding = NamedSharding(mesh, _coalition_spec(mesh))
    if mesh.is_multi_process:
        host = np.asarray(masks)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.device_put(masks, sharding)


def local_copy(values: Array) -> Array:
    """``values`` from :func:`batched_value_fn`, readable by this process (its copy when replicated)."""
    return values if values.is_fully_addressable else values.addressable_data(0)


def iter_chunks(total: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Yields ``(start, valid)`` for fixed-size chunks covering ``range(total)``."""
    for start in range(0, total, chunk):
        yield start, min(chunk, total - start)


def evaluate_coalitions(
    value_fn: ValueFn,
    masks: Bool[Array, "C P"] | np.ndarray,
    *,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
) -> Float[Array, C]:
    """Values of many coalitions in fixed-size, vmapped, jitted chunks.

    Args:
        value_fn: value of one coalition, ``bool[P] -> scalar``; JAX-traceable.
        masks: ``bool[C, P]``, True where a player is in the coalition.
        chunk_size: coalitions per compiled call (rounded up to a multiple of
            the mesh size). The last chunk is padded, so any ``C`` reuses the
            same compilation. Default: the next power of two, at most what
            fits in memory (:func:`max_chunk_size`, measured once per game).
        mesh: each chunk's coalition axis is sharded over all devices of this
            mesh. Default: :func:`default_mesh`. Results equal the
            single-device ones.

    Returns:
        ``float32[C]``, the value of each coalition.

    Raises:
        ValueError: if ``masks`` is not two-dimensional.
    """
    # Chunks are cut on the host: slicing a device array at a new offset each
    # chunk would compile a new slice for every offset.
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2:
        raise ValueError(f"masks must be bool[C, P], got shape {masks.shape}")
    total = masks.shape[0]
    if total == 0:
        return jnp.zeros((0,), jnp.float32)
    mesh = resolve_mesh(mesh)
    limit = DEFAULT_CHUNK_SIZE
    if chunk_size is None and total > 16:
        limit = max_chunk_size(value_fn, masks.shape[1], mesh)
    chunk = chunk_size_for(total, chunk_size, mesh, limit)
    fn = batched_value_fn(value_fn, mesh)
    pad = -total % chunk
    if pad:
        masks = np.concatenate([masks, np.zeros((pad, masks.shape[1]), bool)])
    # Dispatch every chunk before reading any back, so chunks pipeline.
    outs = [fn(place(masks[s : s + chunk], mesh)) for s in range(0, total + pad, chunk)]
    return jnp.asarray(np.concatenate([np.asarray(o) for o in outs])[:total])


__all__ = [
    "COALITION_AXIS",
    "DEFAULT_CHUNK_SIZE",
    "batched_value_fn",
    "chunk_size_for",
    "coalition_footprint",
    "coalition_mesh",
    "default_mesh",
    "evaluate_coalitions",
    "free_memory_bytes",
    "local_copy",
    "max_chunk_size",
    "resolve_mesh",
]
