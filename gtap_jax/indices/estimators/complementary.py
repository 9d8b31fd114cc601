"""The Banzhaf value by complementary stars: a uniform coalition T and its complement N \\ T, each with its flips."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gtap_jax.indices.estimators.base import Estimator, sample_estimator


def _star_marginals(masks, values):
    """Each player's marginal ``v(T + i) - v(T - i)`` from a star: ``T`` then its ``P`` one-player flips."""
    t, v_t, v_flip = masks[:, 0, :], values[:, :1], values[:, 1:]
    return jnp.where(t, v_t - v_flip, v_flip - v_t)


@functools.cache
def complementary_banzhaf(num_players: int, d: float | None = 0.5) -> Estimator:
    """The Banzhaf value by complementary (antithetic) stars, the pairing trick for Banzhaf.

    Each draw is a uniform coalition T and its complement N \\ T, each with its P one-player flips
    (two stars, 2P + 2 evaluations); player i's sample is the mean of its two marginals. Both
    marginals are unbiased for the Banzhaf value, since N \\ T is uniform too, and their mean has no
    variance from any pairwise term of the game: a term b_ik adds b_ik to i's marginal at exactly
    one of T and N \\ T, so the pair always carries b_ik / 2. Only beta_0.5 has this symmetry: for
    d != 0.5 the complement of a Bernoulli(d) coalition is Bernoulli(1 - d), so the pair would
    estimate (beta_d + beta_{1-d}) / 2; the estimator serves the Banzhaf index only.

    References:
        Fumagalli et al. (2024), shapiq: the pairing trick (each sampled coalition with its complement).

    Raises:
        ValueError: for d other than 0.5.
    """
    if d is not None and d != 0.5:
        raise ValueError(f"complementary stars estimate the Banzhaf value (d = 0.5) only, got d={d}")
    eye = jnp.eye(num_players, dtype=bool)

    def draw(key, i):
        t = jax.random.bernoulli(jax.random.fold_in(key, i), 0.5, (num_players,))
        return jnp.concatenate([t[None], t[None] ^ eye, (~t)[None], (~t)[None] ^ eye])

    def samples(masks, values):
        k = num_players + 1
        return 0.5 * (_star_marginals(masks[:, :k], values[:, :k]) + _star_marginals(masks[:, k:], values[:, k:]))

    return sample_estimator(num_players, draw, 2 * num_players + 2, samples, "complementary")


__all__ = ["complementary_banzhaf"]
