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

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Key

PRNGKey: TypeAlias = Key[Array, ""]
Coalition: TypeAlias = Bool[Array, " P"]
Coalitions: TypeAlias = Bool[Array, "C P"]
Values: TypeAlias = Float[Array, " C"]
Attribution: TypeAlias = Float[Array, " P"]
# One coalition -> one scalar; JAX-traceable. The engine vmaps it over coalitions.
ValueFn: TypeAlias = Callable[[Coalition], Float[Array, ""]]
PyTree: TypeAlias = Any
# One input example: its shape (float32 inputs), or a jax.ShapeDtypeStruct (token ids are integers).
InputShape: TypeAlias = Sequence[int] | jax.ShapeDtypeStruct


def example_batch(input_shape: InputShape, batch: int = 1) -> jax.ShapeDtypeStruct:
    """``batch`` examples of ``input_shape``, with its dtype (float32 for a plain shape)."""
    shape = tuple(getattr(input_shape, "shape", input_shape))
    return jax.ShapeDtypeStruct((batch, *shape), getattr(input_shape, "dtype", jnp.float32))


def zeros(spec: jax.ShapeDtypeStruct) -> jax.Array:
    """An array of zeros of ``spec``'s shape and dtype."""
    return jnp.zeros(spec.shape, spec.dtype)

__all__ = [
    "Attribution",
    "Coalition",
    "Coalitions",
    "InputShape",
    "PRNGKey",
    "PyTree",
    "ValueFn",
    "Values",
    "example_batch",
    "zeros",
]
