"""gtap_jax: prune neural networks with cooperative game theory, in JAX.

The core (engine, games, indices, uncertainty, strategies, layout) sees only
value functions ``bool[P] -> scalar`` and imports no neural-network library.
The flax side (``network_game``, ``compact``, ``compact_flax``, ``models``, ``train``, ``data``,
``baselines``, ``experiment``) is imported on first use, as an attribute
(``gtap_jax.data``) or by name.
"""

import importlib

from gtap_jax import engine, games, indices, layout, registry, strategies, uncertainty  # noqa: F401 (attributes)
from gtap_jax.engine import evaluate_coalitions
from gtap_jax.games import restrict
from gtap_jax.indices import Attribution, estimate, exact, make_estimator
from gtap_jax.layout import PlayerLayout
from gtap_jax.strategies import by_estimate, by_exact, iterated_building, iterated_pruning, top_n
from gtap_jax.uncertainty import Bands, choose_d, uncertainty_bands

_LAZY = {
    "network_game": ("gtap_jax.games.network", "network_game"),
    "compact": ("gtap_jax.compaction", "compact"),
    "compact_flax": ("gtap_jax.flax_compact", "compact_flax"),
}
_LAZY_MODULES = ("baselines", "compaction", "data", "distributed", "experiment", "memory", "models", "train")


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"gtap_jax.{name}")
    raise AttributeError(f"module 'gtap_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))


__all__ = [
    "Attribution",
    "Bands",
    "PlayerLayout",
    "by_estimate",
    "by_exact",
    "choose_d",
    "compact",
    "compact_flax",
    "estimate",
    "evaluate_coalitions",
    "exact",
    "iterated_building",
    "iterated_pruning",
    "make_estimator",
    "network_game",
    "restrict",
    "top_n",
    "uncertainty_bands",
]
