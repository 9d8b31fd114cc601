"""Attribute functions: how a strategy scores the players of a (sub-)game.

Each returns :class:`~gtap_jax.strategies.scores.Scores`. :func:`by_estimate`
with a budget spends it on every round; without one it estimates until the
round's decision is settled (:mod:`gtap_jax.strategies.settle`).
:func:`by_exact` enumerates small games.
"""

from __future__ import annotations

import numpy as np

from gtap_jax.engine import Plan, make_plan
from gtap_jax.indices import default_estimator, draw_size, estimate, exact, resolve_d
from gtap_jax.indices.pilot import Pilot, pilot_decides, pilot_key, shapley_pilot
from gtap_jax.registry import renamed
from gtap_jax.strategies.scores import AttributeFn, Scores, order_of
from gtap_jax.strategies.settle import RoundSpec, Settle, scores_at, settle_round, z_value

_SETTLE_KEYWORDS = {name: f"settle=Settle({name}=...)" for name in Settle._fields}
_PLAN_KEYWORDS = {"chunk_size": "plan=make_plan(chunk_size=...)", "mesh": "plan=make_plan(mesh=...)"}


def round_budget(index: str, num_players: int, evaluations: int, *, estimator: str | None = None,
                 value_fn=None) -> tuple[str, int]:
    """The estimator and the evaluations of one fixed-budget round of :func:`by_estimate`.

    The estimator is ``estimator`` or :func:`~gtap_jax.indices.default_estimator` (for ``value_fn``); the
    evaluations are ``evaluations`` in whole draws, and at least two draws (every player
    needs a standard error).
    """
    estimator = estimator or default_estimator(index, num_players, evaluations, value_fn)
    k = draw_size(estimator, num_players)
    return estimator, k * max(evaluations // k, 2)


def fixed_budget_scores(att, cutoffs, settle_options: Settle, weights=None) -> Scores:
    """:class:`Scores` of a fixed-budget estimate, with how settled its decision is (one check at ``delta``; with
    ``weights``, a decision by value per weight: :func:`~gtap_jax.strategies.settle.per_weight`)."""
    z = z_value(settle_options.delta, att.values.shape[0])
    return scores_at(att.values, att.stderr, att.num_evaluations, cutoffs, z, settle_options.epsilon, weights)


@renamed(method="estimator=", **_SETTLE_KEYWORDS, **_PLAN_KEYWORDS)
def by_estimate(
    index: str,
    *,
    evaluations: int | None = None,
    d: float | None = None,
    estimator: str | None = None,
    settle: Settle = Settle(),  # noqa: B008 (an immutable NamedTuple)
    plan: Plan | None = None,
    progress: bool = False,
) -> AttributeFn:
    """Attribute function running :func:`gtap_jax.estimate`.

    With ``evaluations``, each round spends that budget (in whole draws, at
    least two) and reports how settled its decision is at ``settle.delta`` and
    ``settle.epsilon``. Without it, each round samples until the strategy's
    decision is settled at confidence ``1 - settle.delta`` up to ``settle.epsilon``
    (:mod:`gtap_jax.strategies.settle`), doubling its evaluations between checks
    from ``max(1024, 5 (P + 1))``, and stops at ``settle.max_evaluations`` settled
    or not (the scores say which). After the first check, while at most half the
    players are unsure and ``settle.focus`` is True, the draws aim at the unsure
    players alone (:mod:`gtap_jax.indices.focus`: stars, for Shapley with a random
    inclusion probability per draw). Shapley rounds given ``estimator="pilot"``, or none
    where the default (:func:`~gtap_jax.indices.default_estimator`) is permutations, draw
    permutations or antithetic orders, whichever a pilot on the first round's game finds more
    precise per value (``settle.pilot``, :mod:`gtap_jax.indices.pilot`; its values are counted
    in the first round's).
    :func:`~gtap_jax.strategies.settle.share_epsilon` gives an epsilon that means the same
    for games of any size and metric.

    The attribute function also takes ``weights=`` (``float[P] > 0``, each player's cost: the
    decision then ranks value per weight, ``Scores.ranking`` its order), ``resume=`` (a
    :class:`~gtap_jax.strategies.settle.SettleState`) and ``on_check=`` (called with
    the state after every check), so a stopped settling round can continue where it
    was saved. The plan is decided once, on the first (full) game, and reused for
    every sub-game.

    Raises:
        ValueError: for a bad index or d, or bad settling options.
    """
    resolve_d(index, d)
    settle.check()
    decided = [plan]
    piloted: list[Pilot] = []  # the first round's pilot: its estimator for every round

    def attribute(key, value_fn, num_players, cutoffs=(), *, weights=None, resume=None, on_check=None) -> Scores:
        if decided[0] is None:
            decided[0] = make_plan(value_fn, num_players, num_coalitions=evaluations or settle.max_evaluations)
        d_ = resolve_d(index, d)
        if evaluations is None:
            chosen = estimator or default_estimator(index, num_players, settle.max_evaluations, value_fn)
            spent = 0
            if pilot_decides(index, estimator, settle.pilot, chosen):
                if not piloted:
                    piloted.append(shapley_pilot(pilot_key(key), value_fn, num_players, plan=decided[0]))
                    spent = piloted[0].num_evaluations
                chosen = piloted[0].estimator
            spec = RoundSpec(index, d_, chosen, decided[0], progress)
            out = settle_round(key, value_fn, num_players, cutoffs, spec, settle, resume=resume, on_check=on_check,
                               weights=weights)
            return out._replace(num_evaluations=out.num_evaluations + spent)
        chosen, budget = round_budget(index, num_players, evaluations, estimator=estimator, value_fn=value_fn)
        att = estimate(key, value_fn, num_players, index, evaluations=budget, estimator=chosen, d=d_, plan=decided[0],
                       progress=progress)
        return fixed_budget_scores(att, cutoffs, settle, weights)

    return attribute


@renamed(**_PLAN_KEYWORDS)
def by_exact(index: str, *, d: float | None = None, plan: Plan | None = None) -> AttributeFn:
    """Attribute function that enumerates the (sub-)game exactly (2^P evaluations a round); for small games."""
    resolve_d(index, d)

    def attribute(key, value_fn, num_players, cutoffs=(), *, weights=None) -> Scores:
        del key, cutoffs
        values = np.asarray(exact(value_fn, num_players, index, d=d, plan=plan), np.float64)
        ranking = None if weights is None else order_of(values / np.asarray(weights, np.float64))
        return Scores(values, values * 0.0, 1 << num_players, ranking=ranking)

    return attribute


__all__ = ["by_estimate", "by_exact", "fixed_budget_scores", "round_budget"]
