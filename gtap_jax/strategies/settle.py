"""Settled mode: estimate until the decision a strategy takes from a round is settled.

The (epsilon, delta) rule: with z the normal quantile of ``1 - delta_k / (2 P)``
at the k-th check, where the deltas of all checks sum to delta (so every interval of
every check holds at once with probability 1 - delta under the normal approximation),
a player is settled at a cutoff when its interval
``value +- z stderr`` lies on its side of the midpoint between the r-th and the
(r+1)-th value, give or take ``epsilon / 2``. When every player is settled,
every kept player's true value is at least every dropped player's minus
epsilon: the decision is the exact one up to epsilon, with probability at
least 1 - delta. Near-ties (within epsilon) count as interchangeable, so they
cannot stall it; ``max_evaluations`` bounds every round.

The values double between checks, so the K checks that reach the cap are known before the
first; the deltas are spent where decisions settle, on the late checks: ``0.9 delta 2^(k-1) /
(2^K - 1)`` for check k <= K (the last check gets about 0.45 delta, where ``delta / (k (k + 1))``
gave it ``delta / 56`` at K = 7), and ``0.1 delta / (j (j + 1))`` for the j-th check past K (a round
whose draws round down may need one). :func:`check_share` gives the divisor.

Focused draws are aimed at the players that the uniform estimate leaves unsure; mixed with that
estimate, their values lean toward the cutoff, and the unchosen players' away from it (over 150
keys, t statistics of 5-9 on a 12-player game). So a round with focused draws decides on all its
draws but reports the uniform estimate's values and errors, with the decision's order in
``Scores.ranking``. A focused draw is a star (:mod:`gtap_jax.indices.focus`), valued incrementally where
the game values stars so (``gtap_jax.engine.ChainValueFn``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

import jax
import numpy as np

from gtap_jax.engine import Plan, evaluate_coalitions
from gtap_jax.indices import ESTIMATORS, estimate
from gtap_jax.indices.focus import FocusMoments, combine, focused_samples, sample_cost, sample_draws
from gtap_jax.layout import strongest_first
from gtap_jax.strategies.scores import Scores, order_of


class Settle(NamedTuple):
    """The settling options of :func:`~gtap_jax.strategies.by_estimate` (module docstring).

    Attributes:
        delta: the chance that a settled decision is wrong by more than epsilon, in (0, 1).
        epsilon: near-ties, in the game's units (:func:`share_epsilon` gives one from a share).
        max_evaluations: the cap of a round; it ends there settled or not (and says which).
        focus: after the first check, aim the draws at the unsure players (:mod:`gtap_jax.indices.focus`)
            where the estimator's registry entry names a kind of focused draw.
        pilot: Shapley rounds with no estimator given take permutations or antithetic orders, whichever a pilot
            on the first round's game finds more precise per value (:mod:`gtap_jax.indices.pilot`).
        stop_share: a round ends once this share of the players is settled, in (0, 1]; below 1 its decision
            may end unsettled (``Scores.settled`` False) with the unsure players' sides uncertain, each settled
            player's still right at delta.
    """

    delta: float = 0.05
    epsilon: float = 0.0
    max_evaluations: int = 1 << 20
    focus: bool = True
    pilot: bool = True
    stop_share: float = 1.0

    def check(self) -> Settle:
        """The options, if valid.

        Raises:
            ValueError: for delta outside (0, 1), a negative epsilon, a cap below 1 or a stop_share outside (0, 1].
        """
        if (not 0 < self.delta < 1 or self.epsilon < 0 or self.max_evaluations < 1
                or not 0 < self.stop_share <= 1):
            raise ValueError(f"settling needs delta in (0, 1), epsilon >= 0, max_evaluations >= 1 and stop_share in"
                             f" (0, 1], got {self}")
        return self


class RoundSpec(NamedTuple):
    """What one estimation round estimates and where: the index, its d, the estimator, the plan."""

    index: str
    d: float | None
    estimator: str
    plan: Plan
    progress: bool = False


class SettleState(NamedTuple):
    """Where a settling round stands after a check; pass it back as ``resume=`` to continue it.

    Attributes:
        uniform: the :class:`~gtap_jax.indices.Attribution` of the uniform draws (None before any).
        focus: the focused samples' :class:`~gtap_jax.indices.focus.FocusMoments`.
        focus_evaluations: coalition values spent on focused draws.
        checks: checks made (each check's focused draws use ``fold_in(key, check)``).
    """

    uniform: Any
    focus: FocusMoments
    focus_evaluations: int
    checks: int

    @property
    def num_evaluations(self) -> int:
        return (0 if self.uniform is None else int(self.uniform.num_evaluations)) + self.focus_evaluations


def settled_players(values, stderr, cutoffs: Sequence[int], z: float, epsilon: float) -> np.ndarray:
    """``bool[P]``: the players whose side of every cutoff is certain at ``z`` up to ``epsilon``."""
    values, stderr = np.asarray(values, np.float64), np.asarray(stderr, np.float64)
    ok = np.isfinite(values) & np.isfinite(stderr)
    order = strongest_first(np.where(np.isfinite(values), values, -np.inf))
    ranked = values[order]
    for r in cutoffs:
        if not 0 < r < values.size:
            continue
        mid = 0.5 * (ranked[r - 1] + ranked[r])
        kept = np.zeros(values.size, bool)
        kept[order[:r]] = True
        ok &= np.where(kept, values - z * stderr >= mid - epsilon / 2, values + z * stderr <= mid + epsilon / 2)
    return ok


def z_value(delta: float, num_players: int, checks: float = 1) -> float:
    """The normal quantile that makes ``num_players * checks`` two-sided intervals hold at once w.p. 1 - delta."""
    return NormalDist().inv_cdf(1.0 - delta / (2.0 * num_players * checks))


def check_share(check: int, planned: int) -> float:
    """``delta / delta_k`` of check ``check`` (from 1) of a round planned to reach its cap in ``planned`` checks
    (module docstring): the shares ``1 / divisor`` sum to at most 1 over any number of checks."""
    if check <= planned:
        return (2.0**planned - 1.0) / (0.9 * 2.0 ** (check - 1))
    extra = check - planned
    return extra * (extra + 1) / 0.1


def per_weight(values, stderr, epsilon: float, weights=None) -> tuple[np.ndarray, np.ndarray, float]:
    """What a decision ranks: the values and errors, or, with ``weights`` (``float[P] > 0``, a player's cost),
    each divided by its player's weight, and epsilon by the mean weight (a near-tie of a player of mean cost)."""
    values, stderr = np.asarray(values, np.float64), np.asarray(stderr, np.float64)
    if weights is None:
        return values, stderr, epsilon
    weights = np.asarray(weights, np.float64)
    return values / weights, stderr / weights, epsilon / float(np.mean(weights))


def scores_at(values, stderr, evaluations: int, cutoffs: Sequence[int], z: float, epsilon: float,
              weights=None) -> Scores:
    """:class:`Scores` of an estimate, with how settled its decision is at ``z`` up to ``epsilon``; with
    ``weights``, the decision ranks value per weight (:func:`per_weight`) and ``Scores.ranking`` is its order."""
    ranked, errors, epsilon = per_weight(values, stderr, epsilon, weights)
    ok = settled_players(ranked, errors, cutoffs, z, epsilon)
    ranking = None if weights is None else order_of(ranked)
    return Scores(np.asarray(values, np.float64), np.asarray(stderr, np.float64), int(evaluations), bool(ok.all()),
                  float(ok.mean()), ranking)


def share_epsilon(value_fn, num_players: int, share: float, plan: Plan | None = None) -> float:
    """An epsilon for :class:`Settle`: ``share`` of the mean player's part of the game, ``|v(N) - v(empty)| / P``.

    Two evaluations. One share means the same for games of any size and metric.
    """
    full, empty = np.asarray(evaluate_coalitions(
        value_fn, np.stack([np.ones(num_players, bool), np.zeros(num_players, bool)]), plan=plan), np.float64)
    return share * abs(full - empty) / num_players


def settle_round(key, value_fn, num_players: int, cutoffs: Sequence[int], spec: RoundSpec, options: Settle, *,
                 resume: SettleState | None = None, on_check: Callable[[SettleState], None] | None = None,
                 weights=None) -> Scores:
    """One round in settled mode: uniform draws, doubling between checks, then draws focused on the unsure players.

    The decision (``Scores.settled``, ``settled_share``, ``ranking``) uses every draw; with focused draws the
    values and errors reported are the uniform estimate's (module docstring).

    Args:
        key: the round's key (split once: uniform draws, focused draws).
        value_fn, num_players, cutoffs: the (sub-)game and the decision to settle.
        spec: the index, d, estimator and plan of the round.
        options: delta, epsilon, the cap and whether to focus.
        resume: a state saved by ``on_check``: the round continues from it with the same draws.
        on_check: called with the state after every check.
        weights: ``float[P] > 0``: the decision ranks value per weight (:func:`per_weight`, a player's cost);
            ``Scores.ranking`` is its order, the values and errors reported are the estimate's.
    """
    uniform_key, focus_key = jax.random.split(key)
    entry = ESTIMATORS[spec.estimator]
    kind = entry.focus if options.focus else None
    k = entry.draw_size(num_players)
    step = k * max(2, -(-max(1024, 5 * (num_players + 1)) // k))
    planned = 1 + max(0, math.ceil(math.log2(options.max_evaluations / step)))  # doubling from step to the cap
    state = resume or SettleState(None, FocusMoments.zeros(num_players), 0, 0)

    def judge(state: SettleState) -> tuple[Scores, np.ndarray]:
        """The scores after ``state.checks`` checks, and which players are settled."""
        values, stderr, epsilon = per_weight(*combine(state.uniform.values, state.uniform.stderr, state.focus),
                                             options.epsilon, weights)
        z = z_value(options.delta, num_players, check_share(state.checks, planned))
        ok = settled_players(values, stderr, cutoffs, z, epsilon)
        return Scores(values, stderr, state.num_evaluations, bool(ok.all()), float(ok.mean())), ok

    ok = np.zeros(num_players, bool) if state.uniform is None else judge(state)[1]
    while ok.mean() < options.stop_share and state.num_evaluations < options.max_evaluations:
        spent = state.num_evaluations
        add = min(max(step, spent), options.max_evaluations - spent)
        unsure = np.flatnonzero(~ok)
        # a round's samples are all of one size, set at its first focused check (gtap_jax.indices.focus)
        draws = None if kind is None else state.focus.draws or sample_draws(kind, spec.d, unsure.size, add)
        cost = None if kind is None else sample_cost(draws, unsure.size)
        if cost is not None and state.uniform is not None and 2 * unsure.size <= num_players and add >= cost:
            n = add // cost
            samples = focused_samples(jax.random.fold_in(focus_key, state.checks), value_fn, num_players, kind,
                                      spec.d, unsure, n, spec.plan, draws)
            state = state._replace(focus=state.focus.add(unsure, samples, draws),
                                   focus_evaluations=state.focus_evaluations + n * cost)
        else:
            add = add // k * k
            if add <= 0:
                break
            att = estimate(uniform_key, value_fn, num_players, spec.index, evaluations=add, d=spec.d,
                           estimator=spec.estimator, state=state.uniform, plan=spec.plan, progress=spec.progress)
            state = state._replace(uniform=att)
        state = state._replace(checks=state.checks + 1)
        ok = judge(state)[1]
        if on_check is not None:
            on_check(state)
    scores = judge(state)[0]
    if state.focus_evaluations == 0 and weights is None:
        return scores
    # The focused draws aimed at players chosen by the uniform estimate: combined with it, their values
    # would lean toward the cutoff (and the others' away from it). The decision uses them; the values
    # reported are the uniform estimate's, the same estimator for every player (and with weights, values
    # rather than the values per weight the decision ranked).
    uniform = state.uniform
    return scores._replace(values=np.asarray(uniform.values, np.float64), stderr=np.asarray(uniform.stderr, np.float64),
                           ranking=scores.order())


__all__ = [
    "RoundSpec", "Settle", "SettleState", "check_share", "per_weight", "scores_at", "settle_round", "settled_players",
    "share_epsilon", "z_value",
]
