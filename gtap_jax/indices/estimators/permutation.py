"""Shapley value by permutation sampling: each draw is a random order of the players.

References:
    Castro, Gomez, Tejada (2009), Polynomial calculation of the Shapley value based on sampling.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from gtap_jax.indices.estimators.base import Estimator, sample_estimator


def prefix_masks(ranks: Int[Array, " P"]) -> Bool[Array, "K P"]:
    """Prefixes of sizes 0..P of the order that puts player j at position ranks[j]."""
    num_players = ranks.shape[0]
    return ranks[None, :] < jnp.arange(num_players + 1)[:, None]


def prefix_marginals(masks: Bool[Array, "B K P"], values: Float[Array, "B K"]) -> Float[Array, "B P"]:
    """Marginal contribution of each player along each drawn order (K = P + 1 prefixes)."""
    num_players = masks.shape[-1]
    # Player j is absent from the prefixes 0..rank_j, so rank_j = P - (#prefixes with j).
    rank = num_players - jnp.sum(masks, axis=1, dtype=jnp.int32)
    with_j = jnp.take_along_axis(values, rank + 1, axis=1)
    without_j = jnp.take_along_axis(values, rank, axis=1)
    return with_j - without_j


@functools.cache
def permutation_shapley(num_players: int, d: None = None) -> Estimator:
    """Shapley value by permutation sampling (``d`` is unused: the Shapley value has none).

    Each draw is a uniformly random order of the players; a player's sample is
    its marginal contribution when it joins the players before it (P + 1
    evaluations).

    References:
        Castro, Gomez, Tejada (2009), Polynomial calculation of the Shapley
        value based on sampling.
    """

    def draw(key, i):
        return prefix_masks(random_ranks(key, i, num_players))

    return sample_estimator(num_players, draw, num_players + 1, prefix_marginals, "permutation")


def random_ranks(key, i, num_players: int) -> Int[Array, " P"]:
    """The position of each player in the random order of draw ``i``."""
    return jnp.argsort(jax.random.permutation(jax.random.fold_in(key, i), num_players))


__all__ = ["permutation_shapley", "prefix_marginals", "prefix_masks", "random_ranks"]
