"""Closed-form cooperative games: oracles for the estimators and strategies.

Each factory returns a JAX-traceable value function ``bool[P] -> float32``.
Where an index has a closed form, a companion function gives it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from gtap_jax.shapes import ValueFn


def additive_game(weights: ArrayLike) -> ValueFn:
    """v(S) = sum of the weights of S. Every index (Shapley, beta_d) equals the weights."""
    w = jnp.asarray(weights, jnp.float32)

    def value(mask):
        return jnp.sum(jnp.where(mask, w, 0.0))

    return value


def unanimity_game(num_players: int, carriers: ArrayLike) -> ValueFn:
    """v(S) = 1 if S contains every player of ``carriers``, else 0.

    Shapley value: 1/|T| for i in T, 0 otherwise; beta_d: d^(|T|-1) for i in T.
    """
    t = np.zeros(num_players, bool)
    t[np.asarray(carriers)] = True
    t = jnp.asarray(t)

    def value(mask):
        return jnp.all(mask | ~t).astype(jnp.float32)

    return value


def unanimity_indices(num_players: int, carriers: ArrayLike, index: str, d: float = 0.5) -> np.ndarray:
    """Closed-form Shapley (``"shapley"``) or beta_d (``"beta"``/``"banzhaf"``) of a unanimity game."""
    carriers = np.asarray(carriers)
    out = np.zeros(num_players)
    if index == "shapley":
        out[carriers] = 1.0 / len(carriers)
    else:
        out[carriers] = (0.5 if index == "banzhaf" else d) ** (len(carriers) - 1)
    return out


def weighted_majority_game(weights: ArrayLike, quota: float) -> ValueFn:
    """v(S) = 1 if the weights of S reach ``quota``, else 0 (a simple voting game)."""
    w = jnp.asarray(weights, jnp.float32)

    def value(mask):
        return (jnp.sum(jnp.where(mask, w, 0.0)) >= quota).astype(jnp.float32)

    return value


def coalition_index(mask):
    """Integer code of a coalition: bit j is player j."""
    bits = jnp.left_shift(jnp.int32(1), jnp.arange(mask.shape[-1], dtype=jnp.int32))
    return jnp.sum(jnp.where(mask, bits, 0), axis=-1)


def lookup_game(table: ArrayLike) -> ValueFn:
    """v(S) = table[code(S)] for an arbitrary table of 2^P values (code: bit j = player j)."""
    table = jnp.asarray(table, jnp.float32)

    def value(mask):
        return table[coalition_index(mask)]

    return value


def random_lookup_table(seed: int, num_players: int) -> np.ndarray:
    """A structureless random game with v(empty) = 0, values i.i.d. standard normal."""
    table = np.random.default_rng(seed).normal(size=1 << num_players).astype(np.float32)
    table[0] = 0.0
    return table


__all__ = [
    "additive_game",
    "coalition_index",
    "lookup_game",
    "random_lookup_table",
    "unanimity_game",
    "unanimity_indices",
    "weighted_majority_game",
]
