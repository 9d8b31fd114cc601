"""Biased Banzhaf beta_d as a least-squares fit of v on membership (the regression estimator)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve
from jaxtyping import Array, Float, Int

from gtap_jax.indices.estimators import Estimator


class RegressionState(NamedTuple):
    """State of the regression estimator: running means and co-moments of (x, v)."""

    num_draws: Int[Array, ""]
    mean_x: Float[Array, P]
    mean_v: Float[Array, ""]
    cxx: Float[Array, "P P"]
    cxv: Float[Array, P]
    svv: Float[Array, ""]



@functools.cache
def regression_beta(num_players: int, d: float = 0.5) -> Estimator:
    """Biased Banzhaf beta_d as the slopes of a least-squares fit of v on membership.

    Each draw is one coalition S ~ Bernoulli(d)^P (one evaluation), as in MSR.
    The estimate is the ordinary least-squares fit ``v(S) ~ b + sum_i phi_i
    [i in S]``: players join independently, so the population slope of player
    i is ``E[v | i in S] - E[v | i not in S]``, which is beta_d exactly. The
    fit explains the other players' share of each value away, so it needs
    fewer evaluations than MSR's difference of means (``benchmarks/RESULTS.md``);
    it costs a ``P x P`` co-moment update per draw and one ``P x P`` solve at
    the end. Co-moments are merged per chunk with Chan et al.'s update. The
    standard error is the classical OLS one (residual variance times the
    diagonal of the inverse co-moment matrix); it is infinite until there are
    more than P + 1 draws (with fewer, the slopes are those of a barely
    regularised fit: use MSR when the budget is not well above P).

    References:
        Hammer, Holzman (1992), Approximations of pseudo-Boolean functions;
        applications to game theory. Fumagalli et al. (2024), shapiq.
    """

    def draw(key, i):
        return jax.random.bernoulli(jax.random.fold_in(key, i), d, (1, num_players))

    def init():
        zp = jnp.zeros((num_players,), jnp.float32)
        z = jnp.zeros((), jnp.float32)
        return RegressionState(
            jnp.zeros((), jnp.int32), zp, z, jnp.zeros((num_players, num_players), jnp.float32), zp, z
        )

    def update(state, masks, values, valid):
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
        return RegressionState(
            state.num_draws + jnp.sum(valid, dtype=jnp.int32),
            state.mean_x + delta_x * frac,
            state.mean_v + delta_v * frac,
            state.cxx + dx.T @ dx + jnp.outer(delta_x, delta_x) * na * frac,
            state.cxv + dx.T @ dv + delta_x * delta_v * na * frac,
            state.svv + jnp.sum(dv * dv) + jnp.square(delta_v) * na * frac,
        )

    def finalize(state):
        # A ridge of 1e-6 of the mean diagonal keeps the Cholesky factor defined
        # before the fit is determined (fewer than P + 1 distinct draws).
        ridge = 1e-6 * jnp.maximum(jnp.trace(state.cxx) / num_players, 1.0)
        factor = cho_factor(state.cxx + ridge * jnp.eye(num_players))
        inv = cho_solve(factor, jnp.eye(num_players))
        phi = inv @ state.cxv
        n = state.num_draws.astype(jnp.float32)
        dof = n - num_players - 1
        residual = jnp.maximum(state.svv - phi @ state.cxv, 0.0) / jnp.maximum(dof, 1.0)
        se = jnp.sqrt(residual * jnp.maximum(jnp.diagonal(inv), 0.0))
        return phi, jnp.where(dof > 0, se, jnp.inf)

    return Estimator(draw, init, update, finalize, 1, "regression")


__all__ = ["RegressionState", "regression_beta"]
