"""Sub-games: a game restricted to some free players, the others fixed in or out."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from gtap_jax.engine import ChainGame, ChainValueFn
from gtap_jax.shapes import ValueFn


def restrict(value_fn: ValueFn, always_in: ArrayLike, free: ArrayLike) -> tuple[ValueFn, np.ndarray]:
    """The game on the ``free`` players with ``always_in`` players always present.

    Players neither free nor always in are always absent. Iterated pruning
    plays the sub-game of the survivors (removed neurons stay silenced);
    iterated building plays the sub-game of the not-yet-kept neurons with the
    kept ones always present.

    Args:
        value_fn: the full game, ``bool[P] -> scalar``.
        always_in: ``bool[P]``, players present in every coalition.
        free: ``bool[P]``, the players of the sub-game (disjoint from ``always_in``).

    Returns:
        ``(sub_value_fn, free_indices)``: the sub-game on ``F = len(free_indices)``
        players, and the full-game index of each of its players.

    Raises:
        ValueError: if the two masks overlap or differ in shape.
    """
    always_in = np.asarray(always_in, bool)
    free = np.asarray(free, bool)
    if always_in.shape != free.shape or always_in.ndim != 1:
        raise ValueError(f"always_in and free must both be bool[P], got {always_in.shape}, {free.shape}")
    if np.any(always_in & free):
        raise ValueError("a player cannot be both free and always in")
    idx = np.flatnonzero(free)
    base = jnp.asarray(always_in)
    idx_j = jnp.asarray(idx)

    def full(sub_masks):
        return jnp.broadcast_to(base, (*sub_masks.shape[:-1], base.size)).at[..., idx_j].set(sub_masks)

    def value(sub_mask):
        return value_fn(full(sub_mask))

    if isinstance(value_fn, ChainValueFn):  # a sub-game's chains (and flips) are the game's
        flips = getattr(value_fn, "flip_values", None)
        return ChainGame(value, lambda sub_masks, star: value_fn.chain_values(full(sub_masks), star),
                         None if flips is None else lambda base, players: flips(full(base), idx_j[players])), idx
    return value, idx


__all__ = ["restrict"]
