"""The power indices: one registry entry each, with its parameter d and its exact weights.

An index is a semivalue: phi_i = sum over S not containing i of w(|S|) [v(S + i) - v(S)].
Its entry gives the weights w by coalition size and says whether it takes the
Bernoulli parameter d. Adding an index is one weight function and one line in
``INDICES``; exact enumeration then serves it, and an estimator serves it by
naming it in its ``ESTIMATORS`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gtap_jax.registry import Registry


def shapley_weights(num_players: int, d: float | None) -> np.ndarray:
    """w(s) = s! (P - 1 - s)! / P!: every order of the players equally likely."""
    del d
    p = num_players
    return np.array([math.factorial(s) * math.factorial(p - 1 - s) / math.factorial(p) for s in range(p)])


def bernoulli_weights(num_players: int, d: float | None) -> np.ndarray:
    """w(s) = d^s (1 - d)^(P - 1 - s): every other player present with probability d (beta_d)."""
    s = np.arange(num_players)
    return d**s * (1.0 - d) ** (num_players - 1 - s)


class IndexSpec(NamedTuple):
    """A power index.

    Attributes:
        weights: ``(P, d) -> float[P]``, the weight of a marginal contribution
            to a coalition of s other players.
        takes_d: whether the index has a Bernoulli parameter d.
        fixed_d: the d it always has (Banzhaf: 0.5), or None when the caller gives it.
    """

    weights: Callable[[int, float | None], np.ndarray]
    takes_d: bool = False
    fixed_d: float | None = None


INDICES = Registry(
    "index",
    {
        "shapley": IndexSpec(shapley_weights),
        "banzhaf": IndexSpec(bernoulli_weights, takes_d=True, fixed_d=0.5),
        "beta": IndexSpec(bernoulli_weights, takes_d=True),
    },
)


def resolve_d(index: str, d: float | None) -> float | None:
    """The Bernoulli parameter of an index: None for Shapley, 0.5 for Banzhaf, ``d`` for beta_d.

    Raises:
        ValueError: for an unknown index (listing the registered ones), a d
            given to an index without one, a missing d for ``"beta"``, a d that
            contradicts ``"banzhaf"``, or d outside (0, 1).
    """
    spec = INDICES[index]
    if not spec.takes_d:
        if d is not None:
            raise ValueError(f"the {index} index takes no d, got d={d}")
        return None
    if spec.fixed_d is not None:
        if d is not None and d != spec.fixed_d:
            raise ValueError(f"the {index} index is beta_d with d = {spec.fixed_d}, got d={d}; use index='beta'")
        return spec.fixed_d
    if d is None:
        raise ValueError(f"index={index!r} needs d in (0, 1)")
    if not 0.0 < d < 1.0:
        raise ValueError(f"d must lie strictly between 0 and 1, got {d}")
    return float(d)


def index_weights(index: str, num_players: int, d: float | None) -> np.ndarray:
    """``float64[P]``: the weight of a marginal contribution to a coalition of s others."""
    return np.asarray(INDICES[index].weights(num_players, resolve_d(index, d)), np.float64)


__all__ = ["INDICES", "IndexSpec", "bernoulli_weights", "index_weights", "resolve_d", "shapley_weights"]
