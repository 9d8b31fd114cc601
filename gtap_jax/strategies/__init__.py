"""Pruning strategies over masks: top_n, iterated_pruning, iterated_building (registry ``STRATEGIES``)."""

from gtap_jax.strategies.pruning import *  # noqa: F403
from gtap_jax.strategies.pruning import __all__  # noqa: F401
