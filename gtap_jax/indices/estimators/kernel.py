"""The Shapley value as a regression: unbiased KernelSHAP with paired sampling."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

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


__all__ = ["PAIRS_PER_DRAW", "kernel_shapley", "shapley_kernel_sizes"]
