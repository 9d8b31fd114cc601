"""Attribute functions: how a strategy scores the players of a (sub-)game.

An attribute function is ``attribute(key, value_fn, num_players, cutoffs=()) ->
Attribution`` (or a plain ``float[P]``). ``cutoffs`` is the decision the
strategy will take from the scores: for each r in it, the r strongest players
against the rest (top_n: every size of the grid; an iterated round: the players
it keeps against those it drops or adds). :func:`by_estimate` with a budget
spends it; without one it estimates until that decision is settled.

The (epsilon, delta) rule: with z the normal quantile of ``1 - delta_k / (2 P)``
at the k-th check, ``delta_k = delta / (k (k + 1))`` (they sum to delta, so every
interval of every check holds at once with probability 1 - delta under the
normal approximation), a player is settled at a cutoff when its interval
``value +- z stderr`` lies on its side of the midpoint between the r-th and the
(r+1)-th value, give or take ``epsilon / 2``. When every player is settled,
every kept player's true value is at least every dropped player's minus
epsilon: the decision is the exact one up to epsilon, with probability at
least 1 - delta. Near-ties (within epsilon) count as interchangeable, so they
cannot stall it; ``max_evaluations`` bounds every round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from gtap_jax import engine
from gtap_jax.indices.base import resolve_d
from gtap_jax.indices.estimate import default_method, estimate, make_estimator
from gtap_jax.indices.exact import exact
from gtap_jax.layout import strongest_first
from gtap_jax.strategies.focus import FocusMoments, combine, draw_cost, focused_samples

AttributeFn = Callable[..., Any]  # (key, value_fn, num_players, cutoffs=()) -> Attribution | float[P]


class Settled(NamedTuple):
    """Scores from :func:`by_estimate` with the state of its decision.

    Attributes:
        values, stderr: ``float[P]``.
        num_evaluations: coalition values spent.
        settled: whether every player was settled at every cutoff.
        settled_share: the share of players that were.
        attribution: the final :class:`~gtap_jax.indices.Attribution`.
    """

    values: np.ndarray
    stderr: np.ndarray
    num_evaluations: int
    settled: bool
    settled_share: float
    attribution: Any


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


def fixed_budget_settled(att, cutoffs: Sequence[int], delta: float, epsilon: float) -> Settled:
    """A fixed-budget estimate with how settled its decision is (one check: z over the players at ``delta``)."""
    ok = settled_players(att.values, att.stderr, cutoffs, z_value(delta, att.values.shape[0]), epsilon)
    return Settled(att.values, att.stderr, att.num_evaluations, bool(ok.all()), float(ok.mean()), att)


def z_value(delta: float, num_players: int, checks: int = 1) -> float:
    """The normal quantile that makes ``num_players * checks`` two-sided intervals hold at once w.p. 1 - delta."""
    return NormalDist().inv_cdf(1.0 - delta / (2.0 * num_players * checks))


def round_budget(
    index: str, num_players: int, evaluations: int, *, d: float | None = None, method: str | None = None
) -> tuple[str, int]:
    """The method and the evaluations of one fixed-budget round of ``by_estimate``.

    The method is ``method`` or :func:`~gtap_jax.indices.default_method`; the
    evaluations are ``evaluations`` in whole draws, and at least two draws
    (every player needs a standard error).
    """
    method = method or default_method(index, num_players, evaluations)
    draw_size = make_estimator(num_players, index, d=d, method=method).draw_size
    return method, draw_size * max(evaluations // draw_size, 2)


class SettleState(NamedTuple):
    """Where a settling round stands after a check; pass it back as ``resume=`` to continue it.

    Attributes:
        uniform: the :class:`~gtap_jax.indices.Attribution` of the uniform draws (None before any).
        focus: the focused samples' :class:`~gtap_jax.strategies.focus.FocusMoments`.
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


def share_epsilon(value_fn, num_players: int, share: float, plan: engine.Plan | None = None) -> float:
    """An epsilon for :func:`by_estimate`: ``share`` of the mean player's part of the game, ``|v(N) - v(empty)| / P``.

    Two evaluations. One share means the same for games of any size and metric.
    """
    full, empty = np.asarray(engine.evaluate_coalitions(
        value_fn, np.stack([np.ones(num_players, bool), np.zeros(num_players, bool)]), plan=plan), np.float64)
    return share * abs(full - empty) / num_players


def _settle(key, value_fn, num_players, cutoffs, *, index, d, method, delta, epsilon, max_evaluations, focus, plan,
            progress, resume, on_check) -> Settled:
    """The settled mode of :func:`by_estimate`: uniform draws, then draws focused on the unsure players."""
    uniform_key, focus_key = jax.random.split(key)
    m = method or default_method(index, num_players, max_evaluations)
    k = make_estimator(num_players, index, d=d, method=m).draw_size
    step = k * max(2, -(-max(1024, 5 * (num_players + 1)) // k))
    state = resume or SettleState(None, FocusMoments.zeros(num_players), 0, 0)

    def judge(state):
        """``(values, stderr, settled bool[P])`` after ``state.checks`` checks."""
        values, stderr = combine(state.uniform.values, state.uniform.stderr, state.focus)
        z = z_value(delta, num_players, state.checks * (state.checks + 1))
        return values, stderr, settled_players(values, stderr, cutoffs, z, epsilon)

    ok = np.zeros(num_players, bool) if state.uniform is None else judge(state)[2]
    while not ok.all() and state.num_evaluations < max_evaluations:
        spent = state.num_evaluations
        add = min(max(step, spent), max_evaluations - spent)
        unsure = np.flatnonzero(~ok)
        cost = draw_cost(index, unsure.size)
        if focus and state.uniform is not None and 2 * unsure.size <= num_players and add >= cost:
            n = add // cost
            samples = focused_samples(jax.random.fold_in(focus_key, state.checks), value_fn, num_players, index, d,
                                      unsure, n, plan)
            state = state._replace(focus=state.focus.add(unsure, samples),
                                   focus_evaluations=state.focus_evaluations + n * cost)
        else:
            add = add // k * k
            if add <= 0:
                break
            att = estimate(uniform_key, value_fn, num_players, index, evaluations=add, d=d, method=m,
                           state=state.uniform, plan=plan, progress=progress)
            state = state._replace(uniform=att)
        state = state._replace(checks=state.checks + 1)
        ok = judge(state)[2]
        if on_check is not None:
            on_check(state)
    values, stderr, ok = judge(state)
    return Settled(values, stderr, state.num_evaluations, bool(ok.all()), float(ok.mean()), state.uniform)


def by_estimate(
    index: str,
    *,
    evaluations: int | None = None,
    d: float | None = None,
    method: str | None = None,
    delta: float = 0.05,
    epsilon: float = 0.0,
    max_evaluations: int = 1 << 20,
    focus: bool = True,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    plan: engine.Plan | None = None,
    progress: bool = False,
) -> AttributeFn:
    """Attribute function running :func:`gtap_jax.estimate`.

    With ``evaluations``, each round spends that budget (in whole draws, at
    least two). Without it, each round samples until the strategy's decision is
    settled at confidence ``1 - delta`` up to ``epsilon`` (module docstring),
    doubling its evaluations between checks from ``max(1024, 5 (P + 1))``, and
    stops at ``max_evaluations`` settled or not (the result says which). After
    the first check, while at most half the players are unsure and ``focus`` is
    True, the draws aim at the unsure players alone
    (:mod:`gtap_jax.strategies.focus`); otherwise they are uniform.
    :func:`share_epsilon` gives an epsilon that means the same for games of any
    size and metric: a share of the mean player's part of the game.

    The attribute function also takes ``resume=`` (a :class:`SettleState`) and
    ``on_check=`` (called with the state after every check), so a stopped
    settling round can continue where it was saved.
    The chunk size and mesh are decided once, on the first (full) game, and
    reused for every sub-game.

    Raises:
        ValueError: for a bad index or d, delta outside (0, 1), or a negative epsilon.
    """
    resolve_d(index, d)
    if not 0 < delta < 1 or epsilon < 0:
        raise ValueError(f"delta must be in (0, 1) and epsilon >= 0, got delta={delta}, epsilon={epsilon}")
    decided = [plan]

    def attribute(key, value_fn, num_players, cutoffs=(), *, resume=None, on_check=None):
        if decided[0] is None:
            decided[0] = engine.make_plan(
                value_fn, num_players, num_coalitions=evaluations or max_evaluations, chunk_size=chunk_size, mesh=mesh
            )
        if evaluations is None:
            return _settle(key, value_fn, num_players, cutoffs, index=index, d=resolve_d(index, d), method=method,
                           delta=delta, epsilon=epsilon, max_evaluations=max_evaluations, focus=focus,
                           plan=decided[0], progress=progress, resume=resume, on_check=on_check)
        m, budget = round_budget(index, num_players, evaluations, d=d, method=method)
        att = estimate(key, value_fn, num_players, index, evaluations=budget, method=m, d=d, plan=decided[0],
                       progress=progress)
        return fixed_budget_settled(att, cutoffs, delta, epsilon)

    return attribute


def by_exact(
    index: str,
    *,
    d: float | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    plan: engine.Plan | None = None,
) -> AttributeFn:
    """Attribute function that enumerates the (sub-)game exactly; for small games."""
    resolve_d(index, d)

    def attribute(key, value_fn, num_players, cutoffs=()):
        del key, cutoffs
        return exact(value_fn, num_players, index, d=d, chunk_size=chunk_size, mesh=mesh, plan=plan)

    return attribute


__all__ = [
    "AttributeFn", "SettleState", "Settled", "by_estimate", "by_exact", "fixed_budget_settled", "round_budget",
    "settled_players", "share_epsilon", "z_value",
]
