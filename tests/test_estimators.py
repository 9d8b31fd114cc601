"""Monte Carlo estimators against exact enumeration, with fixed keys and stderr-based tolerances."""

import jax
import numpy as np
import pytest

from gtap_jax import estimate, exact
from gtap_jax.games import additive_game, lookup_game, random_lookup_table, unanimity_game, weighted_majority_game
from gtap_jax.indices import default_method
from gtap_jax.indices.estimate import REGRESSION_MAX_PLAYERS

CASES = [
    ("shapley", None, "permutation"),
    ("shapley", None, "antithetic"),
    ("banzhaf", None, "msr"),
    ("banzhaf", None, "paired"),
    ("beta", 0.25, "msr"),
    ("beta", 0.25, "paired"),
    ("beta", 0.8, "paired"),
    ("banzhaf", None, "regression"),
    ("beta", 0.25, "regression"),
    ("beta", 0.8, "regression"),
]
GAMES = {
    "unanimity": (lambda: unanimity_game(8, [0, 3, 5]), 8),
    "majority": (lambda: weighted_majority_game(np.array([5, 4, 3, 3, 2, 1, 1, 0]), 10), 8),
    "lookup": (lambda: lookup_game(random_lookup_table(11, 8)), 8),
    "additive": (lambda: additive_game(np.linspace(-2, 3, 8)), 8),
}


@pytest.mark.parametrize("game_name", list(GAMES))
@pytest.mark.parametrize("index,d,method", CASES)
def test_within_standard_errors_of_exact(game_name, index, d, method):
    make, p = GAMES[game_name]
    game = make()
    truth = exact(game, p, index, d=d)
    att = estimate(jax.random.key(42), game, p, index, num_samples=3000, d=d, method=method)
    values, se = np.asarray(att.values), np.asarray(att.stderr)
    assert att.num_samples == 3000
    # 5 standard errors per player (plus float32 rounding) over ~200 comparisons in all.
    assert np.all(np.abs(values - truth) <= 5 * se + 1e-4), (values, truth, se)
    # The errors are real: a player with zero stderr must be estimated exactly.
    assert np.all(np.isfinite(se))


@pytest.mark.parametrize("index,d,method", CASES)
def test_stderr_shrinks_like_inverse_sqrt(index, d, method):
    game = lookup_game(random_lookup_table(5, 7))
    small = estimate(jax.random.key(0), game, 7, index, num_samples=500, d=d, method=method)
    large = estimate(jax.random.key(1), game, 7, index, num_samples=8000, d=d, method=method)
    ratio = np.asarray(large.stderr) / np.asarray(small.stderr)
    # Expected 0.25; the stderr of a stderr from 500 samples is a few percent.
    assert np.median(ratio) == pytest.approx(0.25, rel=0.15)


@pytest.mark.parametrize("method", ["msr", "regression"])
def test_stderr_is_calibrated(method):
    """Across independent keys, the estimate's error has the spread its stderr claims."""
    game = lookup_game(random_lookup_table(3, 6))
    truth = exact(game, 6, "banzhaf")
    z = []
    for seed in range(40):
        att = estimate(jax.random.key(seed), game, 6, "banzhaf", num_samples=400, method=method)
        z.append((np.asarray(att.values) - truth) / np.asarray(att.stderr))
    z = np.concatenate(z)  # 240 z-scores: their variance should be ~1, +- ~0.1
    assert np.var(z) == pytest.approx(1.0, abs=0.3)
    assert abs(np.mean(z)) < 4 / np.sqrt(z.size) * 3


@pytest.mark.parametrize("method", ["permutation", "antithetic"])
def test_shapley_samples_are_efficient(method):
    """Every permutation sample sums to v(N) - v(empty), so the estimate does too."""
    table = random_lookup_table(2, 7)
    att = estimate(jax.random.key(3), lookup_game(table), 7, "shapley", num_samples=50, method=method)
    assert float(np.sum(att.values)) == pytest.approx(table[-1] - table[0], abs=1e-4)


@pytest.mark.parametrize("index,d,method", CASES)
def test_independent_of_chunk_size_and_mesh(mesh, one_device, index, d, method):
    game = lookup_game(random_lookup_table(9, 6))
    runs = [
        estimate(jax.random.key(5), game, 6, index, num_samples=301, d=d, method=method, chunk_size=c, mesh=m)
        for c, m in [(7, one_device), (64, one_device), (4096, one_device), (64, mesh), (None, None)]
    ]
    for other in runs[1:]:
        np.testing.assert_allclose(other.values, runs[0].values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(other.stderr, runs[0].stderr, rtol=1e-4, atol=1e-6)
        assert other.num_evaluations == runs[0].num_evaluations


@pytest.mark.parametrize("method", ["msr", "paired", "regression"])
def test_resume_continues_the_same_run(method):
    game = lookup_game(random_lookup_table(4, 6))
    key = jax.random.key(8)
    whole = estimate(key, game, 6, "banzhaf", num_samples=600, method=method)
    first = estimate(key, game, 6, "banzhaf", num_samples=250, method=method)
    resumed = estimate(key, game, 6, "banzhaf", num_samples=350, method=method, state=first.state)
    assert resumed.num_samples == 600
    np.testing.assert_allclose(resumed.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.stderr, whole.stderr, rtol=1e-4, atol=1e-7)


def test_evaluation_counts():
    game = additive_game(np.ones(5))
    key = jax.random.key(0)
    assert estimate(key, game, 5, "shapley", num_samples=10, method="permutation").num_evaluations == 60
    assert estimate(key, game, 5, "shapley", num_samples=10, method="antithetic").num_evaluations == 120
    assert estimate(key, game, 5, "banzhaf", num_samples=10, method="paired").num_evaluations == 60
    assert estimate(key, game, 5, "banzhaf", num_samples=10, method="msr").num_evaluations == 10


def test_bad_input():
    game = additive_game(np.ones(3))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown method"):
        estimate(key, game, 3, "shapley", num_samples=10, method="msr")
    with pytest.raises(ValueError, match="strictly between"):
        estimate(key, game, 3, "beta", num_samples=10, d=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        estimate(key, game, 3, "banzhaf", num_samples=-1)


@pytest.mark.parametrize("d", [0.5, 0.3])
def test_regression_is_exact_on_an_additive_game(d):
    """A linear game has no residual: the fit recovers the weights from any P + 2 distinct draws."""
    w = np.linspace(-2, 3, 8)
    att = estimate(jax.random.key(0), additive_game(w), 8, "beta", num_samples=200, d=d, method="regression")
    np.testing.assert_allclose(np.asarray(att.values), w, atol=1e-4)
    assert np.all(np.asarray(att.stderr) < 1e-3)
    msr = estimate(jax.random.key(0), additive_game(w), 8, "beta", num_samples=200, d=d, method="msr")
    assert np.all(np.asarray(msr.stderr) > 0.1)  # the difference of means carries the others' noise


def test_regression_stderr_is_infinite_until_the_fit_is_determined():
    att = estimate(jax.random.key(0), lookup_game(random_lookup_table(1, 6)), 6, "banzhaf", num_samples=7,
                   method="regression")
    assert np.all(np.isinf(np.asarray(att.stderr)))


def test_default_method_follows_the_budget_and_the_state():
    game = lookup_game(random_lookup_table(2, 6))
    key = jax.random.key(0)
    # 5 draws per player and more: regression; fewer: MSR (6 players, 7 = P + 1).
    assert estimate(key, game, 6, "banzhaf", num_samples=35).method == "regression"
    small = estimate(key, game, 6, "beta", d=0.3, num_samples=34)
    assert small.method == "msr"
    # Continuing a run keeps its method, whatever the budget of this call.
    assert estimate(key, game, 6, "beta", d=0.3, num_samples=500, state=small.state).method == "msr"
    paired = estimate(key, game, 6, "banzhaf", num_samples=3, method="paired")
    assert estimate(key, game, 6, "banzhaf", num_samples=500, state=paired.state).method == "paired"
    assert estimate(key, game, 6, "shapley", num_samples=500).method == "permutation"
    assert default_method("banzhaf", REGRESSION_MAX_PLAYERS + 1, 10**9) == "msr"
