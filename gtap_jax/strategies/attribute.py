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

import numpy as np
from jax.sharding import Mesh

from gtap_jax import engine
from gtap_jax.indices.base import resolve_d
from gtap_jax.indices.estimate import default_method, estimate, make_estimator
from gtap_jax.indices.exact import exact
from gtap_jax.layout import strongest_first

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


def by_estimate(
    index: str,
    *,
    evaluations: int | None = None,
    d: float | None = None,
    method: str | None = None,
    delta: float = 0.05,
    epsilon: float = 0.0,
    max_evaluations: int = 1 << 20,
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
    stops at ``max_evaluations`` settled or not (the result says which).
    The chunk size and mesh are decided once, on the first (full) game, and
    reused for every sub-game.

    Raises:
        ValueError: for a bad index or d, delta outside (0, 1), or a negative epsilon.
    """
    resolve_d(index, d)
    if not 0 < delta < 1 or epsilon < 0:
        raise ValueError(f"delta must be in (0, 1) and epsilon >= 0, got delta={delta}, epsilon={epsilon}")
    decided = [plan]

    def attribute(key, value_fn, num_players, cutoffs=()):
        if decided[0] is None:
            decided[0] = engine.make_plan(
                value_fn, num_players, num_coalitions=evaluations or max_evaluations, chunk_size=chunk_size, mesh=mesh
            )
        run = dict(d=d, plan=decided[0], progress=progress)
        if evaluations is not None:
            m, budget = round_budget(index, num_players, evaluations, d=d, method=method)
            att = estimate(key, value_fn, num_players, index, evaluations=budget, method=m, **run)
            share = settled_players(att.values, att.stderr, cutoffs, z_value(delta, num_players), epsilon).mean()
            return Settled(att.values, att.stderr, att.num_evaluations, bool(share == 1.0), float(share), att)
        m = method or default_method(index, num_players, max_evaluations)
        k = make_estimator(num_players, index, d=d, method=m).draw_size
        step = k * max(2, -(-max(1024, 5 * (num_players + 1)) // k))
        att, checks = None, 0
        while att is None or att.num_evaluations < max_evaluations:
            spent = 0 if att is None else att.num_evaluations
            add = min(max(step, spent), max_evaluations - spent) // k * k
            if add <= 0:
                break
            att = estimate(key, value_fn, num_players, index, evaluations=add, method=m, state=att, **run)
            checks += 1
            z = z_value(delta, num_players, checks * (checks + 1))
            ok = settled_players(att.values, att.stderr, cutoffs, z, epsilon)
            if ok.all():
                break
        return Settled(att.values, att.stderr, att.num_evaluations, bool(ok.all()), float(ok.mean()), att)

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
    "AttributeFn", "Settled", "by_estimate", "by_exact", "round_budget", "settled_players", "z_value",
]
