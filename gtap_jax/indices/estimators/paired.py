"""Biased Banzhaf beta_d by paired sampling: a Bernoulli(d) coalition and its one-player flips."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gtap_jax.indices.estimators.base import Estimator, sample_estimator


@functools.cache
def paired_beta(num_players: int, d: float = 0.5) -> Estimator:
    """Biased Banzhaf beta_d by paired sampling.

    Each draw is a coalition T with every player in it independently with
    probability d; player i's sample is v(T + i) - v(T - i). T and its P
    one-player flips cover every pair, so one draw costs P + 1 evaluations
    and gives an unbiased sample for every player.
    """

    def draw(key, i):
        t = jax.random.bernoulli(jax.random.fold_in(key, i), d, (num_players,))
        flips = t[None, :] ^ jnp.eye(num_players, dtype=bool)
        return jnp.concatenate([t[None, :], flips])

    def samples(masks, values):
        t = masks[:, 0, :]
        v_t = values[:, :1]
        v_flip = values[:, 1:]
        return jnp.where(t, v_t - v_flip, v_flip - v_t)

    return sample_estimator(num_players, draw, num_players + 1, samples, "paired")


__all__ = ["paired_beta"]
