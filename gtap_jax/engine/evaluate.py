"""Batched, chunked and sharded evaluation of coalition values.

This is the one place where a value function of a single coalition is vmapped
over the coalition axis and jitted. Chunks have a fixed size (the last one is
padded), so evaluating any number of coalitions compiles once per chunk size.
Each chunk's coalition axis is split over every device of the plan's
:class:`jax.sharding.Mesh` with ``shard_map``: each device evaluates its own
slice; nothing is communicated but the values (all-gathered when the mesh
spans processes). The plan (:mod:`gtap_jax.engine.plan`) says which mesh and
what chunk size.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS
from jaxtyping import Array, Bool, Float

from gtap_jax.engine.plan import Plan, make_plan
from gtap_jax.layout import as_masks
from gtap_jax.registry import renamed
from gtap_jax.shapes import ValueFn

# value_fn -> {mesh: jitted batched function}. The jitted function holds only a
# weak reference to value_fn, so a game (and the evaluation data it closes over)
# is freed once the caller drops it.
_BATCHED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# value_fn -> {num_players it was checked to accept}.
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _coalition_spec(mesh: Mesh) -> PS:
    # Split the coalition axis over every mesh axis, whatever the mesh's shape.
    return PS(tuple(mesh.axis_names))


@runtime_checkable
class ChainValueFn(Protocol):
    """A value function that also values chains of coalitions, each one player away from the one before
    (``star``: each one player away from the first), faster than one by one (a network game's incremental
    evaluation: :mod:`gtap_jax.network.modules.incremental`)."""

    def __call__(self, mask: Bool[Array, " P"]) -> Float[Array, ""]: ...

    def chain_values(self, masks: Bool[Array, "K P"], star: bool = False) -> Float[Array, " K"]: ...


class ChainGame:
    """A :class:`ChainValueFn` from a value function of one coalition and ``chain_values(masks, star)``
    (a network game's, :mod:`gtap_jax.network.modules.incremental`, or a sub-game's of it); with
    ``flip_values(base[P], players[U]) -> values[1 + U]`` (the base, then each player flipped), it also values
    stars whose flipped players are known when compiling (:func:`evaluate_flips`), and with
    ``flip_pair_values(base, players) -> values[2, 1 + U]`` those of a base and its complement together."""

    def __init__(self, value: ValueFn, chain_values: Callable[..., Float[Array, " K"]],
                 flip_values: Callable[..., Float[Array, " K"]] | None = None,
                 flip_pair_values: Callable[..., Float[Array, "2 K"]] | None = None):
        self._value, self._chain_values = value, chain_values
        if flip_values is not None:
            self.flip_values = flip_values
        if flip_pair_values is not None:
            self.flip_pair_values = flip_pair_values

    def __call__(self, mask):
        return self._value(mask)

    def chain_values(self, masks, star=False):
        """``values[K]`` of ``masks[K, P]``, each coalition one player away from the one before (``star``:
        from the first)."""
        return self._chain_values(masks, star)


def batched_value_fn(value_fn: ValueFn, mesh: Mesh | None = None) -> Callable[[Bool[Array, "C P"]], Float[Array, " C"]]:
    """Jitted ``masks[C, P] -> values[C]`` for ``value_fn``, sharded over ``mesh`` (None: one device).

    On one process the values stay split over the mesh's devices (no
    collective at all). On a mesh spanning processes they are all-gathered
    (``C`` floats) so that every process can read them all. Cached per
    (value_fn, mesh) so that repeated calls reuse compilations.
    """
    return _cached(value_fn, mesh, mesh, lambda fn: lambda masks: jax.vmap(fn)(masks).astype(jnp.float32))


def batched_chain_fn(value_fn: ChainValueFn, chains: int, mesh: Mesh | None = None, *, star: bool = False):
    """Jitted ``masks[B, K, P] -> values[B, K]``: each of B draws is ``chains`` chains (``star``: stars) of
    K / chains coalitions, valued by ``value_fn.chain_values``; the B axis is sharded over ``mesh`` (as
    :func:`batched_value_fn`)."""

    def make(fn):
        def draw_values(masks):
            parts = jnp.split(masks, chains, axis=0)
            return jnp.concatenate([fn.chain_values(part, star) for part in parts]).astype(jnp.float32)

        return lambda masks: jax.vmap(draw_values)(masks)

    return _cached(value_fn, (mesh, chains, star), mesh, make)


def batched_flip_fn(value_fn, mesh: Mesh | None = None, *, pairs: bool = False):
    """Jitted ``(bases[B, P], players[U]) -> values[B, 1 + U]`` by ``value_fn.flip_values`` (``pairs``: ``values[B,
    2, 1 + U]`` of each base and its complement, by ``flip_pair_values``); the B axis sharded over ``mesh``, the
    players on every device (as :func:`batched_value_fn`)."""

    def make(fn):
        one = fn.flip_pair_values if pairs else fn.flip_values
        return lambda bases, players: jax.vmap(one, in_axes=(0, None))(bases, players).astype(jnp.float32)

    return _cached(value_fn, (mesh, "flips", pairs), mesh, make, replicated=1)


def _cached(value_fn, cache_key, mesh: Mesh | None, make, replicated: int = 0):
    """``make(value_fn)``, a function of a batch (and ``replicated`` arguments the same on every device), jitted
    and sharded over ``mesh``; cached per value function and ``cache_key``. The jitted function holds a weak
    reference to ``value_fn``."""
    try:
        per_fn = _BATCHED_CACHE.setdefault(value_fn, {})
        ref = weakref.ref(value_fn)
    except TypeError:  # not weak-referenceable: no caching across calls
        per_fn = {}

        def ref():
            return value_fn

    if cache_key not in per_fn:

        def local(batch, *rest):  # callers check the value function's shape first (check_players)
            return make(ref())(batch, *rest)

        if mesh is None:
            per_fn[cache_key] = jax.jit(local)
        elif not mesh.is_multi_process:
            spec = _coalition_spec(mesh)
            per_fn[cache_key] = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, *[PS()] * replicated),
                                                      out_specs=spec))
        else:
            per_fn[cache_key] = _gathered(local, mesh, replicated)
    return per_fn[cache_key]


def _gathered(local, mesh: Mesh, replicated: int = 0):
    """``local`` over a multi-process mesh, its values all-gathered to every device."""
    axes = tuple(mesh.axis_names)

    def gathered(masks, *rest):
        return jax.lax.all_gather(local(masks, *rest), axes, tiled=True)

    # check_vma=False: all_gather's result is the same on every device, which
    # the replicated out_spec states but the type system does not infer.
    fn = jax.jit(jax.shard_map(gathered, mesh=mesh, in_specs=(_coalition_spec(mesh), *[PS()] * replicated),
                               out_specs=PS(), check_vma=False))
    if mesh.local_devices[0].platform != "cpu":
        return fn

    def one_at_a_time(masks, *rest):
        # CPU collectives wait for every local device's thread; with several
        # chunks in flight the threads can all be waiting on different chunks
        # (a deadlock XLA ends by aborting), so a chunk finishes before the next.
        return fn(masks, *rest).block_until_ready()

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


@renamed(chunk_size="plan=make_plan(chunk_size=...)", mesh="plan=make_plan(mesh=...)")
def evaluate_coalitions(
    value_fn: ValueFn,
    masks: Bool[Array, "C P"] | np.ndarray,
    *,
    plan: Plan | None = None,
) -> Float[Array, " C"]:
    """Values of many coalitions in fixed-size, vmapped, jitted chunks.

    Args:
        value_fn: value of one coalition, ``bool[P] -> scalar``; JAX-traceable.
        masks: ``bool[C, P]``, True where a player is in the coalition.
        plan: the mesh and the chunk size (:func:`~gtap_jax.engine.plan.make_plan`).
            Default: every device, and chunks of the next power of two up to
            what fits in memory (measured once per game). The last chunk is
            padded, so any ``C`` reuses the same compilation; results equal
            the single-device ones.

    Returns:
        ``float32[C]``, the value of each coalition.

    Raises:
        ValueError: if ``masks`` is not two-dimensional, not boolean (or 0/1
            integers), if ``value_fn`` does not return one scalar, or if a
            value is NaN or infinite.
    """
    # Chunks are cut on the host: slicing a device array at a new offset each
    # chunk would compile a new slice for every offset.
    masks = as_masks(masks)
    total = masks.shape[0]
    if total == 0:
        return jnp.zeros((0,), jnp.float32)
    check_players(value_fn, masks.shape[1])
    decided = plan or make_plan(value_fn, masks.shape[1], num_coalitions=total)
    return _in_calls(batched_value_fn(value_fn, decided.mesh), masks, decided.chunk(total), decided.mesh)


def evaluate_stars(value_fn: ValueFn, masks: Bool[Array, "B K P"] | np.ndarray, *,
                   plan: Plan | None = None) -> Float[Array, "B K"]:
    """Values of B stars of K coalitions, each one player away (or none) from its star's first.

    A :class:`ChainValueFn` values each star incrementally (``chain_values(star=True)``), the stars split
    over the plan's mesh; any other value function values the coalitions whole (:func:`evaluate_coalitions`).

    Raises:
        ValueError: as :func:`evaluate_coalitions`.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"stars are bool[B, K, P], got shape {masks.shape}")
    b, k, p = masks.shape
    if not isinstance(value_fn, ChainValueFn) or b == 0:
        return evaluate_coalitions(value_fn, masks.reshape(b * k, p), plan=plan).reshape(b, k)
    masks = as_masks(masks.reshape(b * k, p)).reshape(b, k, p)
    check_players(value_fn, p)
    decided = plan or make_plan(value_fn, p, num_coalitions=b * k)
    fn = batched_chain_fn(value_fn, 1, decided.mesh, star=True)
    return _in_calls(fn, masks, decided.draws_per_call(b, k, whole_draws=True), decided.mesh)


def evaluate_flips(value_fn: ValueFn, bases: Bool[Array, "B P"] | np.ndarray, players: np.ndarray, *,
                   plan: Plan | None = None, pairs: bool = False) -> Float[Array, "B K"]:
    """Values of B stars: each base coalition, then it with each of ``players[U]`` flipped (K = 1 + U).

    A value function with ``flip_values`` (:class:`ChainGame`) knows the flipped players when compiling, so a
    network game values a flip by the layer it is in (:mod:`gtap_jax.network.modules.incremental`); the bases
    split over the plan's mesh. Any other is given the stars' masks (:func:`evaluate_stars`). ``pairs``: every
    odd base is its predecessor's complement, and a value function with ``flip_pair_values`` values the two
    together (a network game computes the first consumer's output once for both).

    Raises:
        ValueError: as :func:`evaluate_coalitions`; with ``pairs``, for bases that are not complementary pairs.
    """
    (bases, players), k = (as_masks(bases), np.asarray(players, np.int32)), 1 + np.size(players)
    b, p = bases.shape
    if pairs and (b % 2 or np.any(bases[1::2] != ~bases[0::2])):
        raise ValueError(f"pairs=True needs every odd base to be its predecessor's complement ({b} bases)")
    if not hasattr(value_fn, "flip_values") or b == 0:
        stars = np.repeat(bases[:, None, :], k, axis=1)
        stars[:, np.arange(1, k), players] ^= True
        return evaluate_stars(value_fn, stars, plan=plan)
    check_players(value_fn, p)
    decided = plan or make_plan(value_fn, p, num_coalitions=b * k)
    if pairs and hasattr(value_fn, "flip_pair_values"):
        size = decided.draws_per_call(b // 2, 2 * k, whole_draws=True)
        fn = batched_flip_fn(value_fn, decided.mesh, pairs=True)
        return _in_calls(fn, bases[0::2], size, decided.mesh, jnp.asarray(players)).reshape(b, k)
    size = decided.draws_per_call(b, k, whole_draws=True)
    return _in_calls(batched_flip_fn(value_fn, decided.mesh), bases, size, decided.mesh, jnp.asarray(players))


def _in_calls(fn, masks: np.ndarray, size: int, mesh: Mesh | None, *rest) -> Float[Array, ...]:
    """``fn`` over ``masks`` (on the host) in calls of ``size`` along the first axis (and ``rest``, the same in every
    call), the last padded with empty coalitions; the values, checked finite."""
    total = masks.shape[0]
    pad = -total % size
    if pad:
        masks = np.concatenate([masks, np.zeros((pad, *masks.shape[1:]), bool)])
    # Dispatch every call before reading any back, so they pipeline.
    outs = [fn(place(masks[s : s + size], mesh), *rest) for s in range(0, total + pad, size)]
    values = np.concatenate([np.asarray(local_copy(o)) for o in outs])[:total]
    check_finite(values)
    return jnp.asarray(values)


__all__ = [
    "ChainGame",
    "ChainValueFn",
    "batched_chain_fn",
    "batched_flip_fn",
    "batched_value_fn",
    "check_finite",
    "check_players",
    "evaluate_coalitions",
    "evaluate_flips",
    "evaluate_stars",
    "local_copy",
    "non_finite_error",
    "place",
]
