"""Monte Carlo estimators against exact enumeration, with fixed keys and stderr-based tolerances."""

import jax
import numpy as np
import pytest

from gtap_jax import estimate, exact
from gtap_jax.games import additive_game, lookup_game, random_lookup_table, unanimity_game, weighted_majority_game
from gtap_jax.indices import ESTIMATORS, EstimatorEntry, default_method, make_estimator, methods_for, msr_beta
from gtap_jax.indices.estimate import REGRESSION_MAX_PLAYERS

CASES = [
    ("shapley", None, "permutation"),
    ("shapley", None, "antithetic"),
    ("shapley", None, "kernel"),
    ("banzhaf", None, "msr"),
    ("banzhaf", None, "paired"),
    ("beta", 0.25, "msr"),
    ("beta", 0.25, "paired"),
    ("beta", 0.8, "paired"),
    ("banzhaf", None, "regression"),
    ("beta", 0.25, "regression"),
    ("beta", 0.8, "regression"),
]
def _budget(draws, p, index, d, method):
    """Evaluations that buy ``draws`` draws of ``method``: tests compare methods at equal draws."""
    return draws * make_estimator(p, index, d=d, method=method).draw_size


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
    budget = _budget(3000, p, index, d, method)
    att = estimate(jax.random.key(42), game, p, index, evaluations=budget, d=d, method=method)
    values, se = np.asarray(att.values), np.asarray(att.stderr)
    assert att.num_draws == 3000 and att.num_evaluations == budget
    # 5 standard errors per player (plus float32 rounding) over ~200 comparisons in all.
    assert np.all(np.abs(values - truth) <= 5 * se + 1e-4), (values, truth, se)
    # The errors are real: a player with zero stderr must be estimated exactly.
    assert np.all(np.isfinite(se))


@pytest.mark.parametrize("index,d,method", CASES)
def test_stderr_shrinks_like_inverse_sqrt(index, d, method):
    game = lookup_game(random_lookup_table(5, 7))
    small, large = (
        estimate(jax.random.key(s), game, 7, index, evaluations=_budget(n, 7, index, d, method), d=d, method=method)
        for s, n in [(0, 500), (1, 8000)]
    )
    ratio = np.asarray(large.stderr) / np.asarray(small.stderr)
    # Expected 0.25; the stderr of a stderr from 500 samples is a few percent.
    assert np.median(ratio) == pytest.approx(0.25, rel=0.15)


def _heteroskedastic_table(seed, p):
    """A random game whose coalitions of p - 1 or more players carry most of the noise."""
    rng = np.random.default_rng(seed)
    table = random_lookup_table(seed, p)
    size = np.array([bin(c).count("1") for c in range(1 << p)])
    return (table + 3.0 * (size >= p - 1) * rng.normal(size=table.size)).astype(np.float32)


CALIBRATION = [
    ("shapley", None, "permutation"),
    ("shapley", None, "antithetic"),
    ("shapley", None, "kernel"),
    *[(index, d, method) for index, d in (("beta", 0.25), ("banzhaf", None), ("beta", 0.8))
      for method in ("msr", "paired", "regression")],
]


@pytest.mark.parametrize("game_name", ["lookup", "heteroskedastic"])
@pytest.mark.parametrize("index,d,method", CALIBRATION)
def test_stderr_is_calibrated(game_name, index, d, method):
    """Over independent keys the errors have the spread their standard errors claim: E[z^2] = 1, E[z] = 0.

    The tolerances are 4 standard errors of the mean of z^2 (per seed) and of each player's z, over
    the seeds, measured from the seeds themselves. The classical OLS error of the regression
    estimator fails two of the four cases away from d = 0.5; the heteroskedasticity-robust one passes.
    """
    p, seeds = 6, 150
    table = random_lookup_table(3, p) if game_name == "lookup" else _heteroskedastic_table(5, p)
    game = lookup_game(table)
    truth = exact(game, p, index, d=d)
    budget = _budget(2000 if method in ("msr", "regression") else 300, p, index, d, method)
    z = np.stack([
        (np.asarray(att.values) - truth) / np.asarray(att.stderr)
        for att in (estimate(jax.random.key(seed), game, p, index, evaluations=budget, d=d, method=method)
                    for seed in range(seeds))
    ])
    per_seed_sq = np.mean(z**2, axis=1)
    assert abs(per_seed_sq.mean() - 1) <= 4 * per_seed_sq.std() / np.sqrt(seeds), per_seed_sq.mean()
    # No player's errors lean to one side (per player: Shapley's errors sum to zero within a seed).
    assert np.all(np.abs(z.mean(axis=0)) <= 4 * z.std(axis=0) / np.sqrt(seeds)), z.mean(axis=0)


@pytest.mark.parametrize("method", ["permutation", "antithetic"])
def test_shapley_samples_are_efficient(method):
    """Every permutation sample sums to v(N) - v(empty), so the estimate does too."""
    table = random_lookup_table(2, 7)
    budget = _budget(50, 7, "shapley", None, method)
    att = estimate(jax.random.key(3), lookup_game(table), 7, "shapley", evaluations=budget, method=method)
    assert float(np.sum(att.values)) == pytest.approx(table[-1] - table[0], abs=1e-4)


@pytest.mark.parametrize("index,d,method", CASES)
def test_independent_of_chunk_size_and_mesh(mesh, one_device, index, d, method):
    game = lookup_game(random_lookup_table(9, 6))
    runs = [
        estimate(jax.random.key(5), game, 6, index, evaluations=_budget(301, 6, index, d, method), d=d, method=method,
                 chunk_size=c, mesh=m)
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
    k = make_estimator(6, "banzhaf", method=method).draw_size
    whole = estimate(key, game, 6, "banzhaf", evaluations=600 * k, method=method)
    first = estimate(key, game, 6, "banzhaf", evaluations=250 * k, method=method)
    resumed = estimate(key, game, 6, "banzhaf", evaluations=350 * k, state=first)  # the method comes with the state
    assert resumed.num_draws == 600 and resumed.method == method
    np.testing.assert_allclose(resumed.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.stderr, whole.stderr, rtol=1e-4, atol=1e-7)


def test_evaluation_counts():
    game = additive_game(np.ones(5))
    key = jax.random.key(0)
    # A budget buys whole draws: 65 evaluations are 10 permutations of 5 players (6 each), 5 antithetic pairs.
    assert estimate(key, game, 5, "shapley", evaluations=65, method="permutation").num_evaluations == 60
    assert estimate(key, game, 5, "shapley", evaluations=65, method="antithetic").num_evaluations == 60
    assert estimate(key, game, 5, "banzhaf", evaluations=65, method="paired").num_evaluations == 60
    assert estimate(key, game, 5, "banzhaf", evaluations=65, method="msr").num_evaluations == 65


def test_bad_input():
    game = additive_game(np.ones(3))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown method 'msr' for index 'shapley'"):
        estimate(key, game, 3, "shapley", evaluations=10, method="msr")
    with pytest.raises(ValueError, match=r"unknown estimator 'owen'; expected one of \['antithetic'"):
        estimate(key, game, 3, "shapley", evaluations=10, method="owen")
    with pytest.raises(ValueError, match=r"unknown index 'owen'; expected one of \['banzhaf', 'beta', 'shapley'\]"):
        estimate(key, game, 3, "owen", evaluations=10)
    with pytest.raises(ValueError, match="strictly between"):
        estimate(key, game, 3, "beta", evaluations=10, d=0.0)
    with pytest.raises(ValueError, match="at least one"):
        estimate(key, game, 3, "banzhaf", evaluations=-1)
    with pytest.raises(ValueError, match=r"at least one permutation draw \(4 coalitions\)"):
        estimate(key, game, 3, "shapley", evaluations=3)


@pytest.mark.parametrize("d", [0.5, 0.3])
def test_regression_is_exact_on_an_additive_game(d):
    """A linear game has no residual: the fit recovers the weights from any P + 2 distinct draws."""
    w = np.linspace(-2, 3, 8)
    att = estimate(jax.random.key(0), additive_game(w), 8, "beta", evaluations=200, d=d, method="regression")
    np.testing.assert_allclose(np.asarray(att.values), w, atol=1e-4)
    msr = estimate(jax.random.key(0), additive_game(w), 8, "beta", evaluations=200, d=d, method="msr")
    assert np.all(np.asarray(msr.stderr) > 0.1)  # the difference of means carries the others' noise
    if d == 0.5:  # no residual, and the robust error's design term vanishes: exact
        assert np.all(np.asarray(att.stderr) < 1e-3)
    # Elsewhere the design's moments stand in for a sample sum: small, but not zero.
    assert np.all(np.asarray(att.stderr) < 0.5 * np.asarray(msr.stderr))


def test_regression_stderr_is_infinite_until_the_fit_is_determined():
    att = estimate(jax.random.key(0), lookup_game(random_lookup_table(1, 6)), 6, "banzhaf", evaluations=7,
                   method="regression")
    assert np.all(np.isinf(np.asarray(att.stderr)))


def test_default_method_follows_the_budget_and_the_state():
    game = lookup_game(random_lookup_table(2, 6))
    key = jax.random.key(0)
    # 5 draws per player and more: regression; fewer: MSR (6 players, 7 = P + 1).
    assert estimate(key, game, 6, "banzhaf", evaluations=35).method == "regression"
    small = estimate(key, game, 6, "beta", d=0.3, evaluations=34)
    assert small.method == "msr"
    # Continuing a run keeps its method, whatever the budget of this call.
    assert estimate(key, game, 6, "beta", d=0.3, evaluations=500, state=small.state).method == "msr"
    paired = estimate(key, game, 6, "banzhaf", evaluations=21, method="paired")
    assert estimate(key, game, 6, "banzhaf", evaluations=500, state=paired.state).method == "paired"
    assert estimate(key, game, 6, "shapley", evaluations=500).method == "permutation"
    assert default_method("banzhaf", REGRESSION_MAX_PLAYERS + 1, 10**9) == "msr"


def test_antithetic_resume_stays_antithetic():
    """Continuing without method= keeps the state's method and its cost per draw (2P + 2)."""
    game = lookup_game(random_lookup_table(6, 5))
    key = jax.random.key(1)
    whole = estimate(key, game, 5, "shapley", evaluations=40 * 12, method="antithetic")
    first = estimate(key, game, 5, "shapley", evaluations=15 * 12, method="antithetic")
    resumed = estimate(key, game, 5, "shapley", evaluations=25 * 12, state=first.state)
    assert resumed.method == "antithetic" and resumed.num_draws == 40 and resumed.num_evaluations == 40 * 12
    np.testing.assert_allclose(resumed.values, whole.values, rtol=1e-5, atol=1e-6)


def test_a_state_of_another_run_is_refused():
    game = lookup_game(random_lookup_table(2, 6))
    key = jax.random.key(0)
    beta = estimate(key, game, 6, "beta", d=0.3, evaluations=50, method="msr")
    with pytest.raises(ValueError, match=r"continues msr estimation of beta \(d=0.3\)"):
        estimate(key, game, 6, "beta", d=0.6, evaluations=50, state=beta)
    with pytest.raises(ValueError, match="continues msr estimation"):
        estimate(key, game, 6, "banzhaf", evaluations=50, state=beta)
    with pytest.raises(ValueError, match="over 6 players"):
        estimate(key, lookup_game(random_lookup_table(2, 5)), 5, "beta", d=0.3, evaluations=50, state=beta)
    with pytest.raises(ValueError, match="asks for paired"):
        estimate(key, game, 6, "beta", d=0.3, evaluations=50, method="paired", state=beta)


def test_a_new_estimator_is_one_function_and_one_registry_line(monkeypatch):
    """A toy estimator (MSR with draws from the complement of MSR's, so a different run) plugs in by name."""

    def complement_msr(num_players, d):
        base = msr_beta(num_players, d)
        return base._replace(draw=lambda key, i: ~base.draw(key, i) if d == 0.5 else base.draw(key, i),
                             name="complement")

    monkeypatch.setitem(ESTIMATORS, "complement", EstimatorEntry(complement_msr, ("banzhaf",)))
    assert "complement" in methods_for("banzhaf") and "complement" not in methods_for("shapley")
    game = lookup_game(random_lookup_table(7, 6))
    truth = exact(game, 6, "banzhaf")
    key = jax.random.key(4)
    att = estimate(key, game, 6, "banzhaf", evaluations=4000, method="complement")
    assert att.method == "complement"
    assert np.all(np.abs(np.asarray(att.values) - truth) <= 5 * np.asarray(att.stderr))
    first = estimate(key, game, 6, "banzhaf", evaluations=1500, method="complement")
    resumed = estimate(key, game, 6, "banzhaf", evaluations=2500, state=first)
    np.testing.assert_allclose(resumed.values, att.values, rtol=1e-5, atol=1e-6)
    msr = estimate(key, game, 6, "banzhaf", evaluations=4000, method="msr")
    assert not np.allclose(msr.values, att.values)  # it really ran the toy's draws


def test_msr_player_never_drawn_is_unknown():
    """With two draws, a player in both (or neither) has no difference of means: NaN value, inf stderr."""
    game = additive_game(np.arange(30.0))
    att = estimate(jax.random.key(1), game, 30, "banzhaf", evaluations=2, method="msr")
    masks = np.asarray(jax.vmap(lambda i: make_estimator(30, "banzhaf", method="msr").draw(jax.random.key(1), i))(
        np.arange(2)))[:, 0, :]
    unseen = masks.all(axis=0) | (~masks).all(axis=0)
    assert unseen.any() and not unseen.all()
    np.testing.assert_array_equal(np.isnan(np.asarray(att.values)), unseen)
    assert np.all(np.isinf(np.asarray(att.stderr)[unseen]))
