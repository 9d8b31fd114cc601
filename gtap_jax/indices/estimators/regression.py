"""Biased Banzhaf beta_d as a least-squares fit of v on membership (the regression estimator)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve
from jaxtyping import Array, Float, Int

from gtap_jax.indices.estimators.base import Estimator, Replay


class RegressionState(NamedTuple):
    """State of the regression estimator.

    Attributes:
        num_draws: draws folded in.
        mean_x, mean_v, cxx, cxv, svv: running means and co-moments of (x, v)
            (Chan et al.'s merge), for the fit.
        shift: a fixed reference value of v (the first chunk's mean) that the
            sums below subtract, so they do not cancel in float32.
        s0, s1, s2: per player, sums of ``(x_i - d)^2 u^k`` for k = 0, 1, 2, with
            ``u = v - shift``.
        n0, n1: ``P x P`` sums of ``(x_i - d)^2 (x_j - d)`` and ``(x_i - d)^2 u (x_j - d)``.
    """

    num_draws: Int[Array, ""]
    mean_x: Float[Array, " P"]
    mean_v: Float[Array, ""]
    cxx: Float[Array, "P P"]
    cxv: Float[Array, " P"]
    svv: Float[Array, ""]
    shift: Float[Array, ""]
    s0: Float[Array, " P"]
    s1: Float[Array, " P"]
    s2: Float[Array, " P"]
    n0: Float[Array, "P P"]
    n1: Float[Array, "P P"]


@functools.cache
def regression_beta(num_players: int, d: float = 0.5) -> Estimator:
    """Biased Banzhaf beta_d as the slopes of a least-squares fit of v on membership.

    Each draw is one coalition S ~ Bernoulli(d)^P (one evaluation), as in MSR.
    The estimate is the ordinary least-squares fit ``v(S) ~ b + sum_i phi_i
    [i in S]``: players join independently, so the population slope of player
    i is ``E[v | i in S] - E[v | i not in S]``, which is beta_d exactly. The
    fit explains the other players' share of each value away, so it needs
    fewer evaluations than MSR's difference of means (``benchmarks/RESULTS.md``);
    it costs a few ``P x P`` co-moment updates per draw and one ``P x P`` solve
    at the end. Co-moments are merged per chunk with Chan et al.'s update.

    The standard error is heteroskedasticity-robust (a sandwich): the residual
    variance of a neuron game differs between coalitions with and without a
    player, and the classical OLS error, which assumes it does not, under-covers
    far from d = 0.5 (E[z^2] of 1.28-1.50 at d = 0.25 and 0.8 on random and
    heteroskedastic 6-player games with 2,000 draws; this error: 0.97-1.03). With x_i ~ Bernoulli(d)
    independent, the fit's influence on phi_i is ``(x_i - d) e / (d (1 - d))``
    for the residual e, so ``var(phi_i) = E[(x_i - d)^2 e^2] / (n d^2 (1 - d)^2)``.
    Expanding the residual ``e = (v - mean v) - phi . (x - mean x)`` gives sums
    kept exactly as the draws come in (``s*``, ``n*``, the co-moments), and one,
    ``(1 - 2d) sum x_i (phi . (x - d))^2``, that depends on the final phi in a way
    no P x P moment holds: a replay of the draws (drawn again from the key; no
    coalition is evaluated) sums it exactly before the estimate is finalized. (Its
    expectation under the design is no stand-in: on games a linear fit explains
    almost entirely, the substitution's error exceeds the true variance.) The
    error is infinite until there are more than P + 1 draws.

    References:
        Hammer, Holzman (1992), Approximations of pseudo-Boolean functions;
        applications to game theory. Fumagalli et al. (2024), shapiq.
        White (1980), A heteroskedasticity-consistent covariance matrix estimator.
    """

    def draw(key, i):
        return jax.random.bernoulli(jax.random.fold_in(key, i), d, (1, num_players))

    def init():
        zp = jnp.zeros((num_players,), jnp.float32)
        zpp = jnp.zeros((num_players, num_players), jnp.float32)
        z = jnp.zeros((), jnp.float32)
        return RegressionState(jnp.zeros((), jnp.int32), zp, z, zpp, zp, z, z, zp, zp, zp, zpp, zpp)

    replay = Replay(_fit, functools.partial(_replay_update, d))
    return Estimator(draw, init, functools.partial(_update, d), functools.partial(_finalize, d), 1, "regression",
                     replay)


def _update(d: float, state: RegressionState, masks, values, valid) -> RegressionState:
    """Folds a chunk of draws into the co-moments (Chan et al.'s merge) and the error's sums."""
    x = masks[:, 0, :].astype(jnp.float32)
    v = values[:, 0].astype(jnp.float32)
    w = valid.astype(jnp.float32)
    nb = jnp.sum(w)
    safe = jnp.maximum(nb, 1.0)
    mxb = w @ x / safe
    mvb = jnp.sum(w * v) / safe
    dx = (x - mxb[None, :]) * w[:, None]  # padded draws contribute nothing
    dv = (v - mvb) * w
    na = state.num_draws.astype(jnp.float32)
    n = na + nb
    frac = jnp.where(n > 0, nb / jnp.maximum(n, 1.0), 0.0)
    delta_x = mxb - state.mean_x
    delta_v = mvb - state.mean_v
    shift = jnp.where(state.num_draws == 0, mvb, state.shift)
    xt = x - d  # centred by the known design mean
    sq = jnp.square(xt) * w[:, None]
    u = v - shift
    return RegressionState(
        state.num_draws + jnp.sum(valid, dtype=jnp.int32),
        state.mean_x + delta_x * frac,
        state.mean_v + delta_v * frac,
        state.cxx + dx.T @ dx + jnp.outer(delta_x, delta_x) * na * frac,
        state.cxv + dx.T @ dv + delta_x * delta_v * na * frac,
        state.svv + jnp.sum(dv * dv) + jnp.square(delta_v) * na * frac,
        shift,
        state.s0 + jnp.sum(sq, axis=0),
        state.s1 + sq.T @ u,
        state.s2 + sq.T @ jnp.square(u),
        state.n0 + sq.T @ xt,
        state.n1 + (sq * u[:, None]).T @ xt,
    )


def _fit(state: RegressionState):
    """``(phi, zeros)``: the least-squares slopes, and the replay's sum to come (``_replay_update``)."""
    num_players = state.mean_x.shape[0]
    # A ridge of 1e-6 of the mean diagonal keeps the Cholesky factor defined
    # before the fit is determined (fewer than P + 1 distinct draws).
    ridge = 1e-6 * jnp.maximum(jnp.trace(state.cxx) / num_players, 1.0)
    phi = cho_solve(cho_factor(state.cxx + ridge * jnp.eye(num_players)), state.cxv)
    return phi, jnp.zeros_like(phi)


def _replay_update(d: float, acc, masks, valid):
    """Adds ``sum over the draws of x_i (phi . (x - d))^2``, per player, for a chunk of draws drawn again."""
    phi, total = acc
    x = masks[:, 0, :].astype(jnp.float32)
    q = (x - d) @ phi
    return phi, total + x.T @ (jnp.square(q) * valid.astype(jnp.float32))


def _finalize(d: float, state: RegressionState, acc):
    """The fit's slopes and their sandwich standard errors (the factory's docstring)."""
    phi, xq2 = acc  # xq2: sum over draws of x_i q^2, q = phi . (x - d)
    num_players = phi.shape[0]
    a = d * (1.0 - d)
    n = state.num_draws.astype(jnp.float32)
    # Sum over draws of (x_i - d)^2 e^2, e = (v - mean v) - phi . (x - mean x) the residual, expanded:
    mu = state.mean_v - state.shift
    sv = state.s1 - mu * state.s0  # sum (x_i - d)^2 (v - mean v)
    t1 = state.s2 - 2.0 * mu * state.s1 + jnp.square(mu) * state.s0  # ... (v - mean v)^2
    t2 = (state.n1 - mu * state.n0) @ phi  # ... (v - mean v) q, with q = phi . (x - d)
    off = state.mean_x - d
    gram = state.cxx + n * jnp.outer(off, off)  # sum (x - d)(x - d)^T
    t3 = d * d * (phi @ gram @ phi) + (1.0 - 2.0 * d) * xq2  # ... q^2, since (x_i - d)^2 = d^2 + (1 - 2d) x_i
    delta = phi @ off  # q centred by the design mean vs by the sample mean
    t = t1 - 2.0 * t2 + t3 + 2.0 * delta * (sv - state.n0 @ phi) + jnp.square(delta) * state.s0
    dof = n - num_players - 1
    var = jnp.maximum(t, 0.0) / jnp.square(n * a) * n / jnp.maximum(dof, 1.0)
    return phi, jnp.where(dof > 0, jnp.sqrt(var), jnp.inf)


__all__ = ["RegressionState", "regression_beta"]
