"""Baselines at neuron granularity: weight magnitude, weight x gradient, random, lottery ticket.

All are reached through one registry, ``BASELINES``, of functions
``baseline(inputs, sizes) -> {size: bool[P]}``; they score and retrain any model
through the network adapter (:mod:`gtap_jax.network`).
"""

from gtap_jax.baselines.lottery import lottery_ticket
from gtap_jax.baselines.registry import BASELINES, BaselineFn, BaselineInputs, by_scores
from gtap_jax.baselines.scores import magnitude_scores, random_scores, taylor_scores

__all__ = [
    "BASELINES",
    "BaselineFn",
    "BaselineInputs",
    "by_scores",
    "lottery_ticket",
    "magnitude_scores",
    "random_scores",
    "taylor_scores",
]
