"""gtap_jax: prune neural networks with cooperative game theory, in JAX.

The core (engine, games, indices, uncertainty, strategies) sees only value
functions ``bool[P] -> scalar`` and imports no neural-network library.
"""

from gtap_jax.engine import evaluate_coalitions
from gtap_jax.games import restrict
from gtap_jax.indices import Attribution, estimate, exact, make_estimator
from gtap_jax.strategies import by_estimate, by_exact, iterated_building, iterated_pruning, top_n
from gtap_jax.uncertainty import Bands, choose_d, uncertainty_bands

__all__ = [
    "Attribution",
    "Bands",
    "by_estimate",
    "by_exact",
    "choose_d",
    "estimate",
    "evaluate_coalitions",
    "exact",
    "iterated_building",
    "iterated_pruning",
    "make_estimator",
    "restrict",
    "top_n",
    "uncertainty_bands",
]
