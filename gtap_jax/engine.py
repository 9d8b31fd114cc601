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
spans hosts), else plain ``jit`` on the one device. :func:`make_plan` decides
the mesh and the chunk size once; every evaluating function (here, in
``indices`` and ``uncertainty``) takes that decision as ``plan=``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS
from jaxtyping import Array, Bool, Float

from gtap_jax.memory import DEFAULT_CHUNK_SIZE, max_chunk_size
from gtap_jax.shapes import ValueFn

COALITION_AXIS = "coalitions"

# value_fn -> {mesh: jitted batched function}. The jitted function holds only a
# weak reference to value_fn, so a game (and the evaluation data it closes over)
# is freed once the caller drops it.
_BATCHED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# value_fn -> {num_players it was checked to accept}.
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


# Below this many coalitions a call does not measure the game's memory footprint
# (which compiles two probe chunks): the chunk is small anyway.
SMALL_CALL = 16


def make_plan(
    value_fn: ValueFn | None = None,
    num_players: int | None = None,
    *,
    num_coalitions: int | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    plan: Plan | None = None,
) -> Plan:
    """Decides the mesh and the chunk size once, for one call or for many.

    ``evaluate_coalitions``, ``estimate``, ``exact``, ``uncertainty_bands`` and the
    strategies' attribute functions each call this once; pass the result as
    their ``plan=`` to reuse one decision over many calls (the experiment and
    ``by_estimate`` do, so sub-games of a strategy do not re-measure memory).

    Args:
        value_fn, num_players: the game, whose per-coalition memory footprint
            bounds the chunk (:func:`max_chunk_size`) when ``chunk_size`` is None.
        num_coalitions: the size of the call, if known; calls of at most
            ``SMALL_CALL`` coalitions skip the footprint measurement.
        chunk_size: a fixed chunk (rounded up to a multiple of the mesh size).
        mesh: default :func:`default_mesh`.
        plan: an earlier decision, returned as it is.

    Raises:
        ValueError: if ``chunk_size`` is not positive, or ``plan`` comes with
            ``chunk_size`` or ``mesh``.
    """
    if plan is not None:
        if chunk_size is not None or mesh is not None:
            raise ValueError("give either plan= or chunk_size= / mesh=, not both")
        return plan
    mesh = default_mesh() if mesh is None else mesh
    shards = 1 if mesh is None else int(mesh.devices.size)
    if chunk_size is not None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        return Plan(mesh, _round_up(chunk_size, shards), fixed=True)
    if value_fn is None or (num_coalitions is not None and num_coalitions <= SMALL_CALL):
        return Plan(mesh, DEFAULT_CHUNK_SIZE)
    return Plan(mesh, max_chunk_size(value_fn, num_players, mesh))


def _coalition_spec(mesh: Mesh) -> PS:
    # Split the coalition axis over every mesh axis, whatever the mesh's shape.
    return PS(tuple(mesh.axis_names))


def batched_value_fn(value_fn: ValueFn, mesh: Mesh | None = None) -> Callable[[Bool[Array, "C P"]], Float[Array, C]]:
    """Jitted ``masks[C, P] -> values[C]`` for ``value_fn``, sharded over ``mesh`` (None: one device).

    On one process the values stay split over the mesh's devices (no
    collective at all). On a mesh spanning processes they are all-gathered
    (``C`` floats) so that every process can read them all. Cached per
    (value_fn, mesh) so that repeated calls reuse compilations.
    """
    try:
        per_fn = _BATCHED_CACHE.setdefault(value_fn, {})
        ref = weakref.ref(value_fn)
    except TypeError:  # not weak-referenceable: no caching across calls
        per_fn = {}

        def ref():
            return value_fn

    if mesh not in per_fn:

        def local(masks):  # callers check the value function's shape first (check_players)
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
    """Puts a chunk of masks on the device(s), split over ``mesh`` (None: one device).

    On a mesh spanning several processes every process passes the same masks
    and keeps only its devices' slices.
    """
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


def _as_masks(masks) -> np.ndarray:
    """``bool[C, P]`` from booleans or 0/1 integers; anything else is an error."""
    arr = np.asarray(masks)
    if arr.ndim != 2:
        raise ValueError(f"masks must be bool[C, P], got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise ValueError(f"masks must be boolean (or 0/1 integers), got dtype {arr.dtype} with values {np.unique(arr)[:5]}")


def non_finite_error(bad: int, total: int) -> ValueError:
    """The error for ``bad`` NaN or infinite values among ``total`` (they would flow into every player's index)."""
    return ValueError(
        f"{bad} of {total} coalition values are NaN or infinite; the value function must return finite"
        " values (check the model's parameters and the evaluation data)"
    )


def check_finite(values) -> None:
    """Raises :func:`non_finite_error` if any coalition value is NaN or infinite."""
    values = np.asarray(values)
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        raise non_finite_error(bad, values.size)


def check_players(value_fn: ValueFn, num_players: int) -> None:
    """Traces ``value_fn`` on one coalition of ``num_players`` players (no computation; once per game and P).

    Raises:
        ValueError: when it cannot take ``bool[num_players]`` or does not return a scalar.
    """
    try:
        checked = _CHECKED.setdefault(value_fn, set())
    except TypeError:  # not weak-referenceable: check every time
        checked = set()
    if num_players in checked:
        return
    try:
        out = jax.eval_shape(value_fn, jax.ShapeDtypeStruct((num_players,), jnp.bool_))
    except (TypeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"the value function fails on a coalition of {num_players} players ({type(e).__name__}: {first});"
            " does num_players match the game?"
        ) from e
    if getattr(out, "shape", None) != ():
        raise ValueError(f"a value function must return one scalar per coalition, got shape {out.shape}")
    checked.add(num_players)


def evaluate_coalitions(
    value_fn: ValueFn,
    masks: Bool[Array, "C P"] | np.ndarray,
    *,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    plan: Plan | None = None,
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
        plan: chunk size and mesh decided earlier (:func:`make_plan`), instead
            of ``chunk_size`` and ``mesh``.

    Returns:
        ``float32[C]``, the value of each coalition.

    Raises:
        ValueError: if ``masks`` is not two-dimensional, not boolean (or 0/1
            integers), if ``value_fn`` does not return one scalar, or if a
            value is NaN or infinite.
    """
    # Chunks are cut on the host: slicing a device array at a new offset each
    # chunk would compile a new slice for every offset.
    masks = _as_masks(masks)
    total = masks.shape[0]
    if total == 0:
        return jnp.zeros((0,), jnp.float32)
    check_players(value_fn, masks.shape[1])
    decided = make_plan(value_fn, masks.shape[1], num_coalitions=total, chunk_size=chunk_size, mesh=mesh, plan=plan)
    chunk, mesh = decided.chunk(total), decided.mesh
    fn = batched_value_fn(value_fn, mesh)
    pad = -total % chunk
    if pad:
        masks = np.concatenate([masks, np.zeros((pad, masks.shape[1]), bool)])
    # Dispatch every chunk before reading any back, so chunks pipeline.
    outs = [fn(place(masks[s : s + chunk], mesh)) for s in range(0, total + pad, chunk)]
    values = np.concatenate([np.asarray(o) for o in outs])[:total]
    check_finite(values)
    return jnp.asarray(values)


__all__ = [
    "COALITION_AXIS",
    "SMALL_CALL",
    "Plan",
    "batched_value_fn",
    "check_finite",
    "check_players",
    "coalition_mesh",
    "default_mesh",
    "evaluate_coalitions",
    "local_copy",
    "make_plan",
    "non_finite_error",
    "place",
]
