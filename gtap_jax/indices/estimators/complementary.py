"""Complementary stars: a coalition T and its complement N \\ T, each with its flips. The Banzhaf value from a
uniform T; the Shapley value from pairs whose T's share of players is stratified (Owen sampling)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gtap_jax.indices.estimators.base import Estimator, star_estimator, star_marginals
from gtap_jax.indices.focus import sample_coalitions

# Owen sampling's draw: this many complementary pairs of stars, the k-th pair's share from [k, k + 1) / 8.
OWEN_PAIRS = 4


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

    def bases(key, i):
        t = jax.random.bernoulli(jax.random.fold_in(key, i), 0.5, (num_players,))
        return jnp.stack([t, ~t])

    return star_estimator(num_players, bases, 2, star_marginals, "complementary", complements=True)


@functools.cache
def owen_shapley(num_players: int, d: None = None) -> Estimator:
    """The Shapley value by Owen sampling with complementary stars (``d`` is unused).

    The Shapley value is the integral over q in [0, 1] of beta_q (Owen's multilinear extension). Each draw is
    4 pairs of stars: the k-th pair's T has each player with probability q, q uniform on [k, k + 1) / 8, and
    its complement N \\ T has 1 - q, so the 8 stars take one q from each eighth of [0, 1]; player i's sample is
    the mean of its 8 marginals ``v(T + i) - v(T - i)`` (8P + 8 evaluations). It is unbiased: over the 8
    strata the q are uniform on [0, 1]. A star at T with each player's flip is what a permutation's prefixes
    give each player, but the stars are valued without a chain's sequence, and a game that values flips by
    their layer values them so (``gtap_jax.engine.evaluate_flips``); the pairs and the strata take the
    pairwise terms and the dependence on the coalition's size out of the sample (the focused samples'
    design, ``gtap_jax.indices.focus``).

    References:
        Owen, Multilinear extensions of games, Management Science 18(5), 1972.
        Okhrati and Lipani, A multilinear sampling algorithm to estimate Shapley values, ICPR 2020.
    """

    def bases(key, i):
        return sample_coalitions(jax.random.fold_in(key, i), num_players, None, 2 * OWEN_PAIRS)

    return star_estimator(num_players, bases, 2 * OWEN_PAIRS, star_marginals, "owen", complements=True)


__all__ = ["OWEN_PAIRS", "complementary_banzhaf", "owen_shapley"]
