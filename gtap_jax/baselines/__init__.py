"""Baselines at neuron granularity: weight magnitude, weight x gradient, random, lottery ticket.

All are reached through one registry, ``BASELINES``, of functions
``baseline(inputs, sizes) -> {size: bool[P]}``. ``flax_magnitude_scores`` and
``flax_taylor_scores`` score the players of any Linen or NNX model, and
``flax_lottery_ticket`` finds its lottery ticket with the user's training function.
"""

from gtap_jax.baselines.flax_lottery import flax_lottery_ticket
from gtap_jax.baselines.flax_scores import flax_magnitude_scores, flax_taylor_scores
from gtap_jax.baselines.lottery import lottery_ticket
from gtap_jax.baselines.registry import BASELINES, BaselineFn, BaselineInputs, by_scores
from gtap_jax.baselines.scores import magnitude_scores, random_scores, taylor_scores

__all__ = [
    "BASELINES",
    "BaselineFn",
    "BaselineInputs",
    "by_scores",
    "flax_lottery_ticket",
    "flax_magnitude_scores",
    "flax_taylor_scores",
    "lottery_ticket",
    "magnitude_scores",
    "random_scores",
    "taylor_scores",
]
