"""Neuron scores of the baselines: weight magnitude, weight x gradient, random.

All baselines work at the granularity of GTAP: whole dense units and conv
output channels, the players of a :class:`~gtap_jax.layout.PlayerLayout`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gtap_jax.layout import PlayerLayout
from gtap_jax.models.staged import StagedModel
from gtap_jax.shapes import PyTree


def _producers(model: StagedModel, layout: PlayerLayout) -> dict[str, str]:
    specs = {s.name: s.producer for s in model.site_specs()}
    return {name: specs[name] for name in layout.names}


def _per_unit(kernel: np.ndarray, fn) -> np.ndarray:
    """Reduces a kernel ``[..., units]`` to one number per output unit."""
    k = np.asarray(kernel, np.float64)
    return fn(k.reshape(-1, k.shape[-1]))


def magnitude_scores(model: StagedModel, params: PyTree, layout: PlayerLayout) -> np.ndarray:
    """Weight magnitude (WMP): L2 norm of each neuron's incoming weights, ``float[P]``.

    Dense unit: its kernel column; conv channel: its whole filter.
    """
    prod = _producers(model, layout)
    return np.concatenate(
        [_per_unit(params[prod[n]]["kernel"], lambda k: np.sqrt(np.sum(k**2, 0))) for n in layout.names]
    )


def taylor_scores(
    model: StagedModel, params: PyTree, x, y, layout: PlayerLayout, *, batch_size: int = 500
) -> np.ndarray:
    """Weight x gradient magnitude (W·GMP, first-order Taylor): ``float[P]``.

    Each neuron scores sum over its incoming weights of ``|w * dL/dw|``, the
    first-order estimate of the loss change from zeroing them, with the
    gradient of the mean cross-entropy over ``(x, y)``.

    References:
        Molchanov et al., Importance Estimation for Neural Network Pruning, CVPR 2019.
    """

    @jax.jit
    def grad_sum(p, xb, yb):
        def loss(p):
            logits = model.apply({"params": p}, xb)
            return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, yb))

        return jax.grad(loss)(p)

    total = None
    for s in range(0, len(y), batch_size):
        g = grad_sum(params, jnp.asarray(x[s : s + batch_size]), jnp.asarray(y[s : s + batch_size]))
        total = g if total is None else jax.tree.map(jnp.add, total, g)
    grads = jax.tree.map(lambda t: np.asarray(t) / max(len(y), 1), total)
    prod = _producers(model, layout)
    return np.concatenate(
        [
            _per_unit(np.asarray(params[prod[n]]["kernel"]) * grads[prod[n]]["kernel"], lambda k: np.sum(np.abs(k), 0))
            for n in layout.names
        ]
    )


def random_scores(key, layout: PlayerLayout) -> np.ndarray:
    """Uniform random scores, ``float[P]`` (the random-pruning baseline)."""
    return np.asarray(jax.random.uniform(key, (layout.num_players,)), np.float64)


__all__ = ["magnitude_scores", "random_scores", "taylor_scores"]
