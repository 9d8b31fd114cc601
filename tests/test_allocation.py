"""Allocations on a toy layout: proportional, global, cost; the exact cost fit; a strategy's priority."""

import jax
import numpy as np
import pytest

from gtap_jax import by_exact, iterated_building, iterated_pruning, top_n
from gtap_jax.games import additive_game
from gtap_jax.layout import PlayerLayout, keep_per_layer
from gtap_jax.strategies.allocation import (
    ALLOCATIONS,
    comparable,
    counts_of,
    fit_cost,
    keep,
    players_within,
)

LAYOUT = PlayerLayout((("a", 4), ("b", 6), ("c", 2)))
# group a's players are strong, b's weak, c's middling
SCORES = np.array([9.0, 8, 7, 6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 3, 2])


def mlp_params(counts):
    """Parameters of a chain 5 -> a -> b -> c -> 3 with biases, by kept widths (a quadratic)."""
    a, b, c = counts
    return 5 * a + a + a * b + b + b * c + c + c * 3 + 3


COST = fit_cost(lambda m: mlp_params(counts_of(LAYOUT, m)), LAYOUT, unit="params")


def test_proportional_is_keep_per_layer():
    for r in range(3, 13):
        np.testing.assert_array_equal(keep(SCORES, LAYOUT, "proportional", players=r),
                                      keep_per_layer(SCORES, LAYOUT, r))


def test_global_keeps_top_scores_regardless_of_group():
    kept = keep(SCORES, LAYOUT, "global", players=6)
    # the top 6 scores are a's four and c's two; b keeps only its best player (every group keeps one)
    np.testing.assert_array_equal(np.flatnonzero(kept), [0, 1, 2, 3, 9, 10])
    # a strategy's own order may empty a group
    np.testing.assert_array_equal(np.flatnonzero(keep(SCORES, LAYOUT, "strategy", players=6)), [0, 1, 2, 3, 10, 11])
    kept = keep(SCORES, LAYOUT, "global", players=8)
    np.testing.assert_array_equal(np.flatnonzero(kept), [0, 1, 2, 3, 8, 9, 10, 11])
    # proportional keeps each group's share: b keeps 3 of its 6 at 6 players
    assert counts_of(LAYOUT, keep(SCORES, LAYOUT, "proportional", players=6)).tolist() == [2, 3, 1]


def test_cost_fit_is_exact():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = [rng.integers(1, s + 1) for _, s in LAYOUT.layers]
        assert COST(counts) == pytest.approx(mlp_params(counts))


def test_a_players_cost_at_a_mask_is_what_dropping_or_adding_it_changes():
    """A kept player of group b in a network of widths (3, 2, 1) saves the 5 of b: a * 1 + 1 + c = 3 + 1 + 1;
    an absent one of b costs as much to add; at the whole network the marginal is the per-player cost."""
    mask = np.zeros(LAYOUT.num_players, bool)
    mask[[0, 1, 2, 4, 5, 10]] = True  # widths 3, 2, 1
    marginal = COST.marginal(LAYOUT, mask)
    for i in range(LAYOUT.num_players):
        flipped = mask.copy()
        flipped[i] = ~flipped[i]
        change = abs(mlp_params(counts_of(LAYOUT, flipped)) - mlp_params(counts_of(LAYOUT, mask)))
        assert marginal[i] == pytest.approx(change), i
    assert marginal[4] == pytest.approx(5) and marginal[6] == pytest.approx(5)
    np.testing.assert_allclose(COST.marginal(LAYOUT, np.ones(LAYOUT.num_players, bool)), COST.per_player(LAYOUT))
    np.testing.assert_allclose(COST.per_player(LAYOUT)[4], mlp_params((4, 6, 2)) - mlp_params((4, 5, 2)))


def test_fit_cost_refuses_a_cost_that_is_not_quadratic():
    with pytest.raises(ValueError, match="cannot be budgeted"):
        fit_cost(lambda m: float(np.prod(counts_of(LAYOUT, m))), LAYOUT, unit="flops")


@pytest.mark.parametrize("allocation", list(ALLOCATIONS))
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_budget_is_met_and_no_next_player_fits(allocation, fraction):
    budget = fraction * COST.total(LAYOUT)
    kept = keep(SCORES, LAYOUT, allocation, budget=budget, cost=COST)
    assert COST.of_mask(LAYOUT, kept) <= budget
    more = ALLOCATIONS[allocation](SCORES, LAYOUT, int(kept.sum()) + 1, COST)
    assert COST.of_mask(LAYOUT, more) > budget
    if allocation != "strategy":
        assert (counts_of(LAYOUT, kept) >= 1).all()


def test_cost_allocation_prefers_cheap_players_at_a_budget():
    # b's units cost 4 + 2 + 1 = 7 parameters each, a's 1 + 5 + 6 = 12: with equal scores, cost keeps more b
    flat = np.ones(LAYOUT.num_players)
    budget = 0.6 * COST.total(LAYOUT)
    by_cost = keep(flat, LAYOUT, "cost", budget=budget, cost=COST)
    assert by_cost.sum() >= keep(flat, LAYOUT, "proportional", budget=budget, cost=COST).sum()
    assert counts_of(LAYOUT, by_cost)[1] == 6


def test_budget_below_the_smallest_network_says_why():
    with pytest.raises(ValueError, match="below"):
        keep(SCORES, LAYOUT, "global", budget=5.0, cost=COST)


def test_players_within_budget():
    budget = 0.5 * COST.total(LAYOUT)
    r = players_within(LAYOUT, budget, COST)
    assert COST.of_mask(LAYOUT, keep(SCORES, LAYOUT, "proportional", players=r)) <= budget


def test_unknown_allocation_lists_the_registered_ones():
    with pytest.raises(ValueError, match="proportional"):
        keep(SCORES, LAYOUT, "uniform", players=5)


def test_comparable_scores_have_unit_norm_per_group():
    out = comparable(SCORES, LAYOUT)
    for a, b in LAYOUT.offsets().values():
        assert np.linalg.norm(out[a:b]) == pytest.approx(1.0)


@pytest.mark.parametrize("strategy", [top_n, iterated_pruning, iterated_building])
def test_priority_reproduces_every_round(strategy):
    w = np.random.default_rng(3).normal(size=12)
    res = strategy(jax.random.key(0), additive_game(w), 12, [9, 5, 2], by_exact("banzhaf"), step=2)
    order = np.argsort(-res.priority(), kind="stable")
    for rnd in res.history:
        size = int(rnd.mask.sum())
        np.testing.assert_array_equal(np.sort(order[:size]), np.flatnonzero(rnd.mask))
