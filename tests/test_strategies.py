import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gtap_jax import Scores, Settle, by_estimate, by_exact, exact, iterated_building, iterated_pruning, restrict, top_n
from gtap_jax.games import additive_game, lookup_game, random_lookup_table

STRATS = [top_n, iterated_pruning, iterated_building]


@pytest.mark.parametrize("strategy", STRATS)
@pytest.mark.parametrize("r", [1, 4, 9, 12])
def test_additive_game_keeps_top_r_exact(strategy, r):
    w = np.random.default_rng(r).permutation(np.linspace(-3, 5, 12))
    res = strategy(jax.random.key(0), additive_game(w), 12, r, by_exact("shapley"))
    want = np.zeros(12, bool)
    want[np.argsort(-w)[:r]] = True
    np.testing.assert_array_equal(res.mask, want)
    assert res.mask.sum() == r


@pytest.mark.parametrize("strategy", STRATS)
def test_additive_game_keeps_top_r_noisy_estimator(strategy):
    # Weights 1 apart; MSR's stderr here is ~0.15, so neighbours are ~6 stderr apart.
    w = np.random.default_rng(0).permutation(np.arange(12.0))
    attribute = by_estimate("banzhaf", evaluations=20000, estimator="msr")
    res = strategy(jax.random.key(1), additive_game(w), 12, 5, attribute)
    np.testing.assert_array_equal(np.flatnonzero(res.mask), np.sort(np.argsort(-w)[:5]))
    assert res.num_evaluations == 20000 * len(res.history)


def test_pruning_silences_removed_neurons():
    """Player 3 pays only when player 0 is absent: re-estimating after 0 is pruned finds it.

    v = w.S + 4 [3 in S][0 not in S], w = (1, 2.2, 2.1, 0). Shapley: (-1, 2.2, 2.1, 2),
    so top_n keeps {1, 2} (value 4.3). Iterated pruning drops 0 first; then 3 is worth
    4 and {1, 3} (value 6.2, optimal) survives.
    """
    w = jnp.array([1.0, 2.2, 2.1, 0.0])

    def game(s):
        return jnp.sum(jnp.where(s, w, 0.0)) + 4.0 * (s[3] & ~s[0])

    attr = by_exact("shapley")
    assert np.flatnonzero(top_n(jax.random.key(0), game, 4, 2, attr).mask).tolist() == [1, 2]
    res = iterated_pruning(jax.random.key(0), game, 4, 2, attr, step=1)
    assert np.flatnonzero(res.mask).tolist() == [1, 3]
    assert res.history[1].players.tolist() == [1, 2, 3]
    np.testing.assert_allclose(res.history[1].scores.values, [2.2, 2.1, 4.0], atol=1e-5)


def test_building_keeps_chosen_neurons_present():
    """Player 3 pays only next to player 0: once 0 is kept, building adds 3.

    v = w.S + 4 [0 in S][3 in S], w = (2, 2.6, 2.5, 0). Shapley: (4, 2.6, 2.5, 2), so
    top_n keeps {0, 1} (value 4.6); iterated building adds 0, then 3 (worth 4 with 0
    present): {0, 3}, value 6, the optimum.
    """
    w = jnp.array([2.0, 2.6, 2.5, 0.0])

    def game(s):
        return jnp.sum(jnp.where(s, w, 0.0)) + 4.0 * (s[0] & s[3])

    attr = by_exact("shapley")
    assert np.flatnonzero(top_n(jax.random.key(0), game, 4, 2, attr).mask).tolist() == [0, 1]
    res = iterated_building(jax.random.key(0), game, 4, 2, attr, step=1)
    assert np.flatnonzero(res.mask).tolist() == [0, 3]
    np.testing.assert_allclose(res.history[1].scores.values, [2.6, 2.5, 4.0], atol=1e-5)


def test_schedules():
    game = additive_game(np.arange(16.0))
    attr = by_exact("banzhaf")
    res = iterated_pruning(jax.random.key(0), game, 16, 3, attr, step=0.5)
    assert [int(r.mask.sum()) for r in res.history] == [8, 4, 3]
    res = iterated_building(jax.random.key(0), game, 16, 7, attr, step=2)
    assert [int(r.mask.sum()) for r in res.history] == [2, 4, 6, 7]
    assert top_n(jax.random.key(0), game, 16, 16, attr).mask.all()


def test_a_grid_of_sizes_gives_a_round_ending_at_each():
    w = np.random.default_rng(5).permutation(np.arange(16.0))
    game, attr = additive_game(w), by_exact("banzhaf")
    res = iterated_pruning(jax.random.key(0), game, 16, (10, 5, 2), attr, step=0.5)
    assert [int(r.mask.sum()) for r in res.history] == [10, 5, 3, 2]
    res = iterated_building(jax.random.key(0), game, 16, (3, 7, 12), attr, step=0.5)
    assert [int(r.mask.sum()) for r in res.history] == [3, 7, 9, 10, 11, 12]
    mask, spent = res.mask_of_size(7)
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(np.argsort(-w)[:7]))
    assert spent == res.history[0].scores.num_evaluations + res.history[1].scores.num_evaluations
    with pytest.raises(KeyError):
        res.mask_of_size(4)


@pytest.mark.parametrize("strategy", STRATS)
def test_every_strategy_serves_every_size_of_a_grid(strategy):
    """One call shape: any strategy, any grid (the whole game included), a mask of each size with its cost."""
    w = np.random.default_rng(2).permutation(np.arange(12.0))
    res = strategy(jax.random.key(0), additive_game(w), 12, [12, 6, 3], by_exact("banzhaf"), step=0.5)
    spent = []
    for size in (12, 6, 3):
        mask, cost = res.mask_of_size(size)
        np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(np.argsort(-w)[:size]))
        spent.append(cost)
    assert spent == sorted(spent) if strategy is not iterated_building else spent == sorted(spent, reverse=True)
    assert res.num_evaluations == max(spent) and res.num_evaluations > 0


def test_top_n_records_a_round_per_size():
    res = top_n(jax.random.key(0), additive_game(np.arange(8.0)), 8, [2, 6, 4], by_exact("shapley"))
    assert [int(r.mask.sum()) for r in res.history] == [6, 4, 2]
    assert [r.scores.num_evaluations for r in res.history] == [256, 0, 0]  # one estimate serves every size
    assert np.flatnonzero(res.mask).tolist() == [6, 7]


def test_restrict():
    w = jnp.arange(1.0, 6.0)
    sub, players = restrict(additive_game(w), np.array([1, 0, 0, 0, 0], bool), np.array([0, 0, 1, 0, 1], bool))
    assert players.tolist() == [2, 4]
    assert float(sub(jnp.array([True, False]))) == 1.0 + 3.0
    assert float(sub(jnp.array([True, True]))) == 1.0 + 3.0 + 5.0
    with pytest.raises(ValueError, match="both"):
        restrict(additive_game(w), np.ones(5, bool), np.ones(5, bool))


@pytest.mark.parametrize("strategy", STRATS)
def test_bad_target(strategy):
    with pytest.raises(ValueError, match="target size"):
        strategy(jax.random.key(0), additive_game(np.ones(4)), 4, 5, by_exact("shapley"))
    with pytest.raises(ValueError, match="target size"):
        strategy(jax.random.key(0), additive_game(np.ones(4)), 4, 0, by_exact("shapley"))


def test_bad_step():
    with pytest.raises(ValueError, match="step"):
        iterated_pruning(jax.random.key(0), additive_game(np.ones(4)), 4, 2, by_exact("shapley"), step=1.5)


def test_settled_players_by_hand():
    from gtap_jax.strategies import settled_players

    values, stderr = np.array([5.0, 4.0, 1.0, 0.9]), np.array([0.1, 0.1, 0.1, 0.1])
    # cutoff 2: midpoint 2.5; every interval (z = 2) is on its side
    assert settled_players(values, stderr, (2,), 2.0, 0.0).all()
    # cutoff 3: midpoint 0.95; players 2 and 3 straddle it, unless 0.2 of slack (epsilon) is allowed
    np.testing.assert_array_equal(settled_players(values, stderr, (3,), 2.0, 0.0), [True, True, False, False])
    assert settled_players(values, stderr, (3,), 2.0, 0.6).all()
    assert not settled_players(values, np.array([0.1, np.inf, 0.1, 0.1]), (2,), 2.0, 0.0)[1]


@pytest.mark.parametrize("index,estimator,focus", [
    ("banzhaf", "msr", True), ("banzhaf", "regression", True), ("banzhaf", "regression", False),
    ("shapley", "permutation", True),
])
def test_a_settled_decision_is_the_exact_one_up_to_epsilon(index, estimator, focus):
    """Over many keys the settled top-r set is epsilon-optimal at least 1 - delta of the time.

    Players 3 and 4 are 0.02 apart in the additive part (a near-tie at r = 4); a random lookup part
    makes every estimate noisy. Epsilon covers the near-tie, so every decision settles.
    """
    w = np.array([8.0, 7.0, 6.0, 5.02, 5.0, 3.0, 2.0, 1.0])
    noise = random_lookup_table(4, 8) * 0.5
    game = lambda s: additive_game(w)(s) + lookup_game(noise)(s)  # noqa: E731
    truth = exact(game, 8, index)
    attribute = by_estimate(index, estimator=estimator, settle=Settle(0.1, 0.3, 1 << 18, focus))
    wrong, unsettled = 0, 0
    for seed in range(20):
        res = top_n(jax.random.key(seed), game, 8, 4, attribute)
        kept = res.mask
        wrong += truth[kept].min() < truth[~kept].max() - 0.3
        unsettled += not res.history[0].scores.settled
    assert unsettled == 0 and wrong <= 2  # delta = 0.1 of 20 keys; the union bound makes it rarer still


def test_an_exact_tie_stops_at_the_cap_unsettled():
    """Players 1 and 2 are worth exactly the same: with epsilon = 0 noisy estimates cannot separate them.

    Focused one-flip draws measure an additive game's values exactly (every sample equal), and a
    tie known exactly is settled: either choice is optimal.
    """
    w = np.array([3.0, 2.0, 2.0, 1.0])
    attribute = by_estimate("banzhaf", estimator="msr", settle=Settle(max_evaluations=8192, focus=False))
    res = top_n(jax.random.key(0), additive_game(w), 4, 2, attribute)
    rnd = res.history[0].scores
    assert not rnd.settled and rnd.num_evaluations == 8192 and rnd.settled_share == 0.5  # players 1, 2 tie
    focused = top_n(jax.random.key(0), additive_game(w), 4, 2, by_estimate("banzhaf", estimator="msr",
                                                                           settle=Settle(max_evaluations=8192)))
    focused = focused.history[0].scores
    assert focused.settled and focused.num_evaluations < 8192
    # The decision used the exact focused samples; the values are the uniform estimate's, the order the decision's.
    assert focused.ranking[0] == 0 and set(focused.ranking[1:3].tolist()) == {1, 2}
    assert np.all(np.abs(focused.values - w) <= 5 * focused.stderr)


def test_a_round_ends_once_its_stop_share_is_settled():
    """The exact tie of the test above never settles its two players: with half the players settled as enough,
    the round ends at its first check with that half settled, long before the cap."""
    w = np.array([3.0, 2.0, 2.0, 1.0])
    settle = Settle(max_evaluations=8192, focus=False, stop_share=0.5)
    rnd = top_n(jax.random.key(0), additive_game(w), 4, 2, by_estimate("banzhaf", estimator="msr", settle=settle))
    rnd = rnd.history[0].scores
    assert not rnd.settled and rnd.settled_share == 0.5 and rnd.num_evaluations <= 2048
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="stop_share"):
            by_estimate("banzhaf", settle=settle._replace(stop_share=share))


def test_iterated_rounds_record_their_settlement():
    w = np.random.default_rng(3).permutation(np.arange(10.0))
    res = iterated_pruning(jax.random.key(0), additive_game(w), 10, 3, by_estimate("banzhaf", estimator="msr",
                           settle=Settle(delta=0.05)), step=0.5)
    assert all(r.scores.settled and r.scores.settled_share == 1.0 for r in res.history)
    np.testing.assert_array_equal(np.flatnonzero(res.mask), np.sort(np.argsort(-w)[:3]))
    fixed = iterated_pruning(jax.random.key(0), additive_game(w), 10, 3, by_estimate("banzhaf", evaluations=64,
                             estimator="msr"), step=0.5)
    assert all(r.scores.num_evaluations == 64 for r in fixed.history) and fixed.history[0].scores.settled_share < 1.0


def test_an_attribute_function_returns_scores():
    """One result type: an Attribution or a bare array from an attribute function is a clear TypeError."""
    from gtap_jax import estimate

    game = additive_game(np.arange(4.0))
    with pytest.raises(TypeError, match="returns gtap_jax.strategies.Scores"):
        top_n(jax.random.key(0), game, 4, 2, lambda key, fn, p, cutoffs=(): exact(fn, p, "shapley"))
    with pytest.raises(TypeError, match="got Attribution"):
        top_n(jax.random.key(0), game, 4, 2,
              lambda key, fn, p, cutoffs=(): estimate(key, fn, p, "banzhaf", evaluations=64))
    scores = top_n(jax.random.key(0), game, 4, 2, lambda key, fn, p, cutoffs=(): Scores(np.arange(p), np.zeros(p), 0))
    assert np.flatnonzero(scores.mask).tolist() == [2, 3]
    with pytest.raises(TypeError, match=r"by_estimate\(\) takes settle=Settle\(delta=...\) instead of delta="):
        by_estimate("banzhaf", delta=0.1)


def test_combine_weights_by_inverse_variance():
    from gtap_jax.indices.focus import FocusMoments, combine

    focus = FocusMoments(np.array([0.0, 100.0, 100.0]), np.array([0.0, 2.0, 5.0]), np.array([0.0, 99.0, 0.0]))
    values, stderr = combine(np.array([1.0, 1.0, 1.0]), np.array([0.1, 0.1, 0.1]), focus)
    # player 0: no focused samples; player 1: focused variance 1/100 = 0.01, as the uniform one: the mean;
    # player 2: equal samples borrow the median spread of the others (0.01) rather than claim zero error
    np.testing.assert_allclose(values, [1.0, 1.5, 3.0])
    np.testing.assert_allclose(stderr, [0.1, np.sqrt(0.005), np.sqrt(0.005)])


@pytest.mark.parametrize("focus", [True, False])
def test_a_settling_round_resumed_from_a_check_ends_as_an_uninterrupted_one(focus, tmp_path):
    w = np.array([8.0, 7.0, 6.0, 5.02, 5.0, 3.0, 2.0, 1.0])
    noise = random_lookup_table(4, 8) * 0.5
    game = lambda s: additive_game(w)(s) + lookup_game(noise)(s)  # noqa: E731
    attribute = by_estimate("banzhaf", estimator="msr", settle=Settle(0.1, 0.05, 1 << 16, focus))
    states = []
    whole = attribute(jax.random.key(3), game, 8, (4,), on_check=states.append)
    assert len(states) >= 3
    resumed = attribute(jax.random.key(3), game, 8, (4,), resume=states[1])
    np.testing.assert_array_equal(resumed.values, whole.values)
    assert (resumed.num_evaluations, resumed.settled, resumed.settled_share) == \
        (whole.num_evaluations, whole.settled, whole.settled_share)
    if focus:
        assert states[-1].focus_evaluations > 0  # the near-tie was settled with focused draws
    # and from the state as the experiment saves it to disk (the focused samples' size too)
    from gtap_jax.experiment.progress import _load_settle, _save_settle
    from gtap_jax.indices import new_state

    k = next((i for i, s in enumerate(states[:-1]) if s.focus_evaluations), 1)
    _save_settle(tmp_path / "round.npz", states[k], {"round": 1})
    loaded = _load_settle(tmp_path / "round.npz", new_state(8, "banzhaf", None, "msr"), {"round": 1})
    assert loaded.focus.draws == states[k].focus.draws == (2 if focus else 0)
    again = attribute(jax.random.key(3), game, 8, (4,), resume=loaded)
    np.testing.assert_array_equal(again.values, whole.values)
    assert (again.num_evaluations, again.settled_share) == (whole.num_evaluations, whole.settled_share)


def test_epsilon_share_scales_with_the_game():
    from gtap_jax import engine
    from gtap_jax.strategies import share_epsilon

    w = np.array([3.0, 2.0, 1.0, 2.0])
    assert share_epsilon(additive_game(w), 4, 0.1, engine.make_plan()) == pytest.approx(0.1 * 8.0 / 4)
    assert share_epsilon(additive_game(10 * w), 4, 0.1, engine.make_plan()) == pytest.approx(0.1 * 80.0 / 4)


def test_settled_mode_with_focused_draws_returns_unbiased_values():
    """Over 150 keys the values a focused settling round returns are centred on the exact index: every player's
    mean error within 3.5 of its standard errors (the t statistic; 12 players reach 3.5 by chance with
    probability 0.006). Values mixed with the focused samples reached |t| = 8.6 on this game."""
    w = np.array([3, 2.6, 2.2, 1.80, 1.79, 1.2, 1.0, 0.8, 0.6, 0.4, 0.2, 0])
    members = (np.arange(1 << 12)[:, None] >> np.arange(12)) & 1
    game = lookup_game((members @ w + 0.3 * np.sin(3.0 * members.sum(1))).astype(np.float32))
    truth = exact(game, 12, "banzhaf")
    attribute = by_estimate("banzhaf", estimator="msr", settle=Settle(0.05, 0.05, 1 << 14))
    runs = [attribute(jax.random.key(k), game, 12, (4,)) for k in range(150)]
    assert np.mean([r.settled for r in runs]) > 0.9 and all(r.ranking is not None for r in runs)  # focused
    errors = np.stack([r.values for r in runs]) - truth
    t = errors.mean(0) / (errors.std(0) / np.sqrt(len(runs)))
    assert np.all(np.abs(t) <= 3.5), t
    for r in runs:  # the decision's order keeps the exact top 4 (the near tie is within epsilon)
        assert set(r.ranking[:3].tolist()) == {0, 1, 2}


def test_the_checks_of_a_settled_round_spend_at_most_delta():
    """The deltas of a round's checks sum to at most delta however many checks it takes, most on the late ones."""
    from gtap_jax.strategies.settle import check_share

    for planned in (1, 2, 7, 12):
        shares = [1.0 / check_share(k, planned) for k in range(1, 10_000)]
        assert sum(shares) <= 1.0
        assert shares[planned - 1] > 0.45 and shares[planned - 1] == max(shares)  # the last planned check


def _by_size(shape, p: int = 12):
    """An additive game plus ``shape`` of the coalition's size (centred): every player's marginal at position k of an
    order is its weight plus the same function of k."""
    w = np.linspace(0.1, 1.2, p)

    def value(mask):
        return jnp.dot(mask.astype(jnp.float32), w) + shape(jnp.sum(mask).astype(jnp.float32) - p / 2)

    return value


def test_the_shapley_pilot_takes_antithetic_orders_where_early_and_late_marginals_oppose():
    """-(size)^2: a marginal at position k is -(2k + 1 - P), its reverse's the negative, so an antithetic pair's
    average is the weight exactly (variance 0). size^3 / 3: the marginal at k equals the reverse's, so a pair costs
    twice a permutation's values for the same variance (ratio 1/2)."""
    from gtap_jax.indices.pilot import shapley_pilot

    opposed = shapley_pilot(jax.random.key(0), _by_size(lambda c: -(c**2)), 12)
    same = shapley_pilot(jax.random.key(0), _by_size(lambda c: c**3 / 3), 12)
    assert opposed.estimator == "antithetic" and opposed.ratio > 1e3
    assert same.estimator == "permutation" and same.ratio == pytest.approx(0.5, rel=1e-3)
    assert same.num_evaluations == 3 * 13 * max(4, -(-1024 // 13))  # the same orders alone and with their reverses


def test_settled_shapley_rounds_take_the_pilots_estimator_and_count_its_values():
    from gtap_jax.indices.pilot import pilot_key, shapley_pilot

    game, options = _by_size(lambda c: -(c**2)), Settle(0.1, 0.3, 1 << 16)
    piloted = iterated_pruning(jax.random.key(1), game, 12, 4, by_estimate("shapley", settle=options), step=0.5)
    chosen = iterated_pruning(jax.random.key(1), game, 12, 4, by_estimate("shapley", estimator="antithetic",
                                                                          settle=options), step=0.5)
    pilot = shapley_pilot(pilot_key(jax.random.fold_in(jax.random.key(1), 0)), game, 12)
    assert [r.scores.num_evaluations for r in piloted.history] == [
        r.scores.num_evaluations + (pilot.num_evaluations if i == 0 else 0) for i, r in enumerate(chosen.history)]
    np.testing.assert_array_equal(piloted.mask, chosen.mask)
    off = iterated_pruning(jax.random.key(1), game, 12, 4, by_estimate("shapley", settle=options._replace(
        pilot=False)), step=0.5)
    permutations = iterated_pruning(jax.random.key(1), game, 12, 4, by_estimate("shapley", estimator="permutation",
                                                                                settle=options), step=0.5)
    for a, b in zip(off.history, permutations.history, strict=True):
        assert a.scores.num_evaluations == b.scores.num_evaluations
        np.testing.assert_array_equal(a.scores.values, b.scores.values)
    # where the pair cancels the size term, the piloted round settles at once; permutations only through the focused
    # samples' complementary pairs (which cancel it too), near the cap
    first, slow = piloted.history[0].scores, off.history[0].scores
    assert first.settled and first.num_evaluations * 10 < slow.num_evaluations


def test_cost_rounds_drop_the_least_value_per_unit_of_cost():
    """An additive game with costs: rounds by value per unit of cost keep the top ratios, rounds by value the top
    values, and the two differ here; each cost round records its weights, and the priority puts the kept set first.

    Player values w and costs c: by value the top 3 are {0, 1, 2}; by w / c they are {3, 4, 5} (cheap, and worth
    less each). The costs depend on the mask (here, a player costs more once fewer of the others are left), as a
    network's parameters per unit do.
    """
    w = np.array([6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 0.5, -1.0])
    c = np.array([4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    cost = lambda mask: c * (1.0 + 0.1 * (mask.size - mask.sum()))  # noqa: E731 (same order at every mask)
    for attribute in (by_exact("shapley"), by_estimate("banzhaf", settle=Settle(0.05, 0.0, 1 << 16))):
        for strategy in (iterated_pruning, iterated_building):
            res = strategy(jax.random.key(0), additive_game(w), 8, 3, attribute, step=1, cost=cost)
            assert np.flatnonzero(res.mask).tolist() == [3, 4, 5], (strategy.__name__, attribute)
            rounds = [r for r in res.history if r.players.size]
            assert all(r.weights is not None and r.weights.shape == r.players.shape for r in rounds)
            assert all(r.scores.settled for r in rounds)
            assert set(np.argsort(-res.priority())[:3].tolist()) == {3, 4, 5}
        plain = iterated_pruning(jax.random.key(0), additive_game(w), 8, 3, attribute, step=1)
        assert np.flatnonzero(plain.mask).tolist() == [0, 1, 2] and plain.history[0].weights is None


def test_a_cost_round_settles_on_the_ratio_and_reports_the_values():
    """The decision of a settled round given weights ranks value per weight: the values it reports stay the
    estimate's (within its error bars of the true values), the ranking is the ratios'; a cost that is not
    positive is an error, and so is an attribute function that ignores the weights."""
    w = np.array([4.0, 3.0, 2.0, 1.0])
    weights = np.array([8.0, 1.0, 1.0, 1.0])  # ratios 0.5, 3, 2, 1: player 0 drops first
    attribute = by_estimate("banzhaf", estimator="msr", settle=Settle(0.05, 0.0, 1 << 16, False))
    out = attribute(jax.random.key(0), additive_game(w), 4, (3,), weights=weights)
    assert out.settled and out.ranking.tolist() == [1, 2, 3, 0]
    assert np.all(np.abs(out.values - w) <= 5 * out.stderr)
    with pytest.raises(ValueError, match="finite positive cost"):
        iterated_pruning(jax.random.key(0), additive_game(w), 4, 2, by_exact("shapley"), cost=lambda m: m * 0.0)
    ignores = lambda key, fn, p, cutoffs=(), weights=None: Scores(np.asarray(w), np.zeros(4), 1)  # noqa: E731
    with pytest.raises(TypeError, match="ranking"):
        iterated_pruning(jax.random.key(0), additive_game(w), 4, 2, ignores, cost=lambda m: np.ones(4))
