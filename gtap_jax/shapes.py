"""Shape glossary and array type aliases used across gtap_jax.

Dimension letters in jaxtyping annotations:

* ``C`` -- coalitions (leading axis of a batch of masks).
* ``P`` -- players (neurons); always the last axis of a mask.
* ``K`` -- coalitions produced by one estimator draw (e.g. ``P + 1`` for a permutation).
* ``B`` -- estimator draws in one chunk.
* ``Q`` -- keep fractions of an uncertainty band.
* ``L`` -- quantile levels.
* ``N`` -- examples of the evaluation set (never merged with ``C``).

A mask is ``True`` where a neuron is kept.
"""

from collections.abc import Callable
from typing import Any, TypeAlias

from jaxtyping import Array, Bool, Float, Key

PRNGKey: TypeAlias = Key[Array, ""]
Coalition: TypeAlias = Bool[Array, " P"]
Coalitions: TypeAlias = Bool[Array, "C P"]
Values: TypeAlias = Float[Array, " C"]
Attribution: TypeAlias = Float[Array, " P"]
# One coalition -> one scalar; JAX-traceable. The engine vmaps it over coalitions.
ValueFn: TypeAlias = Callable[[Coalition], Float[Array, ""]]
PyTree: TypeAlias = Any

__all__ = [
    "Attribution",
    "Coalition",
    "Coalitions",
    "PRNGKey",
    "PyTree",
    "ValueFn",
    "Values",
]
