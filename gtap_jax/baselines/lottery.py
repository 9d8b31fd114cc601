"""Lottery ticket: iterative magnitude pruning of neurons with rewind to the initial weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gtap_jax.baselines.scores import magnitude_scores
from gtap_jax.layout import PlayerLayout, keep_per_layer, masks_dict
from gtap_jax.models.staged import StagedModel
from gtap_jax.shapes import PyTree

# (params to start from, per-layer masks) -> trained params
TrainFn = Callable[[PyTree, dict], PyTree]


def lottery_ticket(
    model: StagedModel,
    init_params: PyTree,
    trained_params: PyTree,
    layout: PlayerLayout,
    sizes: Sequence[int],
    train_fn: TrainFn,
    *,
    on_level: Callable[[int, np.ndarray, PyTree], None] | None = None,
) -> dict[int, np.ndarray]:
    """Masks found by iterative magnitude pruning with rewinding, one per size.

    Level by level, from the largest size to the smallest: keep the ``size``
    survivors with the largest incoming-weight norms of the current trained
    network (per layer, in proportion to the layer sizes), rewind them to
    their initial weights and retrain with the others silenced; that ticket's
    weights rank the next level.

    Args:
        model, init_params, trained_params: the network, its initial and its
            trained parameters.
        layout: the players.
        sizes: neurons kept at each level (any order; sorted decreasing).
        train_fn: ``(params, masks) -> params``, the ticket training.
        on_level: called with ``(size, mask, ticket_params)`` after each level.

    Returns:
        ``{size: bool[P]}``.

    References:
        Frankle and Carbin, The Lottery Ticket Hypothesis, ICLR 2019.
    """
    return ticket_levels(
        trained_params, layout, sizes, lambda params: magnitude_scores(model, params, layout),
        lambda alive: train_fn(init_params, masks_dict(layout, alive)), on_level=on_level,
    )


def ticket_levels(trained, layout: PlayerLayout, sizes: Sequence[int], score: Callable, retrain: Callable, *,
                  on_level: Callable | None = None) -> dict[int, np.ndarray]:
    """The level loop of every lottery ticket: from the largest size down, keep each layer's top ``score`` share
    among the survivors, ``retrain(alive)`` the rewound network, and score the next level on that ticket."""
    alive = np.ones(layout.num_players, bool)
    current, out = trained, {}
    for size in sorted({int(s) for s in sizes}, reverse=True):
        alive = keep_per_layer(score(current), layout, size, within=alive)
        current = retrain(alive)
        out[size] = alive.copy()
        if on_level is not None:
            on_level(size, alive.copy(), current)
    return out


__all__ = ["lottery_ticket", "ticket_levels"]
