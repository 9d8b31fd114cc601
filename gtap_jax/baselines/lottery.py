"""Lottery ticket: iterative magnitude pruning of neurons with rewind to the initial weights, for any model.

Level by level, from the largest size to the smallest: keep the ``size``
survivors with the largest incoming-weight norms of the current trained network
(per layer, in proportion to the layer sizes: :func:`gtap_jax.layout.keep_per_layer`),
rewind them to the initial weights and train with the others silenced; that
ticket's weights rank the next level. The training is the caller's, through
the network adapter's hook (``Network.train_masked``):

* built-in models: ``train_fn(network, masks) -> network``, e.g. ``lambda net, masks: net.fit(key, x, y,
  epochs=5, masks=masks)`` (``masks``: ``{layer: bool[units]}``);
* Linen: ``train_fn(apply_fn, variables) -> variables``, where ``apply_fn`` is ``model.apply``
  with the dropped features zeroed and ``variables`` are the initial ones;
* NNX: ``train_fn(model) -> model``, given a clone of the initial model with its named modules
  masked (``nnx.Optimizer(model, tx, wrt=nnx.Param)`` leaves the masks alone); the wrappers are
  taken out afterwards.

References:
    Frankle and Carbin, The Lottery Ticket Hypothesis, ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gtap_jax.baselines.scores import magnitude_scores
from gtap_jax.layout import PlayerLayout, keep_per_layer
from gtap_jax.network import Network, adapt


def lottery_ticket(
    model,
    init,
    trained,
    layout: PlayerLayout,
    sizes: Sequence[int],
    train_fn: Callable,
    *,
    on_level: Callable[[int, np.ndarray, Network], None] | None = None,
) -> dict[int, np.ndarray]:
    """Masks found by iterative magnitude pruning with rewinding, ``{size: bool[P]}`` (module docstring).

    Args:
        model: the module of ``init`` and ``trained`` (a built-in model or a Linen module, whose
            ``init`` and ``trained`` are its parameters or variables), or None when they are
            NNX modules or ``Network`` objects.
        init, trained: the initial and the trained network.
        layout: the players.
        sizes: players kept at each level (any order; played from the largest).
        train_fn: the training of one level (module docstring).
        on_level: called with ``(size, mask, ticket)`` after each level (the ticket as a ``Network``).
    """
    start = adapt(init) if model is None else adapt(model, init)
    current = adapt(trained) if model is None else adapt(model, trained)
    alive, out = np.ones(layout.num_players, bool), {}
    for size in sorted({int(s) for s in sizes}, reverse=True):
        alive = keep_per_layer(magnitude_scores(current, None, layout), layout, size, within=alive)
        current = start.train_masked(layout, alive, train_fn)
        out[size] = alive.copy()
        if on_level is not None:
            on_level(size, alive.copy(), current)
    return out


__all__ = ["lottery_ticket"]
