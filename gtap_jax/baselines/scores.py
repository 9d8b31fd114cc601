"""Neuron scores of the baselines: weight magnitude, weight x gradient, a gate's gradient, leave-one-out, random.

All work at the granularity of GTAP (whole dense units, conv output channels,
the features of named modules: the players of a :class:`~gtap_jax.layout.PlayerLayout`)
and on any model the network adapter takes: ``model`` and ``params`` as
:func:`gtap_jax.network.adapt` reads them (a built-in model and its ``"params"``, a
Linen module and its variables, an NNX module and None, or a ``Network``). A player's
weights are the slice of its module's ``kernel`` along the last axis (a Dense unit's
column, a Conv channel's filter); a named module without one (a BatchNorm, an
activation) has no incoming weights to score, which is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gtap_jax.engine import evaluate_coalitions
from gtap_jax.layout import PlayerLayout
from gtap_jax.network import adapt, network_game
from gtap_jax.shapes import PyTree


def _per_unit(kernel: np.ndarray, fn) -> np.ndarray:
    """Reduces a kernel ``[..., units]`` to one number per output unit."""
    k = np.asarray(kernel, np.float64)
    return fn(k.reshape(-1, k.shape[-1]))


def _traced(net, layout: PlayerLayout, x):
    """``net`` with the layers of ``layout`` traced on ``x`` where they name coupled groups or heads (their kernels are
    the members' or the projections', found on a traced pass)."""
    if x is not None and any(name.endswith((":group", ":heads")) for name in layout.names):
        net.layout(list(layout.names), np.asarray(x)[:2])
    return net


def magnitude_scores(model, params: PyTree, layout: PlayerLayout, *, x=None,
                     apply_kwargs: Mapping | None = None) -> np.ndarray:
    """Weight magnitude (WMP): L2 norm of each neuron's incoming weights, ``float[P]``.

    Dense unit: its kernel column; conv channel: its whole filter; a coupled group's feature
    (``"stem:group"``): the column of every member that produces it; a head: its query, key and value columns
    and its rows of the output projection (``x``, a few inputs, traces the group or the attention).
    """
    kernels = _traced(adapt(model, params, apply_kwargs=apply_kwargs), layout, x).player_kernels(layout)
    return np.concatenate([_per_unit(k, lambda k: np.sqrt(np.sum(k**2, 0))) for k in kernels])


def taylor_scores(model, params: PyTree, x, y, layout: PlayerLayout, *, apply_kwargs: Mapping | None = None,
                  batch_size: int = 500) -> np.ndarray:
    """Weight x gradient magnitude (W·GMP, first-order Taylor): ``float[P]``.

    Each neuron scores sum over its incoming weights of ``|w * dL/dw|``, the
    first-order estimate of the loss change from zeroing them, with the
    gradient of the mean cross-entropy over ``(x, y)`` (summed over batches of ``batch_size``).

    References:
        Molchanov et al., Importance Estimation for Neural Network Pruning, CVPR 2019.
    """
    net = _traced(adapt(model, params, apply_kwargs=apply_kwargs), layout, x)

    @jax.jit
    def grad_sum(p, xb, yb):
        def loss(p):
            return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(net.apply_params(p, xb), yb))

        return jax.grad(loss)(p)

    total = None
    for s in range(0, len(y), batch_size):
        g = grad_sum(net.params, jnp.asarray(x[s : s + batch_size]), jnp.asarray(y[s : s + batch_size]))
        total = g if total is None else jax.tree.map(jnp.add, total, g)
    grads = jax.tree.map(lambda t: np.asarray(t) / max(len(y), 1), total)
    pairs = zip(net.player_kernels(layout), net.player_kernels(layout, grads), strict=True)
    return np.concatenate([_per_unit(w * g, lambda k: np.sum(np.abs(k), 0)) for w, g in pairs])


def gate_scores(model, params: PyTree, x, y, layout: PlayerLayout, *, apply_kwargs: Mapping | None = None,
                chunk: int = 256) -> np.ndarray:
    """First-order Taylor on a gate per player: ``float[P]``, the mean over examples of ``|dL/dg_i|`` at ``g = 1``.

    The game's zero-fill mask made continuous: a gate ``g_i`` multiplies the player's features wherever the
    game silences them (the named module's output; a head where it enters the output projection; a coupled
    group's members' outputs and consumers' inputs, so there the score is the total derivative over all
    of them), and a coalition is ``g`` in {0, 1}^P. The score is the first-order change of an example's
    cross-entropy when the player is removed, in absolute value, averaged over ``(x, y)``: for every kind
    of player, units, channels, heads and groups.

    References:
        Michel, Levy, Neubig, Are Sixteen Heads Really Better than One?, NeurIPS 2019 (head importance).
        Molchanov et al., Importance Estimation for Neural Network Pruning, CVPR 2019.
    """
    net = adapt(model, params, apply_kwargs=apply_kwargs)
    gates = jnp.ones(layout.num_players, jnp.float32)
    total = np.zeros(layout.num_players)
    for s in range(0, len(y), chunk):
        xb, yb = jnp.asarray(x[s : s + chunk]), jnp.asarray(y[s : s + chunk])
        forward = net.masked_logits(layout, xb, cache_prefix=False)

        def losses(g, forward=forward, yb=yb):
            return optax.softmax_cross_entropy_with_integer_labels(forward(layout.split(g), None), yb)

        jacobian = jax.jacfwd if layout.num_players <= len(yb) else jax.jacrev  # the fewer passes
        total += np.abs(np.asarray(jax.jit(jacobian(losses))(gates), np.float64)).sum(0)  # [examples, P]
    return total / max(len(y), 1)


def leave_one_out_scores(model, params: PyTree, x, y, layout: PlayerLayout, *,
                         apply_kwargs: Mapping | None = None) -> np.ndarray:
    """Leave-one-out: ``float[P]``, how much the cross-entropy on ``(x, y)`` rises without each player alone
    (``v(N) - v(N - i)`` of the zero-fill neg_loss game; P + 1 coalition values through the engine)."""
    fn, game_layout = network_game(model, params, x, y, layers=list(layout.names), metric="neg_loss",
                                   apply_kwargs=apply_kwargs)
    masks = ~np.eye(game_layout.num_players + 1, game_layout.num_players, k=-1, dtype=bool)  # row 0: everyone
    values = np.asarray(evaluate_coalitions(fn, masks), np.float64)
    return values[0] - values[1:]


def random_scores(key, layout: PlayerLayout) -> np.ndarray:
    """Uniform random scores, ``float[P]`` (the random-pruning baseline)."""
    return np.asarray(jax.random.uniform(key, (layout.num_players,)), np.float64)


__all__ = ["gate_scores", "leave_one_out_scores", "magnitude_scores", "random_scores", "taylor_scores"]
