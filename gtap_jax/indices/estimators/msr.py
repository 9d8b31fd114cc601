"""Biased Banzhaf beta_d by maximum sample reuse (MSR): every drawn coalition updates every player."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from gtap_jax.indices.estimators.base import Estimator, Moments, mean_and_stderr, merge_moments, zero_moments


class MSRState(NamedTuple):
    """State of maximum sample reuse: moments of v over draws with and without each player."""

    num_draws: Int[Array, ""]
    with_player: Moments
    without_player: Moments



@functools.cache
def msr_beta(num_players: int, d: float = 0.5) -> Estimator:
    """Biased Banzhaf beta_d by maximum sample reuse (MSR).

    Each draw is one coalition S ~ Bernoulli(d)^P (one evaluation) that
    updates every player: phi_i = mean v(S) over draws with i in S minus mean
    v(S) over draws without i. The standard error combines the two sample
    variances (the two means are over disjoint draws). A player not yet seen
    both in and out of a drawn coalition has value NaN and stderr inf.

    References:
        Wang, Jia (2023), Data Banzhaf: A Robust Data Valuation Framework for
        Machine Learning, AISTATS.
    """

    def draw(key, i):
        return jax.random.bernoulli(jax.random.fold_in(key, i), d, (1, num_players))

    def init():
        z = zero_moments(num_players)
        return MSRState(jnp.zeros((), jnp.int32), z, z)

    def update(state, masks, values, valid):
        s = masks[:, 0, :]
        v = jnp.broadcast_to(values[:, :1], s.shape)
        real = valid[:, None]
        return MSRState(
            state.num_draws + jnp.sum(valid, dtype=jnp.int32),
            merge_moments(state.with_player, v, (s & real).astype(jnp.float32)),
            merge_moments(state.without_player, v, (~s & real).astype(jnp.float32)),
        )

    def finalize(state):
        m_in, se_in = mean_and_stderr(state.with_player)
        m_out, se_out = mean_and_stderr(state.without_player)
        # A player never drawn in (or never out of) a coalition has no estimate yet: NaN, not -mean v.
        seen = (state.with_player.count > 0) & (state.without_player.count > 0)
        return jnp.where(seen, m_in - m_out, jnp.nan), jnp.sqrt(jnp.square(se_in) + jnp.square(se_out))

    return Estimator(draw, init, update, finalize, 1, "msr")


__all__ = ["MSRState", "msr_beta"]
