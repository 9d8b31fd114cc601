"""Baselines at neuron granularity: weight magnitude, weight x gradient, random, lottery ticket."""

from gtap_jax.baselines.lottery import lottery_ticket
from gtap_jax.baselines.scores import (
    allocate,
    keep_per_layer,
    magnitude_scores,
    masks_dict,
    random_scores,
    taylor_scores,
)

BASELINES = ("wmp", "wgmp", "random", "lottery")

__all__ = [
    "BASELINES",
    "allocate",
    "keep_per_layer",
    "lottery_ticket",
    "magnitude_scores",
    "masks_dict",
    "random_scores",
    "taylor_scores",
]
