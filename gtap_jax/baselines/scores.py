"""Neuron scores of the baselines, and per-layer allocation of a kept-neuron budget.

All baselines work at the granularity of GTAP: whole dense units and conv
output channels, the players of a :class:`~gtap_jax.models.PlayerLayout`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gtap_jax.models.staged import PlayerLayout, StagedModel
from gtap_jax.shapes import PyTree
from gtap_jax.strategies.pruning import strongest_first


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


def allocate(layout: PlayerLayout, r: int) -> dict[str, int]:
    """Splits ``r`` kept neurons over the layers in proportion to their sizes.

    Largest remainders; every layer keeps at least one neuron.

    Raises:
        ValueError: if r is not in [number of layers, P].
    """
    sizes = dict(layout.layers)
    if not len(sizes) <= r <= layout.num_players:
        raise ValueError(f"target size r must be in [{len(sizes)}, {layout.num_players}], got {r}")
    exact = {n: r * s / layout.num_players for n, s in sizes.items()}
    out = {n: max(1, int(np.floor(e))) for n, e in exact.items()}
    by_remainder = sorted(sizes, key=lambda n: (-(exact[n] - np.floor(exact[n])), list(sizes).index(n)))
    i = 0
    while sum(out.values()) < r:
        n = by_remainder[i % len(by_remainder)]
        if out[n] < sizes[n]:
            out[n] += 1
        i += 1
    while sum(out.values()) > r:  # the at-least-one floor overshot: take from the largest
        n = max(out, key=lambda k: out[k])
        out[n] -= 1
    return out


def keep_per_layer(
    scores: np.ndarray, layout: PlayerLayout, r: int, *, within: np.ndarray | None = None
) -> np.ndarray:
    """Keeps the highest-scoring neurons of each layer, ``allocate(layout, r)`` per layer.

    Args:
        scores: ``float[P]``; ties broken by position.
        layout: the players.
        r: neurons to keep in all.
        within: optional ``bool[P]``: choose only among these (iterative
            pruning); each layer keeps at most its survivors.

    Returns:
        ``bool[P]``.
    """
    scores = np.asarray(scores, np.float64)
    within = np.ones(layout.num_players, bool) if within is None else np.asarray(within, bool)
    keep = np.zeros(layout.num_players, bool)
    for name, count in allocate(layout, r).items():
        a, b = layout.offsets()[name]
        order = strongest_first(np.where(within[a:b], scores[a:b], -np.inf))
        keep[a + order[: min(count, int(within[a:b].sum()))]] = True
    return keep


def masks_dict(layout: PlayerLayout, mask: np.ndarray) -> Mapping[str, np.ndarray]:
    """Per-layer numpy masks from a flat ``bool[P]``."""
    return {n: np.asarray(m) for n, m in layout.split(np.asarray(mask, bool)).items()}


__all__ = ["allocate", "keep_per_layer", "magnitude_scores", "masks_dict", "random_scores", "taylor_scores"]
