import itertools
import math

import numpy as np
import pytest

from gtap_jax import exact
from gtap_jax.games import (
    additive_game,
    lookup_game,
    random_lookup_table,
    unanimity_game,
    unanimity_indices,
    weighted_majority_game,
)
from gtap_jax.indices import coalition_values


def _code(members):
    return sum(1 << j for j in members)


def brute_shapley(table, p):
    """Definition: average marginal contribution over all p! orders (independent oracle)."""
    phi = np.zeros(p)
    for order in itertools.permutations(range(p)):
        code = 0
        for j in order:
            phi[j] += table[code | (1 << j)] - table[code]
            code |= 1 << j
    return phi / math.factorial(p)


def brute_beta(table, p, d):
    """Definition: sum over S without i of d^|S| (1-d)^(p-1-|S|) [v(S+i) - v(S)]."""
    phi = np.zeros(p)
    for i in range(p):
        others = [j for j in range(p) if j != i]
        for k in range(p):
            for s in itertools.combinations(others, k):
                c = _code(s)
                phi[i] += d**k * (1 - d) ** (p - 1 - k) * (table[c | (1 << i)] - table[c])
    return phi


@pytest.mark.parametrize("index,d", [("shapley", None), ("banzhaf", None), ("beta", 0.2), ("beta", 0.8)])
def test_additive_game(index, d):
    w = np.array([0.5, -1.0, 2.0, 0.0, 3.5, 1.25])
    np.testing.assert_allclose(exact(additive_game(w), 6, index, d=d), w, atol=1e-5)


@pytest.mark.parametrize("index,d", [("shapley", None), ("banzhaf", None), ("beta", 0.3)])
def test_unanimity_closed_form(index, d):
    carriers = [1, 2, 5]
    got = exact(unanimity_game(7, carriers), 7, index, d=d)
    np.testing.assert_allclose(got, unanimity_indices(7, carriers, index, d=d if d else 0.5), atol=1e-7)


def test_lookup_game_matches_definitions():
    p = 5
    table = random_lookup_table(7, p)
    game = lookup_game(table)
    np.testing.assert_allclose(coalition_values(game, p), table)
    np.testing.assert_allclose(exact(game, p, "shapley"), brute_shapley(table, p), atol=1e-6)
    np.testing.assert_allclose(exact(game, p, "banzhaf"), brute_beta(table, p, 0.5), atol=1e-6)
    np.testing.assert_allclose(exact(game, p, "beta", d=0.35), brute_beta(table, p, 0.35), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_shapley_efficiency(seed):
    table = random_lookup_table(seed, 9)
    phi = exact(lookup_game(table), 9, "shapley")
    assert phi.sum() == pytest.approx(table[-1] - table[0], abs=1e-5)
    w = np.array([4, 3, 3, 2, 1, 1, 1])
    phi = exact(weighted_majority_game(w, 8), 7, "shapley")
    assert phi.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("index,d", [("shapley", None), ("banzhaf", None), ("beta", 0.7)])
def test_symmetry_and_null_player(index, d):
    w = np.array([4, 3, 3, 2, 1, 1, 0])  # players 1, 2 symmetric; 4, 5 symmetric; 6 null
    phi = exact(weighted_majority_game(w, 8), 7, index, d=d)
    assert phi[1] == pytest.approx(phi[2], abs=1e-9)
    assert phi[4] == pytest.approx(phi[5], abs=1e-9)
    assert phi[6] == pytest.approx(0.0, abs=1e-9)
    assert phi[0] > phi[1] > phi[3] >= phi[4] > 0


def test_twenty_players():
    w = np.random.default_rng(0).normal(size=20)
    np.testing.assert_allclose(exact(additive_game(w), 20, "shapley"), w, atol=1e-4)


def test_bad_input():
    game = additive_game(np.ones(3))
    with pytest.raises(ValueError, match="unknown index"):
        exact(game, 3, "owen")
    with pytest.raises(ValueError, match="strictly between"):
        exact(game, 3, "beta", d=1.0)
    with pytest.raises(ValueError, match="needs d"):
        exact(game, 3, "beta")
    with pytest.raises(ValueError, match="num_players"):
        exact(additive_game(np.ones(40)), 40, "shapley")
