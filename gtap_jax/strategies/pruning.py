"""Pruning strategies, pure over masks: top_n, iterated_pruning, iterated_building.

Every strategy has one call shape, ``strategy(key, value_fn, num_players, sizes,
attribute, *, step) -> StrategyResult``: ``sizes`` is one target size or a grid,
and the result holds a round ending at every size of the grid
(:meth:`StrategyResult.mask_of_size`). A strategy sees a value function and an
*attribute* function ``(key, value_fn, num_players, cutoffs) -> Scores``, told the
decision it serves (:mod:`gtap_jax.strategies.attribute`: ``by_estimate``,
``by_exact``); every round records its scores, and so whether that decision was
settled. The iterative strategies play restricted sub-games
(:func:`gtap_jax.games.restrict`): pruned neurons stay silenced; kept neurons
are always present while building. Adding a strategy: one function of that
shape and one line in ``STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from gtap_jax.games.subgame import restrict
from gtap_jax.registry import Registry
from gtap_jax.shapes import PRNGKey, ValueFn
from gtap_jax.strategies.scores import AttributeFn, Scores, checked

# ``cost(mask) -> float[P]``: what each player's presence costs in the network that keeps ``mask`` (bool[P])
CostFn = Callable[[np.ndarray], np.ndarray]


class Round(NamedTuple):
    """One round of a strategy.

    Attributes:
        players: ``int[F]``, full-game indices of the players scored this round.
        mask: ``bool[P]``, the kept (or surviving) neurons after the round.
        scores: the players' :class:`Scores` (``num_evaluations`` 0 when the round
            reused an earlier round's scores).
        weights: ``float[F]``, the players' costs where the round decided by value per unit of cost
            (an iterated strategy given ``cost``), else None.
    """

    players: np.ndarray
    mask: np.ndarray
    scores: Scores
    weights: np.ndarray | None = None


class StrategyResult(NamedTuple):
    """The kept neurons of the last round, and every round on the way."""

    mask: np.ndarray
    history: tuple[Round, ...]

    @property
    def num_evaluations(self) -> int:
        return sum(r.scores.num_evaluations for r in self.history)

    def settled_share_of_size(self, size: int) -> float:
        """The least settled share over the rounds that led to the mask of ``size``."""
        shares = []
        for rnd in self.history:
            shares.append(rnd.scores.settled_share)
            if int(rnd.mask.sum()) == size:
                return min(shares)
        raise KeyError(f"no round ended with {size} players")

    def priority(self) -> np.ndarray:
        """``float[P]`` whose order (highest first) puts every round's kept set first: players kept in more
        rounds rank higher, ties by the scores of the last round that scored them.

        So an allocation can reuse the strategy's choices: at a round's size its mask is the top of
        this order; between two rounds' sizes, the larger round's set less its weakest by that round's
        scores (per unit of cost, where the round decided so).
        """
        num_players = self.mask.size
        depth = np.zeros(num_players)
        tie = np.full(num_players, -np.inf)
        for rnd in self.history:
            depth += rnd.mask
            if rnd.players.size:
                tie[rnd.players] = rnd.scores.values if rnd.weights is None else rnd.scores.values / rnd.weights
        rank = np.empty(num_players)
        rank[np.lexsort((-np.arange(num_players), tie))] = np.arange(num_players)  # ties: earlier player higher
        return depth + 0.5 * rank / num_players

    def mask_of_size(self, size: int) -> tuple[np.ndarray, int]:
        """The first mask of ``size`` players in the history, and the evaluations spent to reach it.

        Raises:
            KeyError: if no round ended at that size (it was not among ``sizes``).
        """
        spent = 0
        for rnd in self.history:
            spent += rnd.scores.num_evaluations
            if int(rnd.mask.sum()) == size:
                return rnd.mask, spent
        raise KeyError(f"no round ended with {size} players")


def _scores(attribute: AttributeFn, key, value_fn, num_players, cutoffs, weights=None) -> Scores:
    extra = {} if weights is None else {"weights": weights}  # attribute functions without costs need not take it
    out = checked(attribute(key, value_fn, num_players, cutoffs=tuple(cutoffs), **extra), num_players)
    if weights is not None and out.ranking is None:
        raise TypeError("an attribute function given weights= returns Scores.ranking: its decision's order by value"
                        " per weight (as by_estimate and by_exact do)")
    return out._replace(values=np.asarray(out.values, np.float64), stderr=np.asarray(out.stderr, np.float64))


def _check_sizes(sizes: int | Sequence[int], num_players: int) -> list[int]:
    """Distinct target sizes, largest first."""
    sizes = [sizes] if isinstance(sizes, int | np.integer) else list(sizes)
    if not sizes:
        raise ValueError("sizes is empty; give a target size in [1, P] or a grid of them")
    for r in sizes:
        if not 1 <= r <= num_players:
            raise ValueError(f"target size r must be in [1, {num_players}] (the number of players), got {r}")
    return sorted(set(int(r) for r in sizes), reverse=True)


def _step_count(step: int | float, remaining: int) -> int:
    if isinstance(step, float) and 0.0 < step < 1.0:
        return max(1, int(step * remaining))
    if isinstance(step, int) and step >= 1:
        return step
    raise ValueError(f"step must be an int >= 1 or a fraction in (0, 1), got {step!r}")


def top_n(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    sizes: int | Sequence[int],
    attribute: AttributeFn,
    *,
    step: int | float | None = None,
) -> StrategyResult:
    """Estimates once on the whole game and keeps the strongest players, for every size.

    The first round holds the estimate and the mask of the largest size; each
    further size is a round of 0 evaluations with the same scores. ``step`` is
    accepted for the common call shape and unused.

    Raises:
        ValueError: if a size is not in [1, P].
    """
    del step
    sizes = _check_sizes(sizes, num_players)
    scores = _scores(attribute, jax.random.fold_in(key, 0), value_fn, num_players, sizes)
    order = scores.order()
    history = []
    for i, r in enumerate(sizes):
        keep = np.zeros(num_players, bool)
        keep[order[:r]] = True
        history.append(Round(np.arange(num_players), keep, scores if i == 0 else scores._replace(num_evaluations=0)))
    return StrategyResult(history[-1].mask, tuple(history))


def _weights(cost: CostFn, mask: np.ndarray, players: np.ndarray) -> np.ndarray:
    """The round's players' costs at ``mask``, checked."""
    out = np.asarray(cost(mask.copy()), np.float64)
    if out.shape != mask.shape or not np.all(out[players] > 0) or not np.all(np.isfinite(out[players])):
        raise ValueError(f"cost(mask) must give every player a finite positive cost (float[{mask.size}]), got"
                         f" shape {out.shape}")
    return out[players]


def _iterate(key, value_fn, num_players, sizes, attribute, step, *, grow: bool, cost: CostFn | None = None
             ) -> StrategyResult:
    """The loop of the iterative strategies: score the free players, move some, until every size is met.

    Shrinking (``grow=False``) starts with every player and drops the weakest
    survivors; growing starts empty and adds the strongest of the rest; with ``cost``, weakest and
    strongest by value per unit of cost.
    """
    sizes = _check_sizes(sizes, num_players)
    if grow:
        sizes = sizes[::-1]
    mask = np.zeros(num_players, bool) if grow else np.ones(num_players, bool)
    history, estimations = [], 0
    for target in sizes:
        while int(mask.sum()) != target:
            size = int(mask.sum())
            always_in, free = (mask, ~mask) if grow else (np.zeros(num_players, bool), mask)
            sub, players = restrict(value_fn, always_in, free)
            remaining = sizes[-1] - size if grow else players.size
            n = min(_step_count(step, remaining), abs(target - size))
            cutoff = n if grow else players.size - n  # the decision: the top `cutoff` players against the rest
            weights = None if cost is None else _weights(cost, mask, players)
            scores = _scores(attribute, jax.random.fold_in(key, estimations), sub, players.size, (cutoff,), weights)
            estimations += 1
            order = scores.order()
            mask[players[order[:n] if grow else order[players.size - n :]]] = grow
            history.append(Round(players, mask.copy(), scores, weights))
        if not history or int(history[-1].mask.sum()) != target:  # a size met before any round: the start
            history.append(Round(np.zeros(0, int), mask.copy(), Scores(np.zeros(0), np.zeros(0), 0)))
    return StrategyResult(mask.copy(), tuple(history))


def iterated_pruning(key: PRNGKey, value_fn: ValueFn, num_players: int, sizes: int | Sequence[int],
                     attribute: AttributeFn, *, step: int | float = 0.5, cost: CostFn | None = None) -> StrategyResult:
    """Repeatedly re-estimates on the survivors and drops the weakest, down to every size.

    Round t plays the sub-game of the surviving neurons (pruned ones silenced)
    with key ``fold_in(key, t)``.

    Args:
        step: neurons dropped per round: an int, or a fraction of the survivors
            (at least one); a round never goes past the next size.
        cost: ``cost(mask) -> float[P] > 0``, what each player's presence costs in the network that keeps
            ``mask`` (:meth:`gtap_jax.strategies.allocation.Cost.marginal`): each round then drops the survivors
            of least value per unit of cost at the current widths, its decision settled on that ratio
            (the attribute function is given ``weights=``).

    Raises:
        ValueError: if a size is not in [1, P], step is invalid, or a cost is not positive.
    """
    return _iterate(key, value_fn, num_players, sizes, attribute, step, grow=False, cost=cost)


def iterated_building(key: PRNGKey, value_fn: ValueFn, num_players: int, sizes: int | Sequence[int],
                      attribute: AttributeFn, *, step: int | float = 0.5, cost: CostFn | None = None
                      ) -> StrategyResult:
    """Starts empty and repeatedly adds the strongest neurons, up to every size.

    Round t plays the sub-game of the not-yet-kept neurons with every kept
    neuron always present, with key ``fold_in(key, t)``.

    Args:
        step: neurons added per round: an int, or a fraction of those still to
            add up to the largest size (at least one); a round never goes past
            the next size.
        cost: as for :func:`iterated_pruning`; each round adds the players of most value per unit of cost.

    Raises:
        ValueError: if a size is not in [1, P], step is invalid, or a cost is not positive.
    """
    return _iterate(key, value_fn, num_players, sizes, attribute, step, grow=True, cost=cost)


# Adding a strategy: one function of the common shape and one line here.
STRATEGIES = Registry(
    "strategy", {"top_n": top_n, "iterated_pruning": iterated_pruning, "iterated_building": iterated_building}
)

__all__ = [
    "STRATEGIES",
    "CostFn",
    "Round",
    "StrategyResult",
    "iterated_building",
    "iterated_pruning",
    "top_n",
]
