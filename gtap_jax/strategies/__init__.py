"""Pruning strategies over masks (registry ``STRATEGIES``: top_n, iterated_pruning, iterated_building) and
the attribute functions that score players for them (``by_estimate``, on a budget or settled; ``by_exact``),
all returning ``Scores``."""

from gtap_jax.strategies.attribute import by_estimate, by_exact, fixed_budget_scores, round_budget
from gtap_jax.strategies.pruning import STRATEGIES, Round, StrategyResult, iterated_building, iterated_pruning, top_n
from gtap_jax.strategies.scores import AttributeFn, Scores
from gtap_jax.strategies.settle import (
    RoundSpec,
    Settle,
    SettleState,
    settle_round,
    settled_players,
    share_epsilon,
    z_value,
)

__all__ = [
    "STRATEGIES",
    "AttributeFn",
    "Round",
    "RoundSpec",
    "Scores",
    "Settle",
    "SettleState",
    "StrategyResult",
    "by_estimate",
    "by_exact",
    "fixed_budget_scores",
    "iterated_building",
    "iterated_pruning",
    "round_budget",
    "settle_round",
    "settled_players",
    "share_epsilon",
    "top_n",
    "z_value",
]
