"""Value functions: closed-form games and restricted sub-games."""

from gtap_jax.games.closed_form import (
    additive_game,
    coalition_index,
    lookup_game,
    random_lookup_table,
    unanimity_game,
    unanimity_indices,
    weighted_majority_game,
)
from gtap_jax.games.subgame import restrict

__all__ = [
    "additive_game",
    "coalition_index",
    "lookup_game",
    "random_lookup_table",
    "restrict",
    "unanimity_game",
    "unanimity_indices",
    "weighted_majority_game",
]
