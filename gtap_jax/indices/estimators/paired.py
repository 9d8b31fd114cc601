"""Biased Banzhaf beta_d by paired sampling: a Bernoulli(d) coalition and its one-player flips."""

from __future__ import annotations

import functools

import jax

from gtap_jax.indices.estimators.base import Estimator, star_estimator, star_marginals


@functools.cache
def paired_beta(num_players: int, d: float = 0.5) -> Estimator:
    """Biased Banzhaf beta_d by paired sampling.

    Each draw is a coalition T with every player in it independently with
    probability d; player i's sample is v(T + i) - v(T - i). T and its P
    one-player flips cover every pair, so one draw costs P + 1 evaluations
    and gives an unbiased sample for every player.
    """

    def bases(key, i):
        return jax.random.bernoulli(jax.random.fold_in(key, i), d, (1, num_players))

    return star_estimator(num_players, bases, 1, star_marginals, "paired")


__all__ = ["paired_beta"]
