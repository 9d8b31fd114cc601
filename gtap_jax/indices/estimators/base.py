"""What every estimator is: a NamedTuple of pure functions over explicit state, and the running moments they share.

An :class:`Estimator` draws coalitions (draw ``i`` from ``fold_in(key, i)``, so
results do not depend on chunking or device count), folds evaluated draws into
an explicit state of running moments, and finalizes to a value and a standard
error per player. The driver is :func:`gtap_jax.estimate`; each estimator is
one file of this package and one line of its registry.

Running moments are merged per chunk with Chan et al.'s parallel update (count,
mean, sum of squared deviations) rather than raw sums of squares: values near
one with a small spread would otherwise lose their variance to float32
cancellation on long runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from gtap_jax.shapes import PRNGKey


class Moments(NamedTuple):
    """Running count, mean and sum of squared deviations, per player."""

    count: Float[Array, " P"]
    mean: Float[Array, " P"]
    m2: Float[Array, " P"]


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


def mean_and_stderr(m: Moments) -> tuple[Float[Array, " P"], Float[Array, " P"]]:
    """Sample mean and its standard error; the error is inf with fewer than two samples."""
    var = m.m2 / jnp.maximum(m.count - 1.0, 1.0)
    se = jnp.sqrt(var / jnp.maximum(m.count, 1.0))
    return m.mean, jnp.where(m.count >= 2, se, jnp.inf)


class SampleState(NamedTuple):
    """State of estimators whose every draw yields one sample per player."""

    num_draws: Int[Array, ""]
    moments: Moments


EstimatorState = Any  # each estimator's own NamedTuple of arrays (SampleState, MSRState, RegressionState, ...)


class Replay(NamedTuple):
    """A second pass over an estimate's draws before it is finalized: the coalitions are drawn again from the
    key (none is evaluated), for sums that depend on the final estimate.

    Attributes:
        init: ``state -> acc``.
        update: ``(acc, masks bool[B, K, P], valid bool[B]) -> acc``.
    """

    init: Callable[[EstimatorState], Any]
    update: Callable[..., Any]


class Estimator(NamedTuple):
    """A Monte Carlo power-index estimator (optax-style pure functions).

    Attributes:
        draw: ``(key, i) -> bool[K, P]``, the coalitions of draw ``i``.
        init: ``() -> state``.
        update: ``(state, masks bool[B, K, P], values float[B, K], valid bool[B])
            -> state``; draws with ``valid=False`` (chunk padding) are ignored.
        finalize: ``state -> (values float[P], stderr float[P])``, or ``(state, acc) -> ...``
            with a ``replay``.
        draw_size: K, coalitions evaluated per draw.
        name: the estimator's name (its registry key).
        replay: a :class:`Replay` whose result ``finalize`` takes, or None.
        star_bases: a star estimator's ``(key, i) -> bool[S, P]``, the first coalitions of draw ``i``'s S stars
            (:func:`star_estimator`): a game that values stars of known flips takes only these
            (``gtap_jax.engine.evaluate_flips``), and ``update`` then gets them in place of the masks.
        complements: every odd one of ``star_bases`` is its predecessor's complement.
    """

    draw: Callable[[PRNGKey, Any], Bool[Array, "K P"]]
    init: Callable[[], EstimatorState]
    update: Callable[..., EstimatorState]
    finalize: Callable[..., tuple[Float[Array, " P"], Float[Array, " P"]]]
    draw_size: int
    name: str
    replay: Replay | None = None
    star_bases: Callable[[PRNGKey, Any], Bool[Array, "S P"]] | None = None
    complements: bool = False


def sample_estimator(num_players, draw, draw_size, samples_fn, name) -> Estimator:
    """An estimator whose draw gives one sample ``x[P]`` of every player's contribution (their running moments
    are its state; ``samples_fn(masks[B, K, P], values[B, K]) -> x[B, P]``)."""

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


def star_estimator(num_players, bases, num_stars, samples_fn, name, *, complements=False) -> Estimator:
    """An estimator whose draw is ``num_stars`` stars: each of ``bases(key, i) -> bool[S, P]``, then it with each
    player flipped in turn (K = S (P + 1)), one sample per player a draw (``samples_fn(bases[B, S, P], values[B,
    K]) -> x[B, P]``). Its ``update`` takes the draws' masks or only their bases."""
    k = num_players + 1
    steps = jnp.concatenate([jnp.zeros((1, num_players), bool), jnp.eye(num_players, dtype=bool)])

    def draw(key, i):
        return (bases(key, i)[:, None, :] ^ steps[None]).reshape(num_stars * k, num_players)

    def samples(masks, values):
        return samples_fn(masks if masks.shape[1] == num_stars else masks[:, ::k], values)

    est = sample_estimator(num_players, draw, num_stars * k, samples, name)
    return est._replace(star_bases=bases, complements=complements)


def star_marginals(bases, values):
    """``x[B, P]``: each player's mean marginal ``v(T + i) - v(T - i)`` over the S stars of each of B draws, from
    their bases ``T`` (``bool[B, S, P]``) and values (``[B, S (P + 1)]``: each star's base, then its flips)."""
    b, s, p = bases.shape
    values = values.reshape(b, s, p + 1)
    v_t, v_flip = values[..., :1], values[..., 1:]
    return jnp.where(bases, v_t - v_flip, v_flip - v_t).mean(axis=1)


__all__ = [
    "Estimator",
    "EstimatorState",
    "Moments",
    "Replay",
    "SampleState",
    "mean_and_stderr",
    "merge_moments",
    "sample_estimator",
    "star_estimator",
    "star_marginals",
    "zero_moments",
]
