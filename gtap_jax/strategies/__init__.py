"""Pruning strategies over masks: top_n, iterated_pruning, iterated_building."""

from gtap_jax.strategies.pruning import (
    STRATEGIES,
    AttributeFn,
    Round,
    StrategyResult,
    by_estimate,
    by_exact,
    iterated_building,
    iterated_pruning,
    strongest_first,
    top_n,
)

__all__ = [
    "STRATEGIES",
    "AttributeFn",
    "Round",
    "StrategyResult",
    "by_estimate",
    "by_exact",
    "iterated_building",
    "iterated_pruning",
    "strongest_first",
    "top_n",
]
