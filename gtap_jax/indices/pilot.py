"""Which Shapley estimator a game gets: a pilot of permutations against antithetic orders on the same draws.

Draw ``i`` of the antithetic estimator is the order of permutation draw ``i`` and its reverse
(:mod:`gtap_jax.indices.estimators.antithetic`), so n draws of each measure the same orders once
alone and once paired with their reverses. Per coalition value, a permutation's sample costs P + 1
values and has the single order's variance s^2; an antithetic one costs 2P + 2 and has the pair
average's variance a^2 = (s^2 + c) / 2, c the covariance of a marginal with its reverse's. Antithetic
orders are worth their price where 2 a^2 < s^2, that is where c < 0: a player's early and late
marginals pull in opposite directions. Which it is depends on the game (in the project's precision
benchmark, antithetic orders won on three trained networks by 1.1-2.1x and lost on a fourth by
1.3x), so a pilot decides, on the sum of the players' variances.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from gtap_jax.engine import Plan
from gtap_jax.indices.estimate import estimate
from gtap_jax.shapes import PRNGKey, ValueFn

# The pilot's draws of each estimator: enough for about this many coalition values of permutations.
PILOT_VALUES = 1024
CANDIDATES = ("permutation", "antithetic")
# The estimator name that asks for the pilot explicitly, where the default would be another (Owen sampling).
PILOT = "pilot"


class Pilot(NamedTuple):
    """What a pilot found.

    Attributes:
        estimator: the one with the smaller variance per coalition value.
        ratio: the permutation's variance per value over the antithetic's (above 1: antithetic is better).
        num_evaluations: the coalition values the pilot spent.
    """

    estimator: str
    ratio: float
    num_evaluations: int


def shapley_pilot(key: PRNGKey, value_fn: ValueFn, num_players: int, *, plan: Plan | None = None,
                  values: int = PILOT_VALUES) -> Pilot:
    """Permutations against antithetic orders on the same ``max(4, values / (P + 1))`` orders (module docstring).

    Args:
        key: the pilot's key (its draws are not reused by the round).
        value_fn, num_players: the game.
        plan: where and in what chunks to evaluate.
        values: about the permutation draws' coalition values.
    """
    draws = _draws(num_players, values)
    per_value = {}
    spent = 0
    for name in CANDIDATES:
        att = estimate(key, value_fn, num_players, "shapley", evaluations=draws * _size(name, num_players),
                       estimator=name, plan=plan)
        spent += int(att.num_evaluations)
        stderr = np.asarray(att.stderr, np.float64)
        per_value[name] = float(np.sum(stderr[np.isfinite(stderr)] ** 2)) * int(att.num_evaluations)
    ratio = per_value["permutation"] / max(per_value["antithetic"], np.finfo(np.float64).tiny)
    return Pilot("antithetic" if ratio > 1.0 else "permutation", ratio, spent)


def _draws(num_players: int, values: int) -> int:
    return max(4, math.ceil(values / (num_players + 1)))


def pilot_evaluations(num_players: int, values: int = PILOT_VALUES) -> int:
    """The coalition values :func:`shapley_pilot` spends on P players."""
    return 3 * (num_players + 1) * _draws(num_players, values)


def _size(name: str, num_players: int) -> int:
    return (num_players + 1) * (2 if name == "antithetic" else 1)


def pilot_decides(index: str, estimator: str | None, enabled: bool = True, default: str = "permutation") -> bool:
    """Whether a settled round's estimator is the pilot's: a Shapley round given ``estimator = PILOT``, or given
    none with the pilot on and a default (:func:`~gtap_jax.indices.default_estimator`) of permutations (where the
    game values stars incrementally it is Owen sampling, ahead of both candidates in variance per second:
    ``benchmarks/RESULTS.md``)."""
    if index != "shapley":
        return False
    return estimator == PILOT or (enabled and not estimator and default == "permutation")


def pilot_key(key: PRNGKey) -> PRNGKey:
    """The pilot's key from a round's: its own stream, apart from the round's draws."""
    return jax.random.fold_in(key, 0x9170)


__all__ = [
    "CANDIDATES", "PILOT", "PILOT_VALUES", "Pilot", "pilot_decides", "pilot_evaluations", "pilot_key", "shapley_pilot",
]
