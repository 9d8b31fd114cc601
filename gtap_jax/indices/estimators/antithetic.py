"""Shapley value by antithetic permutations: a random order and its reverse, averaged."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from gtap_jax.indices.estimators.base import Estimator, sample_estimator
from gtap_jax.indices.estimators.permutation import prefix_marginals, prefix_masks, random_ranks


@functools.cache
def antithetic_shapley(num_players: int, d: None = None) -> Estimator:
    """Shapley value by antithetic permutation sampling (``d`` is unused).

    Each draw is a random order and its reverse; a player's sample is the
    average of its two marginal contributions (2P + 2 evaluations).

    References:
        Mitchell et al. (2022), Sampling permutations for Shapley value estimation.
    """
    k = num_players + 1

    def draw(key, i):
        ranks = random_ranks(key, i, num_players)
        return jnp.concatenate([prefix_masks(ranks), prefix_masks(num_players - 1 - ranks)])

    def samples(masks, values):
        forward = prefix_marginals(masks[:, :k], values[:, :k])
        backward = prefix_marginals(masks[:, k:], values[:, k:])
        return 0.5 * (forward + backward)

    return sample_estimator(num_players, draw, 2 * k, samples, "antithetic")


__all__ = ["antithetic_shapley"]
