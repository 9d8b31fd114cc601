"""Pruning strategies, pure over masks: top_n, iterated_pruning, iterated_building.

A strategy sees a value function and an *attribute* function
``(key, value_fn, num_players) -> Attribution`` (or a plain ``float[P]``, e.g.
from :func:`gtap_jax.exact`). :func:`by_estimate` and :func:`by_exact` build
attribute functions from an index spec. The iterative strategies play
restricted sub-games (:func:`gtap_jax.games.restrict`): pruned neurons stay
silenced; kept neurons are always present while building.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from gtap_jax.games.subgame import restrict
from gtap_jax.indices.estimate import estimate
from gtap_jax.indices.exact import exact, resolve_d
from gtap_jax.shapes import PRNGKey, ValueFn

AttributeFn = Callable[[PRNGKey, ValueFn, int], Any]


class Round(NamedTuple):
    """One estimation round of a strategy.

    Attributes:
        players: ``int[F]``, full-game indices of the players scored this round.
        values, stderr: ``float[F]``, their attributions (stderr 0 when exact).
        mask: ``bool[P]``, the kept (or surviving) neurons after the round.
        num_evaluations: coalition values computed in the round.
    """

    players: np.ndarray
    values: np.ndarray
    stderr: np.ndarray
    mask: np.ndarray
    num_evaluations: int


class StrategyResult(NamedTuple):
    """Kept neurons and how the strategy got there."""

    mask: np.ndarray
    history: tuple[Round, ...]

    @property
    def num_evaluations(self) -> int:
        return sum(r.num_evaluations for r in self.history)

    def mask_of_size(self, size: int) -> tuple[np.ndarray, int]:
        """The first mask of ``size`` players in the history, and the evaluations spent to reach it.

        Raises:
            KeyError: if no round ended at that size (pass it in ``stops``).
        """
        spent = 0
        for rnd in self.history:
            spent += rnd.num_evaluations
            if int(rnd.mask.sum()) == size:
                return rnd.mask, spent
        raise KeyError(f"no round ended with {size} players")


def by_estimate(
    index: str,
    *,
    num_samples: int,
    d: float | None = None,
    method: str | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = False,
) -> AttributeFn:
    """Attribute function that runs :func:`gtap_jax.estimate` with these settings."""
    resolve_d(index, d)

    def attribute(key, value_fn, num_players):
        return estimate(
            key, value_fn, num_players, index, num_samples=num_samples, d=d, method=method,
            chunk_size=chunk_size, mesh=mesh, progress=progress,
        )

    return attribute


def by_exact(
    index: str, *, d: float | None = None, chunk_size: int | None = None, mesh: Mesh | None = None
) -> AttributeFn:
    """Attribute function that enumerates the (sub-)game exactly; for small games."""
    resolve_d(index, d)

    def attribute(key, value_fn, num_players):
        del key
        return exact(value_fn, num_players, index, d=d, chunk_size=chunk_size, mesh=mesh)

    return attribute


def _scores(attribute: AttributeFn, key, value_fn, num_players):
    out = attribute(key, value_fn, num_players)
    if hasattr(out, "values"):
        return np.asarray(out.values, np.float64), np.asarray(out.stderr, np.float64), int(out.num_evaluations)
    values = np.asarray(out, np.float64)
    return values, np.zeros_like(values), 1 << num_players


def strongest_first(values: np.ndarray) -> np.ndarray:
    """Positions sorted by decreasing value; ties broken by position (deterministic)."""
    return np.lexsort((np.arange(values.size), -values))


def _check_target(r: int, num_players: int) -> None:
    if not 1 <= r <= num_players:
        raise ValueError(f"target size r must be in [1, {num_players}] (the number of players), got {r}")


def _step_count(step: int | float, remaining: int) -> int:
    if isinstance(step, float) and 0.0 < step < 1.0:
        return max(1, int(step * remaining))
    if isinstance(step, int) and step >= 1:
        return step
    raise ValueError(f"step must be an int >= 1 or a fraction in (0, 1), got {step!r}")


def top_n(key: PRNGKey, value_fn: ValueFn, num_players: int, r: int, attribute: AttributeFn) -> StrategyResult:
    """Estimates once on the whole game and keeps the ``r`` strongest players.

    Raises:
        ValueError: if r is not in [1, P].
    """
    _check_target(r, num_players)
    values, stderr, evals = _scores(attribute, jax.random.fold_in(key, 0), value_fn, num_players)
    keep = np.zeros(num_players, bool)
    keep[strongest_first(values)[:r]] = True
    return StrategyResult(keep, (Round(np.arange(num_players), values, stderr, keep.copy(), evals),))


def iterated_pruning(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    r: int,
    attribute: AttributeFn,
    *,
    step: int | float = 0.5,
    stops: Sequence[int] = (),
) -> StrategyResult:
    """Repeatedly re-estimates on the survivors and drops the weakest until ``r`` remain.

    Round t plays the sub-game of the surviving neurons (pruned ones silenced)
    with key ``fold_in(key, t)``.

    Args:
        step: neurons dropped per round: an int, or a fraction of the survivors
            (at least one); the last round drops only down to ``r``.
        stops: sizes between P and r where a round must end, so one run yields
            the mask of every size on a grid (read them from the history).

    Raises:
        ValueError: if r is not in [1, P] or step is invalid.
    """
    _check_target(r, num_players)
    alive = np.ones(num_players, bool)
    history = []
    while alive.sum() > r:
        sub, players = restrict(value_fn, np.zeros(num_players, bool), alive)
        values, stderr, evals = _scores(attribute, jax.random.fold_in(key, len(history)), sub, players.size)
        floor = max([r, *(t for t in stops if t < players.size)])
        n_drop = min(_step_count(step, players.size), players.size - floor)
        alive[players[strongest_first(values)[players.size - n_drop :]]] = False
        history.append(Round(players, values, stderr, alive.copy(), evals))
    return StrategyResult(alive, tuple(history))


def iterated_building(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    r: int,
    attribute: AttributeFn,
    *,
    step: int | float = 0.5,
    stops: Sequence[int] = (),
) -> StrategyResult:
    """Starts empty and repeatedly adds the strongest neurons until ``r`` are kept.

    Round t plays the sub-game of the not-yet-kept neurons with every kept
    neuron always present, with key ``fold_in(key, t)``.

    Args:
        step: neurons added per round: an int, or a fraction of the ``r`` still
            to add (at least one).
        stops: sizes between 0 and r where a round must end, so one run yields
            the mask of every size on a grid (read them from the history).

    Raises:
        ValueError: if r is not in [1, P] or step is invalid.
    """
    _check_target(r, num_players)
    kept = np.zeros(num_players, bool)
    history = []
    while kept.sum() < r:
        sub, players = restrict(value_fn, kept, ~kept)
        values, stderr, evals = _scores(attribute, jax.random.fold_in(key, len(history)), sub, players.size)
        size = int(kept.sum())
        ceiling = min([r, *(t for t in stops if t > size)])
        n_add = min(_step_count(step, r - size), ceiling - size)
        kept[players[strongest_first(values)[:n_add]]] = True
        history.append(Round(players, values, stderr, kept.copy(), evals))
    return StrategyResult(kept, tuple(history))


STRATEGIES = {"top_n": top_n, "iterated_pruning": iterated_pruning, "iterated_building": iterated_building}

__all__ = [
    "STRATEGIES",
    "AttributeFn",
    "Round",
    "StrategyResult",
    "by_estimate",
    "by_exact",
    "iterated_building",
    "iterated_pruning",
    "strongest_first",
    "top_n",
]
