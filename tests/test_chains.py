"""Chains and stars valued incrementally (gtap_jax/network/modules/incremental.py) equal the batched pass, on every
model that offers them."""

import importlib

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx

import gtap_jax as g
from gtap_jax.data import synthetic
from gtap_jax.engine import ChainValueFn, batched_chain_fn, evaluate_flips, evaluate_stars
from gtap_jax.games import restrict
from gtap_jax.indices import PAIRED_MIN_DRAWS, default_estimator, make_estimator
from gtap_jax.indices.focus import focused_samples
from gtap_jax.models import MODELS
from gtap_jax.network import init_params
from gtap_jax.network.modules import incremental

CLASSES = 7


def _chain_values(fn, masks, star=False):
    """``fn.chain_values(masks[..., K, P], star)``, jitted as the engine runs it (called eagerly, every step of a
    chain would run op by op)."""
    masks = np.asarray(masks)
    batch = masks.reshape(-1, *masks.shape[-2:])
    return np.asarray(batched_chain_fn(fn, 1, star=star)(batch)).reshape(masks.shape[:-1])


def _game(name, layers, **kw):
    entry = MODELS[name]
    model = entry(CLASSES, **entry.small)
    shape = entry.input_shape or (50,)
    params = init_params(jax.random.key(0), model, shape)
    ds = synthetic(0, shape, CLASSES, n_train=8, n_test=64)
    return g.network_game(model, params, ds.x_test, ds.y_test, layers=layers, **kw)


# Each model's dense layers (rank-1 steps) and conv layers (stored contributions to a conv, through pooling, or to
# a dense layer, through a pooled and flattened map). (Zero and mean fills, both metrics, alternately.)
CASES = [("lenet300", ["fc1", "fc2"], "zero", "neg_loss"), ("lenet300", ["fc2"], "mean", "accuracy"),
         ("text_mlp", ["fc2", "fc3"], "mean", "neg_loss"), ("lenet5", ["fc1", "fc2"], "zero", "accuracy"),
         ("alexnet", ["fc6", "fc7"], "mean", "neg_loss"), ("lenet5", ["conv1", "fc2"], "mean", "neg_loss"),
         ("lenet5", ["conv2", "fc1"], "zero", "accuracy"), ("alexnet", ["conv1", "conv2"], "mean", "neg_loss")]


def _flips_equal_the_batched_pass(fn, layout, bases):
    """``evaluate_flips`` on ``bases`` with players of every layer flipped equals the stars' masks valued whole."""
    p = layout.num_players
    players = np.array(sorted({0, p - 1, *[a for a, _ in layout.offsets().values()],
                               *[b - 1 for _, b in layout.offsets().values()]}), np.int32)
    stars = np.repeat(bases[:, None], 1 + players.size, axis=1)
    stars[:, 1 + np.arange(players.size), players] ^= True
    batched = np.asarray(g.evaluate_coalitions(fn, stars.reshape(-1, p))).reshape(stars.shape[:2])
    np.testing.assert_allclose(np.asarray(evaluate_flips(fn, bases, players)), batched, rtol=1e-5, atol=1e-5)
    # each base with its complement, valued together (one consumer product a pair)
    assert hasattr(fn, "flip_pair_values")
    pairs = np.stack([bases, ~bases], axis=1).reshape(-1, p)
    stars = np.repeat(pairs[:, None], 1 + players.size, axis=1)
    stars[:, 1 + np.arange(players.size), players] ^= True
    batched = np.asarray(g.evaluate_coalitions(fn, stars.reshape(-1, p))).reshape(stars.shape[:2])
    np.testing.assert_allclose(np.asarray(evaluate_flips(fn, pairs, players, pairs=True)), batched, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="complement"):
        evaluate_flips(fn, bases[:2], players, pairs=True)


@pytest.mark.parametrize("name,layers,masked_value,metric", CASES)
def test_chains_equal_the_batched_pass(name, layers, masked_value, metric, monkeypatch):
    built, real = [], incremental._second
    monkeypatch.setattr(incremental, "_second", lambda *a: built.append(a[2]) or real(*a))
    fn, layout = _game(name, layers, masked_value=masked_value, metric=metric)
    assert isinstance(fn, ChainValueFn)
    # A second player layer read by a Dense: its flips move that Dense's output (a conv's map is not its units).
    assert bool(built) == (len(layers) > 1 and not layers[1].startswith("conv")), built
    p = layout.num_players
    masks = np.asarray(jax.vmap(make_estimator(p, "shapley", estimator="antithetic").draw, in_axes=(None, 0))(
        jax.random.key(1), np.arange(2)))  # two draws of two chains each
    chains = np.concatenate([_chain_values(fn, part) for part in np.split(masks, 2, axis=1)], axis=1)
    batched = np.asarray(g.evaluate_coalitions(fn, masks.reshape(-1, p))).reshape(chains.shape)
    np.testing.assert_allclose(chains, batched, rtol=1e-5, atol=1e-5)
    stars = np.asarray(jax.vmap(make_estimator(p, "banzhaf", estimator="paired").draw, in_axes=(None, 0))(
        jax.random.key(1), np.arange(2)))  # two coalitions, each with its P flips
    batched = np.asarray(g.evaluate_coalitions(fn, stars.reshape(-1, p))).reshape(stars.shape[:2])
    np.testing.assert_allclose(np.asarray(evaluate_stars(fn, stars)), batched, rtol=1e-5, atol=1e-5)
    _flips_equal_the_batched_pass(fn, layout, stars[:, 0])


@pytest.mark.parametrize("estimator,index", [("paired", "banzhaf"), ("complementary", "banzhaf"), ("owen", "shapley")])
def test_star_estimators_value_their_bases_flips_as_whole_coalitions(estimator, index, monkeypatch):
    """A star estimator on a game of known flips draws only its stars' bases and values every player's flip by its
    layer (a base and its complement together); the estimate is the one from its stars' coalitions valued whole."""
    driver = importlib.import_module("gtap_jax.indices.estimate")  # the module (the package exports its function)
    monkeypatch.setattr(driver, "STAR_FLIPS_MIN_PLAYERS", 0)  # a small game, to be quick
    calls, real = [], driver.batched_flip_fn
    monkeypatch.setattr(driver, "batched_flip_fn",
                        lambda *a, **kw: calls.append(kw.get("pairs", False)) or real(*a, **kw))
    fn, layout = _game("lenet300", ["fc1", "fc2"], metric="neg_loss")
    p, key = layout.num_players, jax.random.key(6)
    n = 3 * g.indices.draw_size(estimator, p)
    flips = g.estimate(key, fn, p, index, evaluations=n, estimator=estimator)
    assert calls == [estimator != "paired"]
    whole = g.estimate(key, lambda m: fn(m), p, index, evaluations=n, estimator=estimator)
    np.testing.assert_allclose(np.asarray(flips.values), np.asarray(whole.values), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(flips.stderr), np.asarray(whole.stderr), rtol=1e-3, atol=1e-5)


def test_settled_shapley_rounds_on_games_of_stars_take_owen_sampling_without_a_pilot(monkeypatch):
    attribute = importlib.import_module("gtap_jax.strategies.attribute")
    rounds, real = [], attribute.settle_round
    monkeypatch.setattr(attribute, "shapley_pilot", lambda *a, **kw: pytest.fail("a pilot ran"))
    monkeypatch.setattr(attribute, "settle_round", lambda *a, **kw: rounds.append(a[4].estimator) or real(*a, **kw))
    fn, layout = _game("lenet300", ["fc2"], metric="neg_loss")
    p = layout.num_players
    settle = g.Settle(0.1, g.strategies.share_epsilon(fn, p, 0.5), PAIRED_MIN_DRAWS * (p + 1))
    g.top_n(jax.random.key(0), fn, p, p // 2, g.by_estimate("shapley", settle=settle))
    assert rounds == ["owen"]


def test_shapley_rounds_given_the_pilot_by_name_take_its_choice_where_the_default_is_owen(monkeypatch):
    """``estimator="pilot"`` (the verdict configs') keeps the estimator their runs were made with."""
    from gtap_jax.indices.pilot import Pilot

    attribute = importlib.import_module("gtap_jax.strategies.attribute")
    rounds, pilots, real = [], [], attribute.settle_round
    monkeypatch.setattr(attribute, "shapley_pilot", lambda *a, **kw: pilots.append(a[2]) or Pilot("antithetic", 2., 7))
    monkeypatch.setattr(attribute, "settle_round", lambda *a, **kw: rounds.append(a[4].estimator) or real(*a, **kw))
    fn, layout = _game("lenet300", ["fc2"], metric="neg_loss")
    p = layout.num_players
    settle = g.Settle(0.1, g.strategies.share_epsilon(fn, p, 0.5), PAIRED_MIN_DRAWS * (p + 1))
    out = g.iterated_pruning(jax.random.key(0), fn, p, p // 2, g.by_estimate("shapley", estimator="pilot",
                                                                             settle=settle), step=0.3)
    assert pilots == [p] and len(rounds) > 1 and set(rounds) == {"antithetic"}
    spent = out.history[0].scores.num_evaluations  # the first round counts the pilot's 7 values
    assert spent > 7 and (spent - 7) % (2 * (p + 1)) == 0


def test_a_built_in_game_runs_its_prefix_once(monkeypatch):
    """The masked pass and the chains of a built-in model's game share the activations before the first player layer
    (the prefix runs once per game, not once for each)."""
    model_class = type(MODELS["lenet5"](CLASSES))
    apply, prefixes = model_class.apply, []

    def counting(self, *args, **kwargs):
        if kwargs.get("stop") is not None:
            prefixes.append(kwargs["stop"])
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(model_class, "apply", counting)
    fn, _ = _game("lenet5", ["conv2", "fc1"])
    assert isinstance(fn, ChainValueFn) and len(prefixes) == 1


def test_estimates_through_chains_and_stars_equal_whole_evaluations_on_any_mesh(mesh, one_device, monkeypatch):
    # stars as bases and known flips, split over the mesh (a game this small otherwise takes their masks)
    monkeypatch.setattr(importlib.import_module("gtap_jax.indices.estimate"), "STAR_FLIPS_MIN_PLAYERS", 0)
    fn, layout = _game("lenet300", ["fc1", "fc2"], metric="neg_loss")
    p = layout.num_players
    for index, estimator in (("shapley", "permutation"), ("banzhaf", "paired"), ("banzhaf", "complementary"),
                             ("shapley", "owen")):
        n = max(9, g.indices.draw_size(estimator, p) // (p + 1)) * (p + 1)  # one Owen draw: 8 stars
        whole = g.estimate(jax.random.key(2), lambda m: fn(m), p, index, evaluations=n, estimator=estimator)
        for plan in (g.make_plan(mesh=mesh), g.make_plan(mesh=one_device), None):
            att = g.estimate(jax.random.key(2), fn, p, index, evaluations=n, estimator=estimator, plan=plan)
            np.testing.assert_allclose(att.values, whole.values, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(att.stderr, whole.stderr, rtol=1e-4, atol=1e-5)
    # Where stars are valued incrementally, complementary stars are Banzhaf's default, paired stars beta's and Owen
    # sampling Shapley's; elsewhere regression on complementary pairs (or MSR), and permutations.
    many = PAIRED_MIN_DRAWS * (p + 1)
    for value_fn, evaluations, expected in ((fn, many, "complementary"), (fn, many - 1, "kernel_banzhaf"),
                                            (lambda m: fn(m), many, "kernel_banzhaf")):
        assert default_estimator("banzhaf", p, evaluations, value_fn) == expected
    assert default_estimator("beta", p, many, fn) == "paired"
    shapley = [default_estimator("shapley", p, n, f) for n, f in ((many, fn), (many - 1, fn), (many, lambda m: fn(m)))]
    assert shapley == ["owen", "permutation", "permutation"]
    # Focused draws (a star over the unsure players) too, with a number of draws that splits unevenly.
    players = np.array([3, 17, 250, 399])
    for plan, (kind, d, draws) in ((g.make_plan(mesh=mesh), ("flip", 0.5, 2)), (None, ("owen", None, 8)),
                                   (None, ("owen", None, 1))):
        args = (jax.random.key(4), p, kind, d, players, 7, plan, draws)
        np.testing.assert_allclose(focused_samples(args[0], fn, *args[1:]),
                                   focused_samples(args[0], lambda m: fn(m), *args[1:]), rtol=1e-4, atol=1e-5)


def test_a_sub_game_keeps_its_chains():
    fn, layout = _game("lenet300", ["fc2"], metric="neg_loss")
    always, free = np.zeros(100, bool), np.zeros(100, bool)
    always[:10], free[10:40] = True, True
    sub, idx = restrict(fn, always, free)
    assert isinstance(sub, ChainValueFn)
    masks = np.asarray(make_estimator(30, "shapley", estimator="permutation").draw(jax.random.key(3), 0))
    np.testing.assert_allclose(_chain_values(sub, masks),
                               np.asarray(g.evaluate_coalitions(sub, masks)), rtol=1e-5, atol=1e-5)
    star = np.asarray(make_estimator(30, "banzhaf", estimator="paired").draw(jax.random.key(3), 0))
    np.testing.assert_allclose(_chain_values(sub, star, star=True),
                               np.asarray(g.evaluate_coalitions(sub, star)), rtol=1e-5, atol=1e-5)
    players = np.array([0, 7, 29], np.int32)  # its flips are the game's flips of its players
    np.testing.assert_allclose(np.asarray(evaluate_flips(sub, star[:2, :], players)),
                               np.asarray(evaluate_flips(lambda m: sub(m), star[:2, :], players)), rtol=1e-5, atol=1e-5)


def test_games_without_incremental_steps_evaluate_whole(monkeypatch):
    fn16, _ = _game("lenet300", ["fc1"], dtype="bfloat16")
    assert not isinstance(fn16, ChainValueFn)
    # LeNet5's conv1 contributions to conv2: 6 players x 64 images x 10 x 10 x 16 outputs, 2.5 MB; a smaller
    # store evaluates whole, a rank-1 game stores nothing.
    assert isinstance(_game("lenet5", ["conv1"])[0], ChainValueFn)
    monkeypatch.setattr(incremental, "MAX_CONTRIBUTION_BYTES", 6 * 64 * 10 * 10 * 16 * 4 - 1)
    assert not isinstance(_game("lenet5", ["conv1"])[0], ChainValueFn)
    assert isinstance(_game("lenet5", ["fc1"])[0], ChainValueFn)


def test_settled_shapley_on_chains_focuses_with_stars_valued_incrementally(monkeypatch):
    """A settled Shapley round's focused draws (``"owen"``) are stars of known flips: on a game of chains, valued
    incrementally."""
    from gtap_jax.indices import focus

    fn, layout = _game("lenet300", ["fc2"], metric="neg_loss")
    p = layout.num_players
    settle = g.Settle(epsilon=0.0, max_evaluations=16 * (p + 1), pilot=False)
    incremental, real = [], focus.evaluate_flips
    monkeypatch.setattr(focus, "evaluate_flips", lambda value_fn, *a, **kw: incremental.append(
        hasattr(value_fn, "flip_values")) or real(value_fn, *a, **kw))
    states = []
    g.by_estimate("shapley", settle=settle)(jax.random.key(5), fn, p, (p // 5,), on_check=states.append)
    assert sum(state.focus_evaluations for state in states) > 0 and incremental and all(incremental)


class _LinenMLP(nn.Module):
    norm: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(12)(x)
        h = nn.relu(nn.LayerNorm()(h) if self.norm else h)  # a LayerNorm mixes the features: no rank-1 steps
        h = nn.relu(nn.Dense(10)(h))
        return nn.Dense(CLASSES)(h)


class _LinenTokens(nn.Module):
    """A transformer's feed-forward block on [batch, tokens, features], with its residual link."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(8, name="inp")(x)
        up = nn.gelu(nn.Dense(16, name="up")(h))
        x = x + nn.Dense(x.shape[-1], name="down")(up)
        return nn.Dense(CLASSES, name="head")(x.mean(axis=1))


class _LinenCNN(nn.Module):
    """Conv - relu - pool - conv (bias-free) - BatchNorm - relu - flatten - dense."""

    @nn.compact
    def __call__(self, x):
        h = nn.avg_pool(nn.relu(nn.Conv(5, (3, 3), name="c1")(x)), (2, 2), (2, 2))
        h = nn.relu(nn.BatchNorm(use_running_average=True, name="bn")(nn.Conv(6, (3, 3), use_bias=False, name="c2")(h)))
        return nn.Dense(CLASSES, name="head")(h.reshape(h.shape[0], -1))


class _NNXCNN(nnx.Module):
    def __init__(self, rngs):
        self.c1 = nnx.Conv(3, 4, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(4, 5, (3, 3), padding="VALID", rngs=rngs)
        self.head = nnx.Linear(5, CLASSES, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.c2(nnx.relu(self.c1(x)))).mean(axis=(1, 2)))


class _NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.blocks = nnx.List([nnx.Linear(5, 9, rngs=rngs), nnx.Linear(9, 6, rngs=rngs)])
        self.out = nnx.Linear(6, CLASSES, rngs=rngs)

    def __call__(self, x):
        for block in self.blocks:
            x = nnx.relu(block(x))
        return self.out(x)


def _flax_games():
    x = jax.random.normal(jax.random.key(0), (24, 5))
    y = np.arange(24) % CLASSES
    tokens = jax.random.normal(jax.random.key(1), (24, 3, 6))
    mlp, with_norm, ffn, cnn = _LinenMLP(), _LinenMLP(norm=True), _LinenTokens(), _LinenCNN()
    images = jax.random.normal(jax.random.key(5), (24, 12, 12, 4))
    resnet = MODELS["resnet"](CLASSES, **MODELS["resnet"].small)
    resnet_vars = resnet.init(jax.random.key(6), images[..., :1])
    return {
        "linen": g.network_game(mlp, mlp.init(jax.random.key(2), x), x, y, layers=["Dense_0", "Dense_1"],
                                metric="neg_loss"),  # (accuracy: an argmax near a tie may flip with the rounding)
        "linen, mean fills": g.network_game(mlp, mlp.init(jax.random.key(2), x), x, y, layers=["Dense_1"],
                                            masked_value="mean", metric="neg_loss"),
        "tokens": g.network_game(ffn, ffn.init(jax.random.key(3), tokens), tokens, y, layers=["inp", "up"],
                                 metric="neg_loss"),
        "nnx": g.network_game(_NNXMLP(nnx.Rngs(0)), None, x, y, layers=["blocks/0", "blocks/1"], masked_value="mean",
                              metric="neg_loss"),
        "layernorm": g.network_game(with_norm, with_norm.init(jax.random.key(2), x), x, y, layers=["Dense_0"]),
        "named out of order": g.network_game(_NNXMLP(nnx.Rngs(0)), None, x, y, layers=["blocks/1", "blocks/0"]),
        "linen conv": g.network_game(cnn, cnn.init(jax.random.key(4), images), images, y, layers=["c1", "c2"],
                                     masked_value="mean", metric="neg_loss"),
        "nnx conv": g.network_game(_NNXCNN(nnx.Rngs(0)), None, images[..., :3], y, layers=["c1"], metric="neg_loss"),
        # a block's inner channels (a group: the conv and its BatchNorm) feed its second conv; the stream's
        # channels feed every block and the residual add: no single consumer
        "resnet block": g.network_game(resnet, resnet_vars, images[..., :1], y,
                                       layers=["s1b1/conv1:group", "s2b1/conv1:group"], metric="neg_loss"),
        "resnet stream": g.network_game(resnet, resnet_vars, images[..., :1], y,
                                        layers=["stem:group", "s1b1/conv1:group"], metric="neg_loss"),
    }


def test_flax_models_value_chains_and_stars_as_the_batched_pass():
    games = _flax_games()
    for name, (fn, layout) in games.items():
        p = layout.num_players
        if name in ("layernorm", "named out of order", "resnet stream"):  # no one affine consumer
            assert not isinstance(fn, ChainValueFn), name
            continue
        assert isinstance(fn, ChainValueFn), name
        chain = np.asarray(make_estimator(p, "shapley", estimator="permutation").draw(jax.random.key(4), 0))
        star = np.asarray(make_estimator(p, "banzhaf", estimator="paired").draw(jax.random.key(4), 0))
        for masks, is_star in ((chain, False), (star, True)):
            np.testing.assert_allclose(_chain_values(fn, masks, star=is_star),
                                       np.asarray(g.evaluate_coalitions(fn, masks)), rtol=1e-5, atol=1e-5,
                                       err_msg=name)
        _flips_equal_the_batched_pass(fn, layout, star[:2])


def test_a_built_in_model_with_numpy_params_values_chains_and_stars():
    """Params as numpy arrays (after jax.device_get or a pickle) give the same estimates as device arrays."""
    entry = MODELS["lenet300"]
    model = entry(CLASSES, **entry.small)
    params = init_params(jax.random.key(0), model, (50,))
    ds = synthetic(0, (50,), CLASSES, n_train=8, n_test=64)
    for estimator, index in (("permutation", "shapley"), ("paired", "banzhaf")):
        values = []
        for p in (params, jax.device_get(params)):
            fn, layout = g.network_game(model, p, ds.x_test, ds.y_test, layers=["fc1", "fc2"], metric="neg_loss")
            att = g.estimate(jax.random.key(2), fn, layout.num_players, index, evaluations=3 * (layout.num_players + 1),
                             estimator=estimator)
            values.append(np.asarray(att.values))
        np.testing.assert_allclose(values[0], values[1], rtol=1e-6, atol=1e-7)


def test_accuracy_games_value_exact_logit_ties_as_the_batched_pass():
    """Flax's zero biases make a coalition without players output logits (0, ..., 0) exactly; a rank-1 update
    leaves them +-1e-8 apart. Near-ties count as the lowest class in both passes, so stars and chains give the
    batched pass's accuracy exactly."""
    x = jax.random.normal(jax.random.key(0), (24, 5))
    y = np.arange(24) % CLASSES
    mlp = _LinenMLP()
    fn, layout = g.network_game(mlp, mlp.init(jax.random.key(2), x), x, y, layers=["Dense_0", "Dense_1"],
                                metric="accuracy")
    p = layout.num_players
    for i in range(40):
        star = np.asarray(make_estimator(p, "banzhaf", estimator="paired").draw(jax.random.key(5), i))
        chain = np.asarray(make_estimator(p, "shapley", estimator="permutation").draw(jax.random.key(5), i))
        for masks, is_star in ((star, True), (chain, False)):
            np.testing.assert_array_equal(_chain_values(fn, masks, star=is_star),
                                          np.asarray(g.evaluate_coalitions(fn, masks)), err_msg=f"draw {i}")
