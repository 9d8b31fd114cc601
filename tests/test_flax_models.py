"""Any Flax model as a game: Linen (intercepted) and NNX (graph surgery on a clone) against masked forward passes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gtap_jax as g
from gtap_jax.baselines import lottery_ticket, magnitude_scores, taylor_scores
from gtap_jax.network import compact, metric_value
from gtap_jax.network.linen import masked_variables
from gtap_jax.network.nnx import masked_model


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, masks=None, fills=None):
        h = nn.Conv(4, (3, 3))(x)
        h = nn.BatchNorm(use_running_average=True)(h)
        h = _masked(h, "block1/BatchNorm_0", masks, fills)
        return nn.relu(h)


class LinenCNN(nn.Module):
    """conv -> BatchNorm -> relu -> dense -> relu -> dense; ``masks`` is the independent masked pass."""

    @nn.compact
    def __call__(self, x, masks=None, fills=None):
        h = Block(name="block1")(x, masks, fills)
        h = nn.Dense(8)(h.reshape(h.shape[0], -1))
        h = nn.relu(_masked(h, "Dense_0", masks, fills))
        return nn.Dense(3)(h)


class NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.fc1 = nnx.Linear(5, 7, rngs=rngs)
        self.blocks = nnx.List([nnx.Linear(7, 6, rngs=rngs), nnx.Linear(6, 6, rngs=rngs)])
        self.out = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x, masks=None, fills=None):
        h = nnx.relu(_masked(self.fc1(x), "fc1", masks, fills))
        for i, block in enumerate(self.blocks):
            h = nnx.relu(_masked(block(h), f"blocks/{i}", masks, fills))
        return self.out(h)


def _masked(h, name, masks, fills):
    if masks is None or name not in masks:
        return h
    lead = (1,) * (h.ndim - 1)
    m = masks[name].reshape(lead + (-1,))
    return h * m if fills is None else jnp.where(m, h, fills[name].reshape(lead + (-1,)))


@pytest.fixture(scope="module")
def linen():
    x = jax.random.normal(jax.random.key(0), (16, 6, 6, 1))
    y = jnp.arange(16) % 3
    model = LinenCNN()
    variables = model.init(jax.random.key(1), x)
    # batch statistics that are not the identity, so the BatchNorm's place matters
    variables = {"params": variables["params"], "batch_stats": jax.tree.map(lambda a: a + 0.3,
                                                                           variables["batch_stats"])}
    return model, variables, x, y


@pytest.fixture(scope="module")
def mlp():
    return NNXMLP(nnx.Rngs(0)), jax.random.normal(jax.random.key(3), (20, 5)), jnp.arange(20) % 3


def _masks(layout, seed, n=4):
    return [np.asarray(jax.random.bernoulli(jax.random.key(seed + i), 0.6, (layout.num_players,))) for i in range(n)]


@pytest.mark.parametrize("metric", ["accuracy", "neg_loss"])
def test_linen_game_equals_an_independent_masked_pass(linen, metric):
    model, variables, x, y = linen
    fn, layout = g.network_game(model, variables, x, y, layers=["block1/BatchNorm_0", "Dense_0"], metric=metric)
    assert layout.layers == (("block1/BatchNorm_0", 4), ("Dense_0", 8))
    masks = _masks(layout, 10)
    got = g.evaluate_coalitions(fn, np.stack(masks))
    want = [metric_value(model.apply(variables, x, masks=layout.split(m)), y, metric) for m in masks]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_nnx_game_with_nested_paths_and_mean_fills_equals_a_masked_pass(mlp):
    net, x, y = mlp
    fn, layout = g.network_game(net, None, x, y, layers=["fc1", "blocks/1"], metric="neg_loss", masked_value="mean")
    assert layout.layers == (("fc1", 7), ("blocks/1", 6))
    h1 = net.fc1(x)
    h2 = net.blocks[1](nnx.relu(net.blocks[0](nnx.relu(h1))))
    fills = {"fc1": h1.mean(axis=0), "blocks/1": h2.mean(axis=0)}
    for m in _masks(layout, 20):
        want = metric_value(net(x, masks=layout.split(m), fills=fills), y, "neg_loss")
        np.testing.assert_allclose(fn(jnp.asarray(m)), want, rtol=1e-5, atol=1e-6)
    assert type(net.blocks[1]).__name__ == "Linear"  # the user's model is not changed


def test_estimate_runs_on_both(linen, mlp):
    model, variables, x, y = linen
    fn, layout = g.network_game(model, variables, x, y, layers=["Dense_0"], metric="neg_loss")
    att = g.estimate(jax.random.key(0), fn, layout.num_players, "banzhaf", evaluations=256)
    assert att.values.shape == (8,) and np.all(np.isfinite(att.values))
    net, x2, y2 = mlp
    fn2, layout2 = g.network_game(net, None, x2, y2, layers=["blocks/0"])
    att2 = g.estimate(jax.random.key(0), fn2, layout2.num_players, "shapley", evaluations=7 * 40)
    assert att2.values.shape == (6,)


def test_bad_layers_say_what_the_model_has(linen, mlp):
    model, variables, x, y = linen
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['fc9'\]; the model's modules are .*'block1/Conv_0'"):
        g.network_game(model, variables, x, y, layers=["fc9"])
    with pytest.raises(ValueError, match="name the player layers"):
        g.network_game(model, variables, x, y)
    net, x2, y2 = mlp
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['blocks/7'\].*'blocks/1'"):
        g.network_game(net, None, x2, y2, layers=["blocks/7"])
    with pytest.raises(ValueError, match="variables=None"):
        g.network_game(net, {"params": {}}, x2, y2, layers=["fc1"])


def test_a_layer_with_no_feature_axis_is_refused():
    class Score(nn.Module):
        @nn.compact
        def __call__(self, h):
            return jnp.sum(nn.Dense(4)(h), axis=-1)  # one number per example

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(x) + Score()(x)[:, None]

    x, y = jnp.ones((4, 5)), jnp.zeros(4, int)
    variables = Model().init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"layer 'Score_0' has no feature axis to prune: its output is shape \(2,\)"):
        g.network_game(Model(), variables, x, y, layers=["Score_0"])


class PlainLeNet300(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(300, name="fc1")(x))
        x = nn.relu(nn.Dense(100, name="fc2")(x))
        return nn.Dense(10, name="out")(x)


def test_weight_baselines_of_a_plain_linen_model_equal_the_staged_models():
    """The same weights written as a user's Linen module score like the project's LeNet-300-100 (whose
    baselines are checked against hand-computed oracles in test_oracles.py)."""
    from gtap_jax.models import INPUT_SHAPES, layout_for, lenet300
    from gtap_jax.network import init_params

    staged = lenet300()
    params = init_params(jax.random.key(0), staged, INPUT_SHAPES["lenet300"])
    x = jax.random.uniform(jax.random.key(1), (40, 28, 28, 1))
    y = jnp.arange(40) % 10
    layout = layout_for(staged, ["fc1", "fc2"])
    _, generic = g.network_game(PlainLeNet300(), {"params": params}, x, y, layers=["fc1", "fc2"])
    assert generic == layout
    np.testing.assert_allclose(magnitude_scores(PlainLeNet300(), {"params": params}, generic),
                               magnitude_scores(staged, params, layout), rtol=1e-6)
    np.testing.assert_allclose(taylor_scores(PlainLeNet300(), {"params": params}, x, y, generic),
                               taylor_scores(staged, params, x, y, layout), rtol=1e-4, atol=1e-9)


def test_weight_baselines_of_nnx_and_batchnorm_layers(linen, mlp):
    net, x, y = mlp
    _, layout = g.network_game(net, None, x, y, layers=["blocks/1"])
    np.testing.assert_allclose(magnitude_scores(net, None, layout),
                               np.linalg.norm(np.asarray(net.blocks[1].kernel[...]), axis=0), rtol=1e-6)
    assert taylor_scores(net, None, x, y, layout).shape == (6,)
    model, variables, xl, yl = linen
    _, bn = g.network_game(model, variables, xl, yl, layers=["block1/BatchNorm_0"])
    with pytest.raises(ValueError, match="'block1/BatchNorm_0' has no kernel whose output axis is its 4 features"):
        magnitude_scores(model, variables, bn)


def test_masked_weights_reproduce_the_masked_network(linen, mlp):
    """Silencing the dropped features in the weights gives the masked game's network, with the model unchanged."""
    model, variables, x, y = linen
    _, layout = g.network_game(model, variables, x, y, layers=["block1/BatchNorm_0", "Dense_0"])
    for m in _masks(layout, 30, n=2):
        np.testing.assert_allclose(model.apply(masked_variables(variables, layout, m), x),
                                   model.apply(variables, x, masks=layout.split(m)), rtol=1e-5, atol=1e-5)
    net, x2, y2 = mlp
    _, layout2 = g.network_game(net, None, x2, y2, layers=["fc1", "blocks/1"])
    h1 = net.fc1(x2)
    fills = {"fc1": h1.mean(axis=0), "blocks/1": net.blocks[1](nnx.relu(net.blocks[0](nnx.relu(h1)))).mean(axis=0)}
    for m in _masks(layout2, 40, n=2):
        np.testing.assert_allclose(masked_model(net, layout2, m, fills)(x2),
                                   net(x2, masks=layout2.split(m), fills=fills), rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(net.fc1.kernel[...]) != 0)  # the user's model is not changed


def test_masked_weights_refuse_a_module_without_weights_on_its_features():
    class Act(nn.Module):
        @nn.compact
        def __call__(self, h):
            return nn.relu(h)

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(Act()(nn.Dense(4)(x)))

    x, y = jnp.ones((4, 5)), jnp.zeros(4, int)
    variables = Model().init(jax.random.key(0), x)
    _, layout = g.network_game(Model(), variables, x, y, layers=["Act_0"])
    with pytest.raises(ValueError, match="cannot silence layer 'Act_0' through its parameters: it has none"):
        masked_variables(variables, layout, np.ones(4, bool))
    _, dense = g.network_game(Model(), variables, x, y, layers=["Dense_0"])
    with pytest.raises(ValueError, match="no bias to carry the mean fill"):
        n = dense.num_players
        masked_variables({"params": {"Dense_0": {"kernel": np.ones((5, n))}}}, dense, np.ones(n, bool),
                         {"Dense_0": np.zeros(n)})


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_compacted_linen_cnn_is_smaller_and_computes_the_masked_network(linen, fill):
    """conv -> BatchNorm (named) -> relu -> flatten -> dense (named): fewer channels and units, same outputs."""
    model, variables, x, y = linen
    layers = ["block1/BatchNorm_0", "Dense_0"]
    _, layout = g.network_game(model, variables, x, y, layers=layers, masked_value=fill)
    full = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])[1]["intermediates"]
    fills = None if fill == "zero" else {
        "block1/BatchNorm_0": full["block1"]["BatchNorm_0"]["__call__"][0].mean((0, 1, 2)),
        "Dense_0": full["Dense_0"]["__call__"][0].mean(0)}
    for m in _masks(layout, 50, n=2):
        small = compact(model, variables, layout, m, x=x, masked_value=fill)
        k_conv, k_dense = int(m[:4].sum()), int(m[4:].sum())
        p = small.variables["params"]
        assert p["block1"]["Conv_0"]["kernel"].shape == (3, 3, 1, k_conv)
        assert small.variables["batch_stats"]["block1"]["BatchNorm_0"]["mean"].shape == (k_conv,)
        assert p["Dense_0"]["kernel"].shape == (6 * 6 * k_conv, k_dense)
        assert p["Dense_1"]["kernel"].shape == (k_dense, 3)
        assert small.network.widths == {"block1/Conv_0": k_conv, "Dense_0": k_dense}
        assert small.kept == {"block1/BatchNorm_0": k_conv, "Dense_0": k_dense}
        assert small.report.params_after == sum(a.size for a in jax.tree.leaves(p)) < small.report.params_before
        assert small.max_error < 1e-5
        np.testing.assert_allclose(small(x), model.apply(variables, x, masks=layout.split(m), fills=fills),
                                   rtol=1e-5, atol=1e-5)


def test_compacted_nnx_mlp_is_a_smaller_module_of_the_same_class(mlp):
    net, x, y = mlp
    _, layout = g.network_game(net, None, x, y, layers=["fc1", "blocks/1"], masked_value="mean")
    h1 = net.fc1(x)
    fills = {"fc1": h1.mean(axis=0), "blocks/1": net.blocks[1](nnx.relu(net.blocks[0](nnx.relu(h1)))).mean(axis=0)}
    m = _masks(layout, 60, n=1)[0]
    small = compact(net, None, layout, m, x=x, masked_value="mean")
    assert type(small.model) is NNXMLP and small.variables is None
    k1, k2 = int(m[:7].sum()), int(m[7:].sum())
    assert small.model.fc1.kernel[...].shape == (5, k1) and small.model.blocks[0].kernel[...].shape == (k1, 6)
    assert small.model.blocks[1].kernel[...].shape == (6, k2) and small.model.out.kernel[...].shape == (k2, 3)
    assert (small.model.fc1.out_features, small.model.out.in_features) == (k1, k2)
    np.testing.assert_allclose(small.model(x), net(x, masks=layout.split(m), fills=fills), rtol=1e-5, atol=1e-5)
    assert net.fc1.kernel[...].shape == (5, 7)  # the user's model is not changed


def test_compaction_refuses_what_is_not_a_chain(linen):
    class Residual(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(6)(x)
            return nn.Dense(3)(nn.relu(nn.Dense(6)(h)) + h)

    x, y = jax.random.normal(jax.random.key(0), (8, 4)), jnp.arange(8) % 3
    variables = Residual().init(jax.random.key(1), x)
    with pytest.warns(UserWarning, match=r"'Dense_0' is one member of the coupled group \['Dense_0', 'Dense_2'\]"):
        _, layout = g.network_game(Residual(), variables, x, y, layers=["Dense_0"])
    mask = np.arange(6) % 2 == 0
    with pytest.raises(ValueError, match="not a chain"):
        compact(Residual(), variables, layout, mask, x=x)
    _, last = g.network_game(Residual(), variables, x, y, layers=["Dense_1"])  # built before the inner Dense
    with pytest.raises(ValueError, match="feeds the model's output"):
        compact(Residual(), variables, last, np.arange(3) < 2, x=x)
    model, variables, x, y = linen  # a conv channel masked before its BatchNorm feeds Dense_0 a constant: folded
    _, conv = g.network_game(model, variables, x, y, layers=["block1/Conv_0"])
    small = compact(model, variables, conv, np.array([1, 0, 1, 0], bool), x=x)
    assert small.network.widths == {"block1/Conv_0": 2} and small.max_error < 1e-4
    _, bn = g.network_game(model, variables, x, y, layers=["block1/BatchNorm_0"])
    none = np.zeros(4, bool)  # every channel dropped: one dead channel stays (Flax has no zero-unit layers)
    small = compact(model, variables, bn, none, x=x)
    assert small.variables["params"]["block1"]["Conv_0"]["kernel"].shape[-1] == 1
    np.testing.assert_allclose(small(x), model.apply(variables, x, masks=bn.split(none)), rtol=1e-5, atol=1e-5)


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(8)(x))
        h = nn.relu(nn.Dense(6)(h))
        return nn.Dense(3)(h)


def test_lottery_ticket_of_user_models_trains_each_level_under_its_mask(mlp):
    """Dropped features get no gradient (their incoming weights stay at init), kept ones train, levels nest, and
    each level keeps the largest weights of the previous level's ticket."""
    import optax

    from gtap_jax.layout import keep_per_layer

    x = jax.random.normal(jax.random.key(5), (32, 5))
    y = jnp.arange(32) % 3
    model = LinenMLP()
    init = model.init(jax.random.key(6), x)
    _, layout = g.network_game(model, init, x, y, layers=["Dense_0", "Dense_1"])

    def loss(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train_linen(apply_fn, variables):
        tx = optax.adam(0.05)
        params, state = variables["params"], tx.init(variables["params"])
        grad = jax.jit(jax.grad(lambda p: loss(apply_fn({"params": p}, x))))
        for _ in range(20):
            updates, state = tx.update(grad(params), state)
            params = optax.apply_updates(params, updates)
        return {"params": params}

    trained = train_linen(model.apply, init)
    tickets = {}
    masks = lottery_ticket(model, init, trained, layout, [6, 10], train_linen,
                                on_level=lambda s, m, t: tickets.update({s: (m, t)}))
    assert [int(masks[s].sum()) for s in (10, 6)] == [10, 6] and not np.any(masks[6] & ~masks[10])
    np.testing.assert_array_equal(masks[6], keep_per_layer(magnitude_scores(tickets[10][1], None, layout),
                                                           layout, 6, within=masks[10]))
    k0, k0_init = tickets[6][1].params["Dense_0"]["kernel"], init["params"]["Dense_0"]["kernel"]
    dropped = ~masks[6][:8]
    np.testing.assert_array_equal(k0[:, dropped], k0_init[:, dropped])
    assert np.all(np.any(k0[:, ~dropped] != k0_init[:, ~dropped], axis=0))

    net, x2, y2 = mlp
    _, layout2 = g.network_game(net, None, x2, y2, layers=["fc1", "blocks/1"])
    start = nnx.clone(net)

    def train_nnx(model):
        opt = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)

        @nnx.jit
        def step(model, opt):
            grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x2), y2).mean())(model)
            opt.update(model, grads)

        for _ in range(10):
            step(model, opt)
        return model

    got = {}
    masks2 = lottery_ticket(None, start, net, layout2, [8], train_nnx, on_level=lambda s, m, t: got.update(t=t.model))
    assert int(masks2[8].sum()) == 8 and type(got["t"].fc1).__name__ == "Linear"  # the wrappers are gone
    off = ~masks2[8][:7]
    np.testing.assert_array_equal(got["t"].fc1.kernel[...][:, off], start.fc1.kernel[...][:, off])
    assert np.all(np.any(got["t"].fc1.kernel[...][:, ~off] != start.fc1.kernel[...][:, ~off], axis=0))


class LinenAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=16)(x, x)
        return nn.Dense(3)(h.mean(axis=1))


class NNXAttention(nnx.Module):
    def __init__(self, rngs):
        self.attn = nnx.MultiHeadAttention(num_heads=4, in_features=8, qkv_features=16, decode=False, rngs=rngs)
        self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(self.attn(x).mean(axis=1))


def test_attention_heads_as_players_equal_zeroed_output_projections():
    """A dropped head contributes nothing to the output projection: the game equals the model with that head's
    slice of the projection kernel zeroed (Linen and NNX)."""
    x = jax.random.normal(jax.random.key(7), (12, 5, 8))
    y = jnp.arange(12) % 3
    model = LinenAttention()
    variables = model.init(jax.random.key(8), x)
    fn, layout = g.network_game(model, variables, x, y, layers=["MultiHeadDotProductAttention_0:heads"],
                                metric="neg_loss")
    assert layout.layers == (("MultiHeadDotProductAttention_0:heads", 4),)
    net = NNXAttention(nnx.Rngs(9))
    fn2, layout2 = g.network_game(net, None, x, y, layers=["attn:heads"], metric="neg_loss")
    assert layout2.num_players == 4
    for m in _masks(layout, 70, n=3):
        keep = jnp.asarray(m, jnp.float32)[:, None, None]
        params = jax.tree.map(lambda a: a, variables["params"])
        out = params["MultiHeadDotProductAttention_0"]["out"]
        params["MultiHeadDotProductAttention_0"]["out"] = {**out, "kernel": out["kernel"] * keep}
        want = metric_value(model.apply({"params": params}, x), y, "neg_loss")
        np.testing.assert_allclose(fn(jnp.asarray(m)), want, rtol=1e-5, atol=1e-6)
        zeroed = nnx.clone(net)
        zeroed.attn.out.kernel[...] = zeroed.attn.out.kernel[...] * keep
        np.testing.assert_allclose(fn2(jnp.asarray(m)), metric_value(zeroed(x), y, "neg_loss"), rtol=1e-5, atol=1e-6)
    att = g.estimate(jax.random.key(0), fn2, 4, "shapley", evaluations=64)
    assert att.values.shape == (4,)
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['head:heads'\]"):
        g.network_game(net, None, x, y, layers=["head:heads"])


def test_attention_heads_with_mean_fills_equal_a_hand_written_attention():
    """Mean fill: a dropped head's output (before the projection) is its mean over examples and positions;
    the oracle recomputes each head from the captured query, key and value projections."""
    x = jax.random.normal(jax.random.key(11), (10, 5, 8))
    y = jnp.arange(10) % 3
    model = LinenAttention()
    variables = model.init(jax.random.key(12), x)
    _, cap = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    inner = cap["intermediates"]["MultiHeadDotProductAttention_0"]
    q, k, v = (inner[n]["__call__"][0] for n in ("query", "key", "value"))  # [N, L, heads, head_dim]
    weights = jax.nn.softmax(jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(q.shape[-1]), axis=-1)
    heads = jnp.einsum("nhqk,nkhd->nqhd", weights, v)
    fill = heads.mean(axis=(0, 1))
    p = variables["params"]
    fn, layout = g.network_game(model, variables, x, y, layers=["MultiHeadDotProductAttention_0:heads"],
                                metric="neg_loss", masked_value="mean")
    for m in _masks(layout, 80, n=3):
        h = jnp.where(jnp.asarray(m)[None, None, :, None], heads, fill[None, None])
        out = jnp.einsum("nqhd,hdf->nqf", h, p["MultiHeadDotProductAttention_0"]["out"]["kernel"])
        out = out + p["MultiHeadDotProductAttention_0"]["out"]["bias"][None, None]
        logits = out.mean(axis=1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"][None]
        np.testing.assert_allclose(fn(jnp.asarray(m)), metric_value(logits, y, "neg_loss"), rtol=1e-4, atol=1e-5)


def test_a_layer_named_twice_and_a_float_mask_are_refused(linen, mlp):
    """A repeated layer would double the players (the first copy's players dummies); 0.3 is not "kept"."""
    model, variables, x, y = linen
    with pytest.raises(ValueError, match=r"\['Dense_0'\] named more than once"):
        g.network_game(model, variables, x, y, layers=["Dense_0", "Dense_0"])
    net, x2, y2 = mlp
    with pytest.raises(ValueError, match=r"\['fc1'\] named more than once"):
        g.network_game(net, None, x2, y2, layers=["fc1", "blocks/0", "fc1"])
    _, layout = g.network_game(model, variables, x, y, layers=["block1/BatchNorm_0", "Dense_0"])
    for bad in (np.full(12, 0.3), np.full(12, 1.0)):
        with pytest.raises(ValueError, match="must be boolean"):
            compact(model, variables, layout, bad, x=x)
        with pytest.raises(ValueError, match="must be boolean"):
            masked_variables(variables, layout, bad)
    np.testing.assert_allclose(compact(model, variables, layout, np.ones(12, int), x=x)(x),
                               model.apply(variables, x), rtol=1e-5, atol=1e-5)  # 0/1 integers are a mask
