"""Baselines at neuron granularity: weight magnitude, weight x gradient, a gate's gradient, leave-one-out, random,
lottery ticket.

All are reached through one registry, ``BASELINES``, of functions
``baseline(inputs, sizes) -> {size: bool[P]}`` (the score-based ones also take an ``allocation``);
they score and retrain any model
through the network adapter (:mod:`gtap_jax.network`).
"""

from gtap_jax.baselines.lottery import lottery_ticket
from gtap_jax.baselines.registry import BASELINES, BaselineFn, BaselineInputs, ScoreBaseline, by_scores
from gtap_jax.baselines.scores import (
    gate_scores,
    leave_one_out_scores,
    magnitude_scores,
    random_scores,
    taylor_scores,
)

__all__ = [
    "BASELINES",
    "BaselineFn",
    "BaselineInputs",
    "ScoreBaseline",
    "by_scores",
    "gate_scores",
    "leave_one_out_scores",
    "lottery_ticket",
    "magnitude_scores",
    "random_scores",
    "taylor_scores",
]
