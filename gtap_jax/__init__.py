"""gtap_jax: prune neural networks with cooperative game theory, in JAX.

The core (``engine``, ``games``, ``indices``, ``strategies``, ``uncertainty``,
``layout``) sees only value functions ``bool[P] -> scalar`` and imports no
neural-network library. The network side (``network``: the model adapters,
``network_game``, ``compact`` for any model, ``compact_flax`` deprecated;
``baselines``, ``models``, ``data``, ``experiment``) is imported on first use,
as an attribute (``gtap_jax.network``) or by name (``gtap_jax.network_game``).
"""

import importlib

from gtap_jax import engine, games, indices, layout, registry, strategies, uncertainty  # noqa: F401 (attributes)
from gtap_jax.engine import evaluate_coalitions, make_plan
from gtap_jax.games import restrict
from gtap_jax.indices import Attribution, estimate, exact, make_estimator
from gtap_jax.layout import PlayerLayout
from gtap_jax.strategies import Scores, Settle, by_estimate, by_exact, iterated_building, iterated_pruning, top_n
from gtap_jax.uncertainty import Bands, choose_d, uncertainty_bands

# Names of the network side, loaded on first use so that the core stays free of Flax.
_LAZY = {name: "gtap_jax.network" for name in ("accuracy", "adapt", "compact", "compact_flax", "network_game")}
_LAZY_MODULES = {
    "baselines": "gtap_jax.baselines",
    "data": "gtap_jax.data",
    "experiment": "gtap_jax.experiment",
    "models": "gtap_jax.models",
    "network": "gtap_jax.network",
    # where these modules now live
    "compaction": "gtap_jax.network.staged.slicing",
    "distributed": "gtap_jax.engine.distributed",
    "memory": "gtap_jax.engine.memory",
    "train": "gtap_jax.network.train",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'gtap_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))


__all__ = [
    "Attribution",
    "Bands",
    "PlayerLayout",
    "Scores",
    "Settle",
    "accuracy",
    "adapt",
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
    "make_plan",
    "network_game",
    "restrict",
    "top_n",
    "uncertainty_bands",
]
