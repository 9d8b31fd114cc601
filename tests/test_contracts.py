"""Contract tests over every registry entry: a newly registered estimator, strategy, baseline or data set is
tested here the moment it is registered (the models' contract is test_network.py, over ``MODELS``).

* ``ESTIMATORS``: for every index an estimator serves (beta_d at d = 0.25 and 0.8), unbiased within
  5 standard errors of exact enumeration on four small games, its standard errors calibrated over
  150 keys (E[z^2] = 1) on a random and a heteroskedastic game and shrinking like 1/sqrt(n), its draw
  size as registered, its results independent of chunk size and mesh, a resumed run equal to an
  uninterrupted one, and its kind of focused draw unbiased for the same index.
* ``STRATEGIES``: every size of a grid kept exactly, the top players of an additive game found.
* ``BASELINES``: every size kept, split over the layers in proportion (``allocate``), on a built-in,
  a Linen and an NNX network.
* ``DATASETS``: a data set either loads and passes ``check_dataset``, or says how to provide it.
"""

import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gtap_jax import Settle, adapt, by_estimate, by_exact, estimate, exact, make_plan
from gtap_jax.baselines import BASELINES, BaselineInputs
from gtap_jax.data import DATASETS, DataUnavailableError, check_dataset
from gtap_jax.games import additive_game, lookup_game, random_lookup_table, unanimity_game, weighted_majority_game
from gtap_jax.indices import ESTIMATORS, FOCUS_KINDS, INDICES, draw_size, make_estimator
from gtap_jax.indices.focus import FocusMoments, focused_samples, sample_sizes
from gtap_jax.layout import allocate
from gtap_jax.models import MLP
from gtap_jax.network import init_params
from gtap_jax.strategies import STRATEGIES


def _d_values(index):
    spec = INDICES[index]
    return [None] if not spec.takes_d or spec.fixed_d is not None else [0.25, 0.8]


ESTIMATOR_CASES = [(name, index, d) for name, entry in ESTIMATORS.items() for index in entry.indices
                   for d in _d_values(index)]
IDS = [f"{n}-{i}" + ("" if d is None else f"-{d}") for n, i, d in ESTIMATOR_CASES]
GAMES = {
    "unanimity": lambda: unanimity_game(8, [0, 3, 5]),
    "majority": lambda: weighted_majority_game(np.array([5, 4, 3, 3, 2, 1, 1, 0]), 10),
    "lookup": lambda: lookup_game(random_lookup_table(11, 8)),
    "additive": lambda: additive_game(np.linspace(-2, 3, 8)),
}


def _budget(draws, p, name):
    """Evaluations that buy ``draws`` draws: estimators are compared at equal draws."""
    return draws * draw_size(name, p)


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_is_unbiased_on_exact_games(name, index, d):
    for game_name, make in GAMES.items():
        game = make()
        truth = exact(game, 8, index, d=d)
        att = estimate(jax.random.key(42), game, 8, index, evaluations=_budget(3000, 8, name), d=d, estimator=name)
        values, se = np.asarray(att.values), np.asarray(att.stderr)
        assert att.num_draws == 3000 and att.num_evaluations == _budget(3000, 8, name) and att.estimator == name
        # 5 standard errors per player (plus float32 rounding) over ~400 comparisons in all.
        assert np.all(np.abs(values - truth) <= 5 * se + 1e-4), (game_name, values, truth, se)
        assert np.all(np.isfinite(se))


def _near_additive_table(p):
    """A game a linear fit explains almost entirely: weights plus a small term in the coalition's size."""
    size = np.array([bin(c).count("1") for c in range(1 << p)])
    members = (np.arange(1 << p)[:, None] >> np.arange(p)) & 1
    return (members @ np.linspace(-1.5, 1.5, p) + 0.1 * np.sin(3.0 * size)).astype(np.float32)


def _heteroskedastic_table(seed, p):
    """A random game whose coalitions of p - 1 or more players carry most of the noise."""
    rng = np.random.default_rng(seed)
    table = random_lookup_table(seed, p)
    size = np.array([bin(c).count("1") for c in range(1 << p)])
    return (table + 3.0 * (size >= p - 1) * rng.normal(size=table.size)).astype(np.float32)


@pytest.mark.parametrize("game_name", ["lookup", "heteroskedastic", "near_additive"])
@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_stderr_is_calibrated(game_name, name, index, d):
    """Over independent keys the errors have the spread their standard errors claim: E[z^2] = 1, E[z] = 0.

    The tolerances are 4 standard errors of the mean of z^2 (per seed) and of each player's z, over
    the seeds, measured from the seeds themselves. About 2,000 evaluations a key. A standard error of
    exactly 0 is wrong on these games (none is additive): it fails too.
    """
    p, seeds = 6, 150
    table = {"lookup": lambda: random_lookup_table(3, p), "heteroskedastic": lambda: _heteroskedastic_table(5, p),
             "near_additive": lambda: _near_additive_table(p)}[game_name]()
    game = lookup_game(table)
    truth = exact(game, p, index, d=d)
    budget = _budget(max(300, 2000 // draw_size(name, p)), p, name)
    runs = [estimate(jax.random.key(seed), game, p, index, evaluations=budget, d=d, estimator=name)
            for seed in range(seeds)]
    assert all(np.all(np.asarray(att.stderr) > 0) for att in runs)
    z = np.stack([(np.asarray(att.values) - truth) / np.asarray(att.stderr) for att in runs])
    per_seed_sq = np.mean(z**2, axis=1)
    assert abs(per_seed_sq.mean() - 1) <= 4 * per_seed_sq.std() / np.sqrt(seeds), per_seed_sq.mean()
    # No player's errors lean to one side (per player: Shapley's errors sum to zero within a seed).
    assert np.all(np.abs(z.mean(axis=0)) <= 4 * z.std(axis=0) / np.sqrt(seeds)), z.mean(axis=0)


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_stderr_shrinks_like_inverse_sqrt(name, index, d):
    game = lookup_game(random_lookup_table(5, 7))
    small, large = (estimate(jax.random.key(s), game, 7, index, evaluations=_budget(n, 7, name), d=d, estimator=name)
                    for s, n in [(0, 500), (1, 8000)])
    ratio = np.asarray(large.stderr) / np.asarray(small.stderr)
    # Expected 0.25; the stderr of a stderr from 500 samples is a few percent.
    assert np.median(ratio) == pytest.approx(0.25, rel=0.15)


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_entry_says_what_it_builds(name, index, d):
    entry = ESTIMATORS[name]
    for p in (1, 5, 12):
        est = make_estimator(p, index, d=d, estimator=name)
        assert est.draw_size == entry.draw_size(p) and est.name == name
        masks = jax.vmap(est.draw, in_axes=(None, 0))(jax.random.key(0), jnp.arange(3))
        assert masks.shape == (3, entry.draw_size(p), p) and masks.dtype == jnp.bool_
    assert entry.focus is None or entry.focus in FOCUS_KINDS


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_is_independent_of_chunk_size_and_mesh(mesh, one_device, name, index, d):
    game = lookup_game(random_lookup_table(9, 6))
    plans = [make_plan(chunk_size=7, mesh=one_device), make_plan(chunk_size=4096, mesh=one_device),
             make_plan(chunk_size=64, mesh=mesh), None]
    runs = [estimate(jax.random.key(5), game, 6, index, evaluations=_budget(301, 6, name), d=d, estimator=name,
                     plan=plan) for plan in plans]
    for other in runs[1:]:
        np.testing.assert_allclose(other.values, runs[0].values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(other.stderr, runs[0].stderr, rtol=1e-4, atol=1e-6)
        assert other.num_evaluations == runs[0].num_evaluations


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_resumes_the_same_run(name, index, d):
    game = lookup_game(random_lookup_table(4, 6))
    key = jax.random.key(8)
    whole = estimate(key, game, 6, index, d=d, evaluations=_budget(600, 6, name), estimator=name)
    first = estimate(key, game, 6, index, d=d, evaluations=_budget(250, 6, name), estimator=name)
    resumed = estimate(key, game, 6, index, d=d, evaluations=_budget(350, 6, name), state=first)  # estimator: state's
    assert resumed.num_draws == 600 and resumed.estimator == name
    np.testing.assert_allclose(resumed.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.stderr, whole.stderr, rtol=1e-4, atol=1e-7)
    again = estimate(key, game, 6, index, d=d, evaluations=0, state=resumed)  # 0 re-finalizes a state
    np.testing.assert_array_equal(again.values, resumed.values)
    with pytest.raises(ValueError, match="at least one"):  # a new run that buys no draw estimates nothing
        estimate(key, game, 6, index, d=d, evaluations=0, estimator=name)


@pytest.mark.parametrize("name,index,d", [c for c in ESTIMATOR_CASES if ESTIMATORS[c[0]].focus],
                         ids=[i for i, c in zip(IDS, ESTIMATOR_CASES, strict=True) if ESTIMATORS[c[0]].focus])
def test_estimator_focus_kind_samples_its_index(name, index, d):
    """The focused draws its entry names are unbiased for the same index, within 5 standard errors."""
    game = lookup_game(random_lookup_table(6, 7))
    truth = exact(game, 7, index, d=d)
    players = np.array([1, 4, 5])
    d_ = INDICES[index].fixed_d or d
    kind = ESTIMATORS[name].focus
    for draws in sample_sizes(kind, d_):  # every size of sample the kind makes
        samples = focused_samples(jax.random.key(draws), game, 7, kind, d_, players, 4000, make_plan(), draws)
        m = FocusMoments.zeros(7).add(players, samples, draws)
        se = np.sqrt(m.m2[players] / (m.count[players] - 1) / m.count[players])
        assert np.all(np.abs(m.mean[players] - truth[players]) <= 5 * se), (draws, m.mean[players], truth[players])
        assert np.all(m.count[[0, 2, 3, 6]] == 0) and m.draws == draws
    with pytest.raises(ValueError, match="cannot join"):
        m.add(players, samples, draws + 1)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_strategy_keeps_every_size_of_a_grid(strategy):
    w = np.random.default_rng(0).permutation(np.linspace(-3, 5, 12))
    grid = [10, 7, 4, 1]
    for attribute in (by_exact("shapley"), by_estimate("banzhaf", evaluations=4096)):
        res = STRATEGIES[strategy](jax.random.key(0), additive_game(w), 12, grid, attribute)
        for r in grid:
            mask, spent = res.mask_of_size(r)
            assert mask.sum() == r and spent > 0
            # An additive game with weights 0.7 apart: the top r are found.
            np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(np.argsort(-w)[:r]))
            assert 0.0 <= res.settled_share_of_size(r) <= 1.0


class _LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(6, name="fc1")(x.reshape(x.shape[0], -1)))
        return nn.Dense(3)(nn.relu(nn.Dense(10, name="fc2")(h)))


class _NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.fc1, self.fc2, self.out = nnx.Linear(4, 6, rngs=rngs), nnx.Linear(6, 10, rngs=rngs), nnx.Linear(10, 3,
                                                                                                         rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.fc2(nnx.relu(self.fc1(x)))))


def _networks():
    """``(name, trained, init, train_fn)``: the same 4-6-10-3 MLP through each adapter, with a no-op training."""
    x = np.zeros((1, 4), np.float32)
    staged = MLP(hidden=(6, 10), num_classes=3)
    linen = _LinenMLP()
    yield "staged", adapt(staged, init_params(jax.random.key(1), staged, (4,))), \
        adapt(staged, init_params(jax.random.key(2), staged, (4,))), lambda net, masks: net
    yield "linen", adapt(linen, linen.init(jax.random.key(1), x)), adapt(linen, linen.init(jax.random.key(2), x)), \
        lambda apply_fn, variables: variables
    yield "nnx", adapt(_NNXMLP(nnx.Rngs(1))), adapt(_NNXMLP(nnx.Rngs(2))), lambda model: model


@pytest.mark.parametrize("baseline", list(BASELINES))
def test_baseline_keeps_every_size_split_over_the_layers(baseline):
    x = np.asarray(jax.random.normal(jax.random.key(3), (32, 4)))
    y = np.arange(32) % 3
    sizes = [14, 8, 2]
    for adapter, trained, init, train_fn in _networks():
        layout = trained.layout(["fc1", "fc2"], x)
        assert layout.layers == (("fc1", 6), ("fc2", 10)), adapter
        inputs = BaselineInputs(jax.random.key(4), trained, layout, x, y, init=init, train_fn=train_fn)
        masks = BASELINES[baseline](inputs, sizes)
        assert set(masks) == set(sizes), adapter
        for s in sizes:
            split = {n: int(m.sum()) for n, m in layout.split(masks[s]).items()}
            assert split == allocate(layout, s), (adapter, s, split)


SHARED_DATA = Path(os.environ.get("GTAP_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_loads_or_says_how_to_provide_it(name):
    """The default source, and a local copy under ``$GTAP_TEST_DATA/<name>`` where one exists (CONTRIBUTING.md)."""
    try:
        ds = DATASETS[name].load(source=DATASETS[name].sources[0], path=None, seed=0)
        check_dataset(ds)
        assert ds.num_classes >= 2 and ds.name == name
    except DataUnavailableError as e:
        assert "source" in str(e) or "path" in str(e), str(e)  # how to provide it
    local = SHARED_DATA / name
    if local.is_dir() and "path" in DATASETS[name].sources:
        ds = check_dataset(DATASETS[name].load(source="path", path=str(local), seed=0))
        assert ds.num_classes >= 2 and min(len(ds.y_train), len(ds.y_val), len(ds.y_test)) > 0


def _near_tie_table():
    """12 players, the 4th and 5th 0.01 apart in the additive part, and a term in the coalition's size."""
    w = np.array([3, 2.6, 2.2, 1.80, 1.79, 1.2, 1.0, 0.8, 0.6, 0.4, 0.2, 0])
    members = (np.arange(1 << 12)[:, None] >> np.arange(12)) & 1
    return (members @ w + 0.3 * np.sin(3.0 * members.sum(1))).astype(np.float32)


@pytest.mark.parametrize("name,index,d", ESTIMATOR_CASES, ids=IDS)
def test_estimator_settles_a_wrong_decision_in_at_most_delta_of_keys(name, index, d):
    """Settled mode (focused draws on) keeps the top 4 of a near tie; a decision it calls settled is wrong by
    more than epsilon in at most delta = 0.05 of 40 keys: at most 5, the bound a 5% rate exceeds with
    probability 0.014. (A standard error that is too small settles wrong sets: regression's at d = 0.25 did in
    6 of 40. Standard errors shrunk 5x settle 2 to 12 wrong sets of 40, more than 5 in 10 of the 14 cases, under
    this cap of 2^14 evaluations; with Shapley's earlier focused orders, 2^16 gave about as many in twice the
    time.)"""
    game, epsilon = lookup_game(_near_tie_table()), 0.005
    truth = exact(game, 12, index, d=d)
    attribute = by_estimate(index, d=d, estimator=name, settle=Settle(0.05, epsilon, 1 << 14))
    wrong = 0
    for key in range(40):
        res = STRATEGIES["top_n"](jax.random.key(key), game, 12, 4, attribute)
        kept = res.mask
        wrong += res.history[0].scores.settled and truth[kept].min() < truth[~kept].max() - epsilon
    assert wrong <= 5, wrong
