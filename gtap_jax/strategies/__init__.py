"""Pruning strategies over masks: top_n, iterated_pruning, iterated_building (registry ``STRATEGIES``),
and the attribute functions that score players for them (``by_estimate``, settled or on a budget; ``by_exact``)."""

from gtap_jax.strategies.attribute import *  # noqa: F403
from gtap_jax.strategies.attribute import __all__ as _attribute_all
from gtap_jax.strategies.pruning import *  # noqa: F403
from gtap_jax.strategies.pruning import __all__ as _pruning_all

__all__ = [*_attribute_all, *_pruning_all]
