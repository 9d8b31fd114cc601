"""The lottery ticket for any Flax model, with the user's own training function.

Iterative magnitude pruning of features with rewind to the initial weights, as
:func:`gtap_jax.baselines.lottery_ticket` does for the built-in models: level by
level, from the largest size to the smallest, keep the ``size`` survivors with the
largest incoming-weight norms of the current trained network (per layer, in
proportion to the layer sizes: :func:`gtap_jax.layout.keep_per_layer`), rewind
to the initial weights and train with the others silenced.

The training is yours, given the masked network:

* Linen: ``train_fn(apply_fn, variables) -> variables``, where ``apply_fn`` is
  ``model.apply`` with the dropped features zeroed (:func:`gtap_jax.flax_masks.masked_apply`),
  and ``variables`` are the initial ones;
* NNX: ``train_fn(model) -> model``, where ``model`` is a clone of the initial model with
  its named modules masked (:func:`gtap_jax.flax_masks.masked_clone`); train it as usual
  (``nnx.Optimizer(model, tx, wrt=nnx.Param)`` leaves the masks alone). The wrappers
  are taken out afterwards.

References:
    Frankle and Carbin, The Lottery Ticket Hypothesis, ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from flax import nnx

from gtap_jax.baselines.flax_scores import flax_magnitude_scores
from gtap_jax.baselines.lottery import ticket_levels
from gtap_jax.flax_masks import masked_apply, masked_clone, unmasked
from gtap_jax.layout import PlayerLayout


def flax_lottery_ticket(
    model,
    init: Any,
    trained: Any,
    layout: PlayerLayout,
    sizes: Sequence[int],
    train_fn: Callable,
    *,
    on_level: Callable[[int, np.ndarray, Any], None] | None = None,
) -> dict[int, np.ndarray]:
    """Masks of the lottery ticket at each size, ``{size: bool[P]}`` (module docstring).

    Args:
        model: the Linen module (``init`` and ``trained`` are its variables) or None for NNX
            (``init`` and ``trained`` are NNX models).
        init, trained: the initial and the trained network.
        layout: the players, as :func:`gtap_jax.network_game` returned them.
        sizes: features kept at each level (any order; played from the largest).
        train_fn: the training of one level (module docstring).
        on_level: called with ``(size, mask, ticket)`` after each level (a Linen ticket's variables
            or an NNX ticket model).
    """
    nnx_api = isinstance(init, nnx.Module)
    if nnx_api and model is not None:
        raise ValueError("for an NNX model pass model=None and the initial and trained models as init, trained")
    if nnx_api:
        return ticket_levels(trained, layout, sizes, lambda net: flax_magnitude_scores(net, None, layout),
                             lambda alive: unmasked(train_fn(masked_clone(init, layout, alive)), layout),
                             on_level=on_level)
    return ticket_levels(trained, layout, sizes, lambda variables: flax_magnitude_scores(model, variables, layout),
                         lambda alive: train_fn(masked_apply(model, layout, alive), init), on_level=on_level)


__all__ = ["flax_lottery_ticket"]
