"""The Shapley and the Banzhaf value as regressions on complementary pairs of coalitions: unbiased KernelSHAP,
and Kernel Banzhaf."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve
from jaxtyping import Array, Float, Int

from gtap_jax.indices.estimators.base import Estimator, sample_estimator

# Pairs of complementary coalitions per draw; a draw also evaluates the empty and the
# full coalition, so 2 of its 2 * PAIRS + 2 evaluations (6%) go to v(N) - v(empty).
PAIRS_PER_DRAW = 15


def shapley_kernel_sizes(num_players: int) -> np.ndarray:
    """``float[P + 1]``: the Shapley kernel's distribution of coalition sizes, ``p(s) ~ 1 / (s (P - s))``, 0 < s < P."""
    s = np.arange(num_players + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        w = np.where((s > 0) & (s < num_players), 1.0 / (s * (num_players - s)), 0.0)
    return w / w.sum() if w.sum() > 0 else w


@functools.cache
def kernel_shapley(num_players: int, d: None = None) -> Estimator:
    """Shapley value by unbiased KernelSHAP with paired sampling (``d`` is unused).

    The Shapley value is the weighted least-squares fit of the game by an
    additive one under the Shapley kernel, constrained to ``sum phi = v(N) -
    v(empty)`` (Charnes et al. 1988; Lundberg, Lee 2017). With coalitions z
    drawn from the kernel (a size s with ``p(s) ~ 1 / (s (P - s))``, then a
    uniform subset of that size), the fit's matrix ``A = E[z z^T]`` is known in
    closed form, ``(1/2 - c) I + c 1 1^T`` with ``c = E[z_i z_j]``, and the
    solution is ``phi = (b - mean(b)) / (1/2 - c) + (v(N) - v(empty)) / P`` with
    ``b = E[z (v(z) - v(empty))]``: the sample mean of b gives an unbiased
    estimate with an ordinary standard error (Covert, Lee 2021). Each draw is
    ``PAIRS_PER_DRAW`` coalitions with their complements (paired sampling, which
    cancels v(empty) and most of the variance of v) and the empty and full
    coalitions: ``2 * PAIRS_PER_DRAW + 2`` evaluations, one sample per player.

    Measured (``benchmarks/RESULTS.md``), it is the least efficient Shapley
    estimator here: with many players the kernel puts most coalitions at sizes 1
    and P - 1, where v varies most. It is not a default.

    References:
        Lundberg, Lee (2017), A unified approach to interpreting model predictions.
        Covert, Lee (2021), Improving KernelSHAP: practical Shapley value
        estimation using linear regression, AISTATS.
    """
    p = num_players
    sizes = shapley_kernel_sizes(p)
    s = np.arange(p + 1)
    c = float(np.sum(sizes * s * (s - 1)) / (p * (p - 1))) if p > 1 else 0.0
    alpha = 0.5 - c
    log_sizes = jnp.log(jnp.asarray(np.where(sizes > 0, sizes, 1e-300), jnp.float32))
    k = 2 * PAIRS_PER_DRAW + 2

    def draw(key, i):
        kd = jax.random.fold_in(key, i)
        ks, ko = jax.random.split(kd)
        size = jax.random.categorical(ks, log_sizes, shape=(PAIRS_PER_DRAW,))
        order = jax.vmap(lambda kk: jax.random.permutation(kk, p))(jax.random.split(ko, PAIRS_PER_DRAW))
        ranks = jnp.argsort(order, axis=1)
        z = ranks < size[:, None]
        if p == 1:  # no sizes strictly between 0 and P: only the empty and full coalitions count
            z = jnp.zeros_like(z)
        edges = jnp.stack([jnp.zeros(p, bool), jnp.ones(p, bool)])
        return jnp.concatenate([z, ~z, edges])

    def samples(masks, values):
        z = masks[:, :PAIRS_PER_DRAW].astype(jnp.float32)
        v0, v_full = values[:, -2:-1], values[:, -1:]
        vz, vc = values[:, :PAIRS_PER_DRAW] - v0, values[:, PAIRS_PER_DRAW:-2] - v0
        g = 0.5 * jnp.mean(z * vz[..., None] + (1.0 - z) * vc[..., None], axis=1)  # b from this draw's pairs
        share = (v_full - v0) / p
        if p == 1:
            return jnp.broadcast_to(share, g.shape)
        return (g - jnp.mean(g, axis=1, keepdims=True)) / alpha + share

    return sample_estimator(p, draw, k, samples, "kernel")


class PairRegressionState(NamedTuple):
    """State of the Kernel Banzhaf estimator, with ``y = 2 x - 1`` a pair's first coalition in +-1 and
    ``w = v(S) - v(N \\ S)`` its value difference, less a reference fit ``ref . y`` (the first chunk's) so that the
    residual's sums do not cancel in float32.

    Attributes:
        num_draws: pairs folded in.
        ref: the reference slopes.
        syy: ``sum y y^T``.
        syw: ``sum y w``.
        sww: ``sum w^2``.
    """

    num_draws: Int[Array, ""]
    ref: Float[Array, " P"]
    syy: Float[Array, "P P"]
    syw: Float[Array, " P"]
    sww: Float[Array, ""]


@functools.cache
def kernel_banzhaf(num_players: int, d: float | None = 0.5) -> Estimator:
    """The Banzhaf value by least squares on complementary pairs (Kernel Banzhaf with paired sampling).

    Each draw is a uniform coalition S and its complement N \\ S (two evaluations). The Banzhaf value
    is the least-squares linear fit of the game under the uniform distribution (Hammer and Holzman);
    over a pair the intercept cancels, and ``v(S) - v(N \\ S) = sum_i phi_i y_i + (odd terms)`` with
    ``y_i = +1`` for a member of S and -1 otherwise. Every even-order term of the game (pairwise
    interactions among them) is the same at S and at its complement up to terms linear in y, which
    the fit absorbs: the pair removes the variance that pairwise interactions give an unpaired
    regression (``regression`` at d = 0.5). The slopes are ``(sum y y^T)^-1 sum y w``; their error
    is the fit's, ``sigma^2 diag((sum y y^T)^-1)`` with ``sigma^2`` the residual variance over
    ``n - P`` degrees of freedom. Since ``y_i^2 = 1`` for every pair, the heteroskedasticity-robust
    (sandwich) error has the same diagonal to first order, so the classical one is calibrated
    (``tests/test_contracts.py``). The error is infinite until there are more than P pairs. Only the
    Banzhaf value has this symmetry: the complement of a Bernoulli(d) coalition is Bernoulli(1 - d).

    References:
        Hammer, Holzman (1992), Approximations of pseudo-Boolean functions; applications to game theory.
        Liu et al. (2024), Kernel Banzhaf: a fast and robust estimator for Banzhaf values.
        Fumagalli et al. (2024), shapiq: the pairing trick (each sampled coalition with its complement).

    Raises:
        ValueError: for d other than 0.5.
    """
    if d is not None and d != 0.5:
        raise ValueError(f"Kernel Banzhaf estimates the Banzhaf value (d = 0.5) only, got d={d}")
    p = num_players

    def draw(key, i):
        s = jax.random.bernoulli(jax.random.fold_in(key, i), 0.5, (p,))
        return jnp.stack([s, ~s])

    def init():
        zp = jnp.zeros((p,), jnp.float32)
        return PairRegressionState(jnp.zeros((), jnp.int32), zp, jnp.zeros((p, p), jnp.float32), zp,
                                   jnp.zeros((), jnp.float32))

    def update(state, masks, values, valid):
        y = jnp.where(masks[:, 0, :], 1.0, -1.0) * valid[:, None]  # a padded draw contributes nothing
        w = (values[:, 0] - values[:, 1]).astype(jnp.float32) * valid
        first = y.T @ w / jnp.maximum(jnp.sum(valid), 1.0)  # the first chunk's slopes if y y^T were n I
        ref = jnp.where(state.num_draws == 0, first, state.ref)
        w = w - y @ ref
        return PairRegressionState(state.num_draws + jnp.sum(valid, dtype=jnp.int32), ref, state.syy + y.T @ y,
                                   state.syw + y.T @ w, state.sww + w @ w)

    def finalize(state):
        n = state.num_draws.astype(jnp.float32)
        ridge = 1e-6 * jnp.maximum(jnp.trace(state.syy) / p, 1.0)  # defined before the fit is determined
        factor = cho_factor(state.syy + ridge * jnp.eye(p))
        delta = cho_solve(factor, state.syw)
        residual = state.sww - 2.0 * delta @ state.syw + delta @ state.syy @ delta
        dof = n - p
        sigma2 = jnp.maximum(residual, 0.0) / jnp.maximum(dof, 1.0)
        inverse_diag = jnp.diag(cho_solve(factor, jnp.eye(p)))
        return state.ref + delta, jnp.where(dof > 0, jnp.sqrt(sigma2 * inverse_diag), jnp.inf)

    return Estimator(draw, init, update, finalize, 2, "kernel_banzhaf")


__all__ = ["PAIRS_PER_DRAW", "PairRegressionState", "kernel_banzhaf", "kernel_shapley", "shapley_kernel_sizes"]
