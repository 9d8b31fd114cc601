"""Monte Carlo estimators of power indices, each a NamedTuple of pure functions.

An :class:`Estimator` draws coalitions (draw ``i`` from ``fold_in(key, i)``, so
results do not depend on chunking or device count), folds evaluated draws into
an explicit state of running moments, and finalizes to a value and a standard
error per player. The driver is :func:`gtap_jax.estimate`.

Running moments are merged per chunk with Chan et al.'s parallel update (count,
mean, sum of squared deviations) rather than raw sums of squares: values near
one with a small spread would otherwise lose their variance to float32
cancellation on long runs.

References:
    Castro, Gomez, Tejada (2009), permutation sampling of the Shapley value.
    Wang, Jia (2023), "Data Banzhaf": maximum sample reuse (MSR).
    Hammer, Holzman (1992): the Banzhaf value is the least-squares linear fit of
    the game under the uniform distribution; Fumagalli et al. (2024), shapiq's
    Faith-Banzhaf regression.
    Diaz-Ortiz et al. (2024), "Pruning Neural Networks Using Cooperative Game
    Theory", arXiv:2311.10468: biased Banzhaf beta_d for pruning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from gtap_jax.shapes import PRNGKey


class Moments(NamedTuple):
    """Running count, mean and sum of squared deviations, per player."""

    count: Float[Array, P]
    mean: Float[Array, P]
    m2: Float[Array, P]


def zero_moments(num_players: int) -> Moments:
    z = jnp.zeros((num_players,), jnp.float32)
    return Moments(z, z, z)


def merge_moments(m: Moments, x: Float[Array, "B P"], w: Float[Array, "B P"]) -> Moments:
    """Folds samples ``x`` with 0/1 weights ``w`` into ``m`` (Chan's parallel update)."""
    nb = jnp.sum(w, axis=0)
    safe = jnp.maximum(nb, 1.0)
    mb = jnp.sum(w * x, axis=0) / safe
    m2b = jnp.sum(w * jnp.square(x - mb[None, :]), axis=0)
    n = m.count + nb
    frac = jnp.where(n > 0, nb / jnp.maximum(n, 1.0), 0.0)
    delta = mb - m.mean
    mean = m.mean + delta * frac
    m2 = m.m2 + m2b + jnp.square(delta) * m.count * frac
    return Moments(n, mean, m2)


def mean_and_stderr(m: Moments) -> tuple[Float[Array, P], Float[Array, P]]:
    """Sample mean and its standard error; the error is inf with fewer than two samples."""
    var = m.m2 / jnp.maximum(m.count - 1.0, 1.0)
    se = jnp.sqrt(var / jnp.maximum(m.count, 1.0))
    return m.mean, jnp.where(m.count >= 2, se, jnp.inf)


class SampleState(NamedTuple):
    """State of estimators whose every draw yields one sample per player."""

    num_draws: Int[Array, ""]
    moments: Moments


class MSRState(NamedTuple):
    """State of maximum sample reuse: moments of v over draws with and without each player."""

    num_draws: Int[Array, ""]
    with_player: Moments
    without_player: Moments


EstimatorState = Any  # each estimator's own NamedTuple of arrays (SampleState, MSRState, RegressionState, ...)


class Estimator(NamedTuple):
    """A Monte Carlo power-index estimator (optax-style pure functions).

    Attributes:
        draw: ``(key, i) -> bool[K, P]``, the coalitions of draw ``i``.
        init: ``() -> state``.
        update: ``(state, masks bool[B, K, P], values float[B, K], valid bool[B])
            -> state``; draws with ``valid=False`` (chunk padding) are ignored.
        finalize: ``state -> (values float[P], stderr float[P])``.
        draw_size: K, coalitions evaluated per draw.
        name: the method's name.
    """

    draw: Callable[[PRNGKey, Any], Bool[Array, "K P"]]
    init: Callable[[], EstimatorState]
    update: Callable[..., EstimatorState]
    finalize: Callable[[EstimatorState], tuple[Float[Array, P], Float[Array, P]]]
    draw_size: int
    name: str


def _sample_estimator(num_players, draw, draw_size, samples_fn, name) -> Estimator:
    """An estimator whose draw gives one sample x[P] of every player's contribution."""

    def init():
        return SampleState(jnp.zeros((), jnp.int32), zero_moments(num_players))

    def update(state, masks, values, valid):
        x = samples_fn(masks, values)
        w = jnp.broadcast_to(valid[:, None], x.shape).astype(jnp.float32)
        return SampleState(
            state.num_draws + jnp.sum(valid, dtype=jnp.int32), merge_moments(state.moments, x, w)
        )

    def finalize(state):
        return mean_and_stderr(state.moments)

    return Estimator(draw, init, update, finalize, draw_size, name)


def _prefix_masks(ranks: Int[Array, P]) -> Bool[Array, "K P"]:
    """Prefixes of sizes 0..P of the order that puts player j at position ranks[j]."""
    num_players = ranks.shape[0]
    return ranks[None, :] < jnp.arange(num_players + 1)[:, None]


def _prefix_marginals(masks: Bool[Array, "B K P"], values: Float[Array, "B K"]) -> Float[Array, "B P"]:
    """Marginal contribution of each player along each drawn order (K = P + 1 prefixes)."""
    num_players = masks.shape[-1]
    # Player j is absent from the prefixes 0..rank_j, so rank_j = P - (#prefixes with j).
    rank = num_players - jnp.sum(masks, axis=1, dtype=jnp.int32)
    with_j = jnp.take_along_axis(values, rank + 1, axis=1)
    without_j = jnp.take_along_axis(values, rank, axis=1)
    return with_j - without_j


@functools.cache
def permutation_shapley(num_players: int, d: None = None, *, antithetic: bool = False) -> Estimator:
    """Shapley value by permutation sampling (``d`` is unused: the Shapley value has none).

    Each draw is a uniformly random order of the players; a player's sample is
    its marginal contribution when it joins the players before it (P + 1
    evaluations). With ``antithetic=True`` each order is paired with its
    reverse and the pair's average is one sample (2P + 2 evaluations).

    References:
        Castro, Gomez, Tejada (2009), Polynomial calculation of the Shapley
        value based on sampling. Antithetic orders: Mitchell et al. (2022),
        Sampling permutations for Shapley value estimation.
    """
    k = num_players + 1

    def draw(key, i):
        ranks = jnp.argsort(jax.random.permutation(jax.random.fold_in(key, i), num_players))
        if not antithetic:
            return _prefix_masks(ranks)
        return jnp.concatenate([_prefix_masks(ranks), _prefix_masks(num_players - 1 - ranks)])

    def samples(masks, values):
        if not antithetic:
            return _prefix_marginals(masks, values)
        forward = _prefix_marginals(masks[:, :k], values[:, :k])
        backward = _prefix_marginals(masks[:, k:], values[:, k:])
        return 0.5 * (forward + backward)

    name = "antithetic" if antithetic else "permutation"
    return _sample_estimator(num_players, draw, 2 * k if antithetic else k, samples, name)


def antithetic_shapley(num_players: int, d: None = None) -> Estimator:
    """Shapley value by antithetic permutation sampling: each order with its reverse."""
    return permutation_shapley(num_players, d, antithetic=True)


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

    return _sample_estimator(num_players, draw, num_players + 1, samples, "paired")


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


__all__ = [
    "Estimator",
    "EstimatorState",
    "MSRState",
    "Moments",
    "SampleState",
    "antithetic_shapley",
    "msr_beta",
    "paired_beta",
    "permutation_shapley",
]
