"""Batched, chunked and sharded evaluation of coalition values.

This is the one place where a value function of a single coalition is vmapped
over the coalition axis and jitted. Chunks have a fixed size (the last one is
padded), so evaluating any number of coalitions compiles once per chunk size.
Given a :class:`jax.sharding.Mesh`, each chunk's coalition axis is split over
every device of the mesh with ``shard_map``: each device evaluates its own
slice; nothing is communicated but the values.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS
from jaxtyping import Array, Bool, Float

from gtap_jax.shapes import ValueFn

DEFAULT_CHUNK_SIZE = 4096

# value_fn -> {mesh: jitted batched function}. The jitted function holds only a
# weak reference to value_fn, so a game (and the evaluation data it closes over)
# is freed once the caller drops it.
_BATCHED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def num_shards(mesh: Mesh | None) -> int:
    """Number of devices the coalition axis is split over."""
    return 1 if mesh is None else int(mesh.devices.size)


def chunk_size_for(num_coalitions: int, chunk_size: int | None, mesh: Mesh | None) -> int:
    """The fixed chunk size used for ``num_coalitions`` coalitions.

    Without an explicit ``chunk_size``, small batches use the next power of two
    (so repeated small calls share a handful of compiled shapes) and large ones
    ``DEFAULT_CHUNK_SIZE``. The result is always a multiple of the mesh size.

    Raises:
        ValueError: if ``chunk_size`` is not positive.
    """
    if chunk_size is None:
        chunk_size = min(DEFAULT_CHUNK_SIZE, 1 << max(0, math.ceil(math.log2(max(num_coalitions, 1)))))
    elif chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n = num_shards(mesh)
    return -(-chunk_size // n) * n


def _coalition_spec(mesh: Mesh) -> PS:
    # Split the coalition axis over every mesh axis, whatever the mesh's shape.
    return PS(tuple(mesh.axis_names))


def batched_value_fn(
    value_fn: ValueFn, mesh: Mesh | None = None
) -> Callable[[Bool[Array, "C P"]], Float[Array, "C"]]:
    """Jitted ``masks[C, P] -> values[C]`` for ``value_fn``, sharded over ``mesh``.

    Cached per (value_fn, mesh) so that repeated calls reuse compilations.
    """
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
        else:
            spec = _coalition_spec(mesh)
            per_fn[mesh] = jax.jit(
                jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec)
            )
    return per_fn[mesh]


def place(masks: Array, mesh: Mesh | None) -> Array:
    """Puts a chunk of masks on the device(s), split over ``mesh`` if given."""
    if mesh is None:
        return jnp.asarray(masks)
    return jax.device_put(masks, NamedSharding(mesh, _coalition_spec(mesh)))


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
) -> Float[Array, "C"]:
    """Values of many coalitions in fixed-size, vmapped, jitted chunks.

    Args:
        value_fn: value of one coalition, ``bool[P] -> scalar``; JAX-traceable.
        masks: ``bool[C, P]``, True where a player is in the coalition.
        chunk_size: coalitions per compiled call (rounded up to a multiple of
            the mesh size). The last chunk is padded, so any ``C`` reuses the
            same compilation. Default: see :func:`chunk_size_for`.
        mesh: if given, each chunk's coalition axis is sharded over all devices
            of this mesh. Results equal the unsharded ones.

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
    chunk = chunk_size_for(total, chunk_size, mesh)
    fn = batched_value_fn(value_fn, mesh)
    pad = -total % chunk
    if pad:
        masks = np.concatenate([masks, np.zeros((pad, masks.shape[1]), bool)])
    # Dispatch every chunk before reading any back, so chunks pipeline.
    outs = [fn(place(masks[s : s + chunk], mesh)) for s in range(0, total + pad, chunk)]
    return jnp.asarray(np.concatenate([np.asarray(o) for o in outs])[:total])


__all__ = ["DEFAULT_CHUNK_SIZE", "batched_value_fn", "chunk_size_for", "evaluate_coalitions"]
