"""Allocation: how many players of each group a method keeps, and which, from its scores.

A pruning method is (scores, allocation, strategy). The scores say how strong each player is;
the allocation turns them into a kept set at a target, either a player count or a budget of
cost (parameters or FLOPs of the smaller network):

- ``proportional``: every group keeps its share of the players (:func:`gtap_jax.layout.allocate`),
  its highest scores within it;
- ``global``: one ranking over all players;
- ``cost``: one ranking by score per unit of cost, so a method may drop fewer expensive players or
  more cheap ones (the greedy rule of the knapsack problem: players of positive score by score / cost,
  then the rest, the costliest first to go).

Under these three each group keeps at least its best player (a smaller network keeps one, and a group
emptied outright is a network that no longer computes with it). A fourth, ``strategy``, is an
iterated strategy's own order in a joint game (the kept sets of its rounds, which may empty a group).
Scores whose units differ between groups (a weight's
magnitude) are made comparable before ``global`` and ``cost`` rank them (:func:`comparable`).

A network's cost depends only on how many players each group keeps (the widths of its layers), and
every weight or operation counts a product of at most two widths, so the cost is a quadratic
polynomial of the kept counts: :func:`fit_cost` finds it exactly from a few smaller networks and
checks it on another.

Framework-free: a cost is measured by whatever function the caller passes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gtap_jax.layout import PlayerLayout, keep_per_layer, strongest_first
from gtap_jax.registry import Registry


class Cost(NamedTuple):
    """A network's cost as a quadratic polynomial of the kept players per group (in layout order).

    ``cost(n) = constant + linear . n + n . quadratic . n`` with ``quadratic`` upper triangular.
    """

    unit: str
    constant: float
    linear: np.ndarray
    quadratic: np.ndarray

    def __call__(self, counts) -> float:
        n = np.asarray(counts, np.float64)
        return float(self.constant + self.linear @ n + n @ self.quadratic @ n)

    def of_mask(self, layout: PlayerLayout, mask) -> float:
        """The cost of the network that keeps ``mask`` (``bool[P]``)."""
        return self(counts_of(layout, mask))

    def total(self, layout: PlayerLayout) -> float:
        """The cost of the whole network."""
        return self([size for _, size in layout.layers])

    def per_player(self, layout: PlayerLayout) -> np.ndarray:
        """``float[P]``: what dropping one player of its group saves, from the whole network."""
        return self.marginal(layout, np.ones(layout.num_players, bool))

    def marginal(self, layout: PlayerLayout, mask) -> np.ndarray:
        """``float[P]``: what each player's presence costs in the network that keeps ``mask``: for a kept player
        what dropping it saves, for an absent one what adding it costs (a player of its group, at those widths)."""
        kept = layout.split(np.asarray(mask, bool))
        counts = counts_of(layout, mask).astype(np.float64)
        here, out = self(counts), []
        for g, (name, _) in enumerate(layout.layers):
            fewer, more = counts.copy(), counts.copy()
            fewer[g] -= 1
            more[g] += 1
            out.append(np.where(kept[name], here - self(fewer), self(more) - here))
        return np.concatenate(out)


def counts_of(layout: PlayerLayout, mask) -> np.ndarray:
    """``int[G]``: kept players per group."""
    return np.array([int(np.sum(m)) for m in layout.split(np.asarray(mask, bool)).values()])


def mask_of_counts(layout: PlayerLayout, counts) -> np.ndarray:
    """``bool[P]`` keeping the first ``counts[g]`` players of each group (cost depends on counts only)."""
    return np.concatenate([np.arange(size) < c for (_, size), c in zip(layout.layers, counts, strict=True)])


def fit_cost(measure: Callable[[np.ndarray], float], layout: PlayerLayout, *, unit: str, seed: int = 0,
             rtol: float = 1e-6) -> Cost:
    """The exact quadratic cost from ``measure(mask) -> cost`` of a few smaller networks.

    Finite differences at the whole network: every group one and two players down, every pair one
    down each (``1 + 2G + G(G-1)/2`` measurements), then checks at one player per group and at random counts.

    Raises:
        ValueError: when the check disagrees beyond ``rtol`` (the cost is not quadratic in the widths),
            naming both numbers.
    """
    full = np.array([size for _, size in layout.layers], np.int64)
    groups = len(full)
    memo: dict[tuple, float] = {}

    def at(counts) -> float:
        key = tuple(int(c) for c in counts)
        if key not in memo:
            memo[key] = float(measure(mask_of_counts(layout, key)))
        return memo[key]

    def down(*gs) -> np.ndarray:
        n = full.copy()
        for g in gs:
            n[g] -= 1
        return n

    f0 = at(full)
    # c(n - e_g) = c0 - d_g + q_gg with d_g = linear_g + 2 q_gg n_g + sum_h!=g q_gh n_h; second differences give q
    quad = np.zeros((groups, groups))
    for g in range(groups):
        if full[g] >= 3:
            quad[g, g] = (at(down(g, g)) - 2 * at(down(g)) + f0) / 2
    for g, h in itertools.combinations(range(groups), 2):
        quad[g, h] = at(down(g, h)) - at(down(g)) - at(down(h)) + f0
    gradient = np.array([f0 - at(down(g)) + quad[g, g] for g in range(groups)])  # df/dn_g at full
    linear = gradient - (quad + quad.T) @ full
    constant = f0 - linear @ full - full @ quad @ full
    cost = Cost(unit, float(constant), linear, quad)
    rng = np.random.default_rng(seed)
    for probe in (np.ones(groups, np.int64), np.array([rng.integers(1, s + 1) for s in full])):
        measured, predicted = at(probe), cost(probe)
        if abs(measured - predicted) > rtol * max(abs(measured), 1.0):
            raise ValueError(f"the {unit} of a network keeping {probe.tolist()} players per group is {measured:g},"
                             f" but a quadratic in the widths predicts {predicted:g}: this network's {unit} cannot be"
                             " budgeted")
    return cost


def comparable(scores: np.ndarray, layout: PlayerLayout) -> np.ndarray:
    """Scores divided by their group's L2 norm, for scores whose units differ between groups (weight magnitude).

    References:
        Molchanov et al., Pruning Convolutional Neural Networks for Resource Efficient Inference, ICLR 2017
        (layer-wise L2 normalisation of scores before a global ranking).
    """
    out = np.asarray(scores, np.float64).copy()
    for a, b in layout.offsets().values():
        norm = np.linalg.norm(out[a:b])
        out[a:b] = out[a:b] / norm if norm > 0 else out[a:b]
    return out


def _best_of_each_group(layout: PlayerLayout, order: np.ndarray) -> np.ndarray:
    """``order`` with each group's first player moved to the front (every group keeps one)."""
    group = np.repeat(np.arange(len(layout.layers)), [s for _, s in layout.layers])
    _, first = np.unique(group[order], return_index=True)
    firsts = order[np.sort(first)]
    return np.concatenate([firsts, order[~np.isin(order, firsts)]])


def proportional(scores, layout: PlayerLayout, r: int, cost: Cost | None = None) -> np.ndarray:
    """Each group keeps ``allocate(layout, r)`` players: its highest scores (:func:`gtap_jax.layout.keep_per_layer`)."""
    del cost
    return keep_per_layer(scores, layout, r)


def ranked(scores, layout: PlayerLayout, r: int, cost: Cost | None = None) -> np.ndarray:
    """The ``r`` highest scores over all players, each group's best first."""
    del cost
    order = _best_of_each_group(layout, strongest_first(np.asarray(scores, np.float64)))
    keep = np.zeros(layout.num_players, bool)
    keep[order[:r]] = True
    return keep


def in_order(scores, layout: PlayerLayout, r: int, cost: Cost | None = None) -> np.ndarray:
    """The ``r`` highest scores, whatever their group (an iterated strategy's priority: its rounds' kept sets)."""
    del layout, cost
    keep = np.zeros(np.size(scores), bool)
    keep[strongest_first(np.asarray(scores, np.float64))[:r]] = True
    return keep


def by_cost(scores, layout: PlayerLayout, r: int, cost: Cost | None = None) -> np.ndarray:
    """The ``r`` players of highest score per unit of cost (positive scores), then the rest by score x cost.

    Raises:
        ValueError: without a cost.
    """
    if cost is None:
        raise ValueError("the cost allocation needs the network's cost (targets in params or flops)")
    scores = np.asarray(scores, np.float64)
    per_player = np.maximum(cost.per_player(layout), np.finfo(np.float64).tiny)
    # positive scores by score / cost; the others after them, the costliest dropped first
    density = np.where(scores > 0, scores / per_player, 0.0)
    order = np.lexsort((np.arange(scores.size), -np.where(scores > 0, 0.0, scores * per_player), -density,
                        scores <= 0))
    order = _best_of_each_group(layout, order)
    keep = np.zeros(layout.num_players, bool)
    keep[order[:r]] = True
    return keep


AllocationFn = Callable[[np.ndarray, PlayerLayout, int, "Cost | None"], np.ndarray]
ALLOCATIONS = Registry("allocation", {"proportional": proportional, "global": ranked, "cost": by_cost,
                                      "strategy": in_order})


def keep(scores, layout: PlayerLayout, allocation: str, *, players: int | None = None, budget: float | None = None,
         cost: Cost | None = None) -> np.ndarray:
    """The kept players (``bool[P]``) under ``allocation`` at a player count or within a cost budget.

    With ``budget``, the most players whose network costs at most ``budget`` (for the ``cost``
    allocation: whose next player would exceed it).

    Raises:
        ValueError: for both or neither of ``players`` and ``budget``, an unknown allocation, a budget
            without a cost, or a budget below the cheapest network the allocation can make (naming it).
    """
    fn = ALLOCATIONS[allocation]
    if (players is None) == (budget is None):
        raise ValueError("give a player count or a budget, not both")
    if players is not None:
        return fn(scores, layout, int(players), cost)
    if cost is None:
        raise ValueError("a budget needs the network's cost")
    lo, hi = (1 if allocation == "strategy" else len(layout.layers)), layout.num_players
    cheapest = cost.of_mask(layout, fn(scores, layout, lo, cost))
    if cheapest > budget:
        raise ValueError(f"a budget of {budget:g} {cost.unit} is below {cheapest:g}, the {cost.unit} of the smallest"
                         f" network the {allocation} allocation makes ({lo} players)")
    while lo < hi:  # the largest r within budget; costs grow with r (ties: the larger)
        mid = (lo + hi + 1) // 2
        if cost.of_mask(layout, fn(scores, layout, mid, cost)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return fn(scores, layout, lo, cost)


def players_within(layout: PlayerLayout, budget: float, cost: Cost) -> int:
    """The most players a proportional allocation keeps within ``budget`` (what any per-group method meets)."""
    return int(keep(np.zeros(layout.num_players), layout, "proportional", budget=budget, cost=cost).sum())


__all__ = [
    "ALLOCATIONS", "AllocationFn", "Cost", "by_cost", "comparable", "counts_of", "fit_cost", "in_order", "keep",
    "mask_of_counts", "players_within", "proportional", "ranked",
]
