"""Estimator-specific behaviour (what all of them share is in test_contracts.py): budgets, defaults,
errors, the regression estimator's exactness, MSR's unseen players, and a new estimator plugging in."""

import jax
import numpy as np
import pytest

from gtap_jax import estimate, exact, make_plan
from gtap_jax.games import additive_game, lookup_game, random_lookup_table
from gtap_jax.indices import (
    ESTIMATORS,
    REGRESSION_MAX_PLAYERS,
    EstimatorEntry,
    default_estimator,
    draw_size,
    estimators_for,
    make_estimator,
    msr_beta,
)
from gtap_jax.indices.focus import focused_samples


def _budget(draws, p, name):
    return draws * draw_size(name, p)


@pytest.mark.parametrize("name", ["permutation", "antithetic"])
def test_shapley_samples_are_efficient(name):
    """Every permutation sample sums to v(N) - v(empty), so the estimate does too."""
    table = random_lookup_table(2, 7)
    att = estimate(jax.random.key(3), lookup_game(table), 7, "shapley", evaluations=_budget(50, 7, name),
                   estimator=name)
    assert float(np.sum(att.values)) == pytest.approx(table[-1] - table[0], abs=1e-4)


def test_evaluation_counts():
    game = additive_game(np.ones(5))
    key = jax.random.key(0)
    # A budget buys whole draws: 65 evaluations are 10 permutations of 5 players (6 each), 5 antithetic pairs.
    assert estimate(key, game, 5, "shapley", evaluations=65, estimator="permutation").num_evaluations == 60
    assert estimate(key, game, 5, "shapley", evaluations=65, estimator="antithetic").num_evaluations == 60
    assert estimate(key, game, 5, "banzhaf", evaluations=65, estimator="paired").num_evaluations == 60
    assert estimate(key, game, 5, "banzhaf", evaluations=65, estimator="msr").num_evaluations == 65


def test_bad_input():
    game = additive_game(np.ones(3))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="estimator 'msr' does not serve index 'shapley'"):
        estimate(key, game, 3, "shapley", evaluations=10, estimator="msr")
    with pytest.raises(ValueError, match=r"unknown estimator 'svarm'; expected one of \['antithetic'"):
        estimate(key, game, 3, "shapley", evaluations=10, estimator="svarm")
    with pytest.raises(ValueError, match=r"unknown index 'owen'; expected one of \['banzhaf', 'beta', 'shapley'\]"):
        estimate(key, game, 3, "owen", evaluations=10)
    with pytest.raises(ValueError, match="strictly between"):
        estimate(key, game, 3, "beta", evaluations=10, d=0.0)
    with pytest.raises(ValueError, match="at least one"):
        estimate(key, game, 3, "banzhaf", evaluations=-1)
    with pytest.raises(ValueError, match=r"at least one permutation draw \(4 coalitions\)"):
        estimate(key, game, 3, "shapley", evaluations=3)
    # Renamed keywords say what replaced them.
    with pytest.raises(TypeError, match=r"estimate\(\) takes estimator= instead of method="):
        estimate(key, game, 3, "shapley", evaluations=8, method="permutation")
    with pytest.raises(TypeError, match=r"takes plan=make_plan\(chunk_size=...\) instead of chunk_size="):
        estimate(key, game, 3, "shapley", evaluations=8, chunk_size=4)


@pytest.mark.parametrize("d", [0.5, 0.3, 0.1])
def test_regression_is_exact_on_an_additive_game(d):
    """A linear game has no residual: the fit recovers the weights from any P + 2 distinct draws."""
    w = np.linspace(-2, 3, 8)
    att = estimate(jax.random.key(0), additive_game(w), 8, "beta", evaluations=200, d=d, estimator="regression")
    np.testing.assert_allclose(np.asarray(att.values), w, atol=1e-4)
    msr = estimate(jax.random.key(0), additive_game(w), 8, "beta", evaluations=200, d=d, estimator="msr")
    assert np.all(np.asarray(msr.stderr) > 0.1)  # the difference of means carries the others' noise
    assert np.all(np.asarray(att.stderr) < 1e-3)  # no residual: the error is float32 rounding, at any d


def test_regression_stderr_is_infinite_until_the_fit_is_determined():
    att = estimate(jax.random.key(0), lookup_game(random_lookup_table(1, 6)), 6, "banzhaf", evaluations=7,
                   estimator="regression")
    assert np.all(np.isinf(np.asarray(att.stderr)))


def test_default_estimator_follows_the_budget_and_the_state():
    game = lookup_game(random_lookup_table(2, 6))
    key = jax.random.key(0)
    # 5 draws per player and more: regression (on complementary pairs for Banzhaf); fewer: MSR (6 players, 7 = P + 1).
    assert estimate(key, game, 6, "banzhaf", evaluations=35).estimator == "kernel_banzhaf"
    assert estimate(key, game, 6, "beta", d=0.3, evaluations=35).estimator == "regression"
    small = estimate(key, game, 6, "beta", d=0.3, evaluations=34)
    assert small.estimator == "msr"
    # Continuing a run keeps its estimator, whatever the budget of this call.
    assert estimate(key, game, 6, "beta", d=0.3, evaluations=500, state=small.state).estimator == "msr"
    paired = estimate(key, game, 6, "banzhaf", evaluations=21, estimator="paired")
    assert estimate(key, game, 6, "banzhaf", evaluations=500, state=paired.state).estimator == "paired"
    assert estimate(key, game, 6, "shapley", evaluations=500).estimator == "permutation"
    assert default_estimator("banzhaf", REGRESSION_MAX_PLAYERS + 1, 10**9) == "msr"


def test_a_state_of_another_run_is_refused():
    game = lookup_game(random_lookup_table(2, 6))
    key = jax.random.key(0)
    beta = estimate(key, game, 6, "beta", d=0.3, evaluations=50, estimator="msr")
    with pytest.raises(ValueError, match=r"continues msr estimation of beta \(d=0.3\)"):
        estimate(key, game, 6, "beta", d=0.6, evaluations=50, state=beta)
    with pytest.raises(ValueError, match="continues msr estimation"):
        estimate(key, game, 6, "banzhaf", evaluations=50, state=beta)
    with pytest.raises(ValueError, match="over 6 players"):
        estimate(key, lookup_game(random_lookup_table(2, 5)), 5, "beta", d=0.3, evaluations=50, state=beta)
    with pytest.raises(ValueError, match="asks for paired"):
        estimate(key, game, 6, "beta", d=0.3, evaluations=50, estimator="paired", state=beta)


def test_a_new_estimator_is_one_function_and_one_registry_line(monkeypatch):
    """A toy estimator (MSR with draws from the complement of MSR's, so a different run) plugs in by name."""

    def complement_msr(num_players, d):
        base = msr_beta(num_players, d)
        return base._replace(draw=lambda key, i: ~base.draw(key, i) if d == 0.5 else base.draw(key, i),
                             name="complement")

    monkeypatch.setitem(ESTIMATORS, "complement", EstimatorEntry(complement_msr, ("banzhaf",), lambda p: 1))
    assert "complement" in estimators_for("banzhaf") and "complement" not in estimators_for("shapley")
    game = lookup_game(random_lookup_table(7, 6))
    truth = exact(game, 6, "banzhaf")
    key = jax.random.key(4)
    att = estimate(key, game, 6, "banzhaf", evaluations=4000, estimator="complement")
    assert att.estimator == "complement"
    assert np.all(np.abs(np.asarray(att.values) - truth) <= 5 * np.asarray(att.stderr))
    first = estimate(key, game, 6, "banzhaf", evaluations=1500, estimator="complement")
    resumed = estimate(key, game, 6, "banzhaf", evaluations=2500, state=first)
    np.testing.assert_allclose(resumed.values, att.values, rtol=1e-5, atol=1e-6)
    msr = estimate(key, game, 6, "banzhaf", evaluations=4000, estimator="msr")
    assert not np.allclose(msr.values, att.values)  # it really ran the toy's draws


def test_msr_player_never_drawn_is_unknown():
    """With two draws, a player in both (or neither) has no difference of means: NaN value, inf stderr."""
    game = additive_game(np.arange(30.0))
    att = estimate(jax.random.key(1), game, 30, "banzhaf", evaluations=2, estimator="msr")
    masks = np.asarray(jax.vmap(lambda i: make_estimator(30, "banzhaf", estimator="msr").draw(jax.random.key(1), i))(
        np.arange(2)))[:, 0, :]
    unseen = masks.all(axis=0) | (~masks).all(axis=0)
    assert unseen.any() and not unseen.all()
    np.testing.assert_array_equal(np.isnan(np.asarray(att.values)), unseen)
    assert np.all(np.isinf(np.asarray(att.stderr)[unseen]))


def test_complementary_draws_cancel_every_pairwise_term():
    """The pairing trick: on a game of singles and pairs only, a complementary draw's sample is the same for every
    T (a_i + sum_k b_ik / 2), so its stderr is 0 and its value exact; paired stars (one T) vary. So for the
    regression on complementary pairs (Kernel Banzhaf): v(S) - v(N \\ S) is linear in membership there, the fit
    has no residual; the fit on single coalitions has one."""
    rng = np.random.default_rng(0)
    p = 9
    a, b = rng.normal(size=p), np.triu(rng.normal(size=(p, p)), 1)
    members = ((np.arange(1 << p)[:, None] >> np.arange(p)) & 1).astype(np.float64)
    game = lookup_game((members @ a + np.einsum("ci,ij,cj->c", members, b, members)).astype(np.float32))
    truth = exact(game, p, "banzhaf")
    both = {name: estimate(jax.random.key(1), game, p, "banzhaf", evaluations=40 * (2 * p + 2), estimator=name)
            for name in ("complementary", "paired")}
    np.testing.assert_allclose(both["complementary"].values, truth, atol=1e-5)
    assert np.max(both["complementary"].stderr) < 1e-5 < np.min(both["paired"].stderr)
    with pytest.raises(ValueError, match="'complementary' does not serve index 'beta'"):  # its pair is not beta_d's
        make_estimator(p, "beta", d=0.8, estimator="complementary")
    fits = {name: estimate(jax.random.key(1), game, p, "banzhaf", evaluations=400, estimator=name)
            for name in ("kernel_banzhaf", "regression")}
    np.testing.assert_allclose(fits["kernel_banzhaf"].values, truth, atol=1e-4)
    assert np.max(fits["kernel_banzhaf"].stderr) < 1e-3 < 0.05 < np.min(fits["regression"].stderr)
    with pytest.raises(ValueError, match="'kernel_banzhaf' does not serve index 'beta'"):
        make_estimator(p, "beta", d=0.3, estimator="kernel_banzhaf")
    # Focused samples pair each coalition with its complement wherever the complement has the draw's law (Banzhaf;
    # Shapley, whose d is symmetric): exact on this game too. Single draws (beta_0.3's, or one Owen draw) vary.
    players = np.array([0, 4, 8])
    for kind, d, index, draws in (("flip", 0.5, "banzhaf", 2), ("owen", None, "shapley", 8),
                                  ("owen", None, "shapley", 2), ("flip", 0.3, "beta", 1), ("owen", None, "shapley", 1)):
        samples = focused_samples(jax.random.key(2), game, p, kind, d, players, 64, make_plan(), draws)
        spread = samples.std(axis=0)
        if draws == 1:
            assert spread.min() > 0.05
        else:
            assert spread.max() < 1e-5
            np.testing.assert_allclose(samples.mean(axis=0), exact(game, p, index)[players], atol=1e-5)
