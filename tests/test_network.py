"""The models contract: every entry of ``MODELS`` (its small version) as a game (prefix caching),
compacted, and with its weights silenced, against independent masked forward passes."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gtap_jax import adapt, compact, evaluate_coalitions, network_game
from gtap_jax.data import synthetic
from gtap_jax.models import MODELS, LeNet5, layout_for, lenet300
from gtap_jax.network import init_params, mean_fills, metric_value

CLASSES = 7  # any number of classes
TEXT_INPUT = (50,)  # for a model whose input the data decides (a vocabulary)


# the staged models (the Linen ones with residual links: tests/test_coupling.py, test_experiment.py's smoke run)
STAGED = [name for name, entry in MODELS.items() if entry.staged]


@pytest.fixture(scope="module", params=STAGED)
def net(request):
    entry = MODELS[request.param]
    model = entry(CLASSES, **entry.small)
    shape = entry.input_shape or TEXT_INPUT
    params = init_params(jax.random.key(0), model, shape)
    ds = synthetic(0, shape, CLASSES, n_train=8, n_test=64)
    return model, params, ds


def _plain_value(model, params, x, y, flat, layout, metric, fills=None):
    logits = model.apply({"params": params}, x, masks=layout.split(jnp.asarray(flat)), fills=fills)
    return float(metric_value(logits, jnp.asarray(y), metric))


@pytest.mark.parametrize("metric", ["accuracy", "neg_loss"])
def test_cached_game_equals_masked_forward(net, metric):
    model, params, ds = net
    sites = list(model.site_sizes())
    for layers in (None, sites[1:], sites[-1:]):
        value, layout = network_game(model, params, ds.x_test, ds.y_test, layers=layers, metric=metric)
        plain, _ = network_game(model, params, ds.x_test, ds.y_test, layers=layers, metric=metric, cache_prefix=False)
        masks = np.random.default_rng(1).random((6, layout.num_players)) < 0.5
        masks[0] = True
        cached = np.asarray(evaluate_coalitions(value, masks))
        np.testing.assert_allclose(cached, np.asarray(evaluate_coalitions(plain, masks)), rtol=1e-5, atol=1e-6)
        for m, got in zip(masks, cached, strict=True):
            want = _plain_value(model, params, ds.x_test, ds.y_test, m, layout, metric)
            assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_mean_masked_value(net):
    model, params, ds = net
    value, layout = network_game(model, params, ds.x_test, ds.y_test, metric="neg_loss", masked_value="mean")
    _, acts = model.apply({"params": params}, jnp.asarray(ds.x_test), capture=True)
    fills = {n: a.reshape(-1, a.shape[-1]).mean(0) for n, a in acts.items()}
    for n, v in mean_fills(adapt(model, params), ds.x_test, layout).items():
        np.testing.assert_allclose(v, fills[n], rtol=1e-6)
    mask = np.random.default_rng(2).random(layout.num_players) < 0.5
    want = _plain_value(model, params, ds.x_test, ds.y_test, mask, layout, "neg_loss", fills)
    assert float(value(jnp.asarray(mask))) == pytest.approx(want, rel=1e-4)
    # Mean-filling every neuron of one layer is not the same as zeroing it.
    zero_value, _ = network_game(model, params, ds.x_test, ds.y_test, metric="neg_loss")
    assert float(value(jnp.asarray(mask))) != pytest.approx(float(zero_value(jnp.asarray(mask))), rel=1e-6)


def test_compact_equals_masked_network(net):
    model, params, ds = net
    rng = np.random.default_rng(3)
    masks = {n: rng.random(s) < 0.5 for n, s in model.site_sizes().items()}
    for n in masks:
        masks[n][0] = True  # no layer empty
    layout = layout_for(model)
    x = jnp.asarray(ds.x_test)
    small = compact(model, params, layout, layout.join(masks), x=x, input_shape=ds.input_shape)
    want = model.apply({"params": params}, x, masks={n: jnp.asarray(m) for n, m in masks.items()})
    got = small.model.apply({"params": small.params}, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert small.max_error < 1e-4 * max(1.0, float(jnp.abs(want).max()))
    assert small.model.site_sizes() == {n: int(m.sum()) for n, m in masks.items()} == small.kept
    r = small.report
    assert r.params_after < r.params_before and r.flops_after < r.flops_before
    assert r.neurons_after == sum(int(m.sum()) for m in masks.values())
    with pytest.warns(DeprecationWarning, match="compact\\(model, params, layout, mask\\)"):  # the old call
        old = compact(model, params, masks, input_shape=ds.input_shape)
    assert old.model == small.model and old.report[:6] == small.report[:6]  # latencies: NaN, not measured


def test_compact_folds_mean_fills_into_biases(net):
    """With masked_value="mean" the compacted network must equal the game's network, fills included."""
    model, params, ds = net
    rng = np.random.default_rng(4)
    masks = {n: rng.random(s) < 0.5 for n, s in model.site_sizes().items()}
    last = list(masks)[-1]
    masks[last][:] = False  # an emptied layer too: its dead unit's fill must still reach the next layer
    layout = layout_for(model)
    fills = mean_fills(adapt(model, params), ds.x_test, layout)
    x = jnp.asarray(ds.x_test)
    want = model.apply({"params": params}, x, masks={n: jnp.asarray(m) for n, m in masks.items()}, fills=fills)
    mask = layout.join(masks)
    if any(s.consumer_padded for s in model.site_specs()):  # AlexNet: conv -> SAME conv cannot fold
        with pytest.raises(ValueError, match="SAME-padded"):
            compact(model, params, layout, mask, fills=fills)
        return
    small = compact(model, params, layout, mask, fills=fills)
    np.testing.assert_allclose(small.model.apply({"params": small.params}, x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compact(model, params, layout, mask, x=x, masked_value="mean")(x), want, rtol=1e-4,
                               atol=1e-4)  # the same fills, computed by compact as the game's "mean"
    zero = compact(model, params, layout, mask)
    assert not np.allclose(zero.model.apply({"params": zero.params}, x), want, atol=1e-3)  # the fold matters


def test_compact_emptied_layer_is_constant(net):
    model, params, ds = net
    masks = {n: np.ones(s, bool) for n, s in model.site_sizes().items()}
    last = list(masks)[-1]
    masks[last][:] = False
    layout = layout_for(model)
    small = compact(model, params, layout, layout.join(masks), input_shape=ds.input_shape)
    x = jnp.asarray(ds.x_test[:50])
    want = model.apply({"params": params}, x, masks={n: jnp.asarray(m) for n, m in masks.items()})
    got = small.model.apply({"params": small.params}, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert small.model.site_sizes()[last] == 1  # one dead unit
    assert small.report.neurons_after == small.report.neurons_before - model.site_sizes()[last]


def test_masked_weights_compute_the_masked_network(net):
    """Each silenced unit's incoming weights 0: through the ReLU it outputs 0 (or its non-negative mean fill)."""
    model, params, ds = net
    layout = layout_for(model)
    mask = np.random.default_rng(6).random(layout.num_players) < 0.5
    x = jnp.asarray(ds.x_test)
    fills = mean_fills(adapt(model, params), ds.x_test, layout)
    for f in (None, fills):
        want = model.apply({"params": params}, x, masks=layout.split(jnp.asarray(mask)), fills=f)
        got = adapt(model, params).masked_weights(layout, mask, f).predict(x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_compact_errors():
    model = lenet300()
    params = init_params(jax.random.key(0), model, (28, 28, 1))
    layout = layout_for(model)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="unknown layer"):
        compact(model, params, {"fc9": np.ones(3, bool)})
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="bool\\[300\\]"):
        compact(model, params, {"fc1": np.ones(3, bool)})
    with pytest.raises(ValueError, match="bool\\[400\\]"):
        compact(model, params, layout, np.ones(3, bool))
    with pytest.raises(ValueError, match="must be boolean"):  # 0.3 is not "kept"
        compact(model, params, layout, np.full(400, 0.3))
    with pytest.raises(ValueError, match="not both"):
        compact(model, params, layout, np.ones(400, bool), fills={}, masked_value="mean", x=np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match="must be boolean"):
        adapt(model, params).smaller(layout_for(model), np.full(400, 0.3))


def test_layout():
    model = LeNet5()
    layout = layout_for(model, ["fc1", "conv2"])
    assert layout.layers == (("conv2", 16), ("fc1", 120))  # network order
    flat = np.zeros(136, bool)
    flat[16 + 5] = True
    parts = layout.split(jnp.asarray(flat))
    assert parts["fc1"].shape == (120,) and bool(parts["fc1"][5]) and not bool(parts["conv2"].any())
    np.testing.assert_array_equal(layout.join({n: np.asarray(m) for n, m in parts.items()}), flat)
    with pytest.raises(ValueError, match="empty"):
        layout_for(model, [])
    with pytest.raises(ValueError, match="unknown layer"):
        layout_for(model, ["fc3"])
    with pytest.raises(ValueError, match=r"\['fc1'\] named more than once"):
        layout_for(model, ["fc1", "fc1"])


def test_game_bad_input(net):
    model, params, ds = net
    with pytest.raises(ValueError, match="unknown metric"):
        network_game(model, params, ds.x_test, ds.y_test, metric="f1")
    with pytest.raises(ValueError, match="masked_value"):
        network_game(model, params, ds.x_test, ds.y_test, masked_value="noise")
    with pytest.raises(ValueError, match="dtype"):
        network_game(model, params, ds.x_test, ds.y_test, dtype="float16")


@pytest.mark.parametrize("cache_prefix", [True, False])
def test_bfloat16_game(net, cache_prefix):
    """The suffix's matmuls run in bfloat16, and its values stay near float32's."""
    model, params, ds = net
    kw = dict(metric="neg_loss", masked_value="mean", cache_prefix=cache_prefix)
    f32, layout = network_game(model, params, ds.x_test, ds.y_test, **kw)
    bf16, _ = network_game(model, params, ds.x_test, ds.y_test, dtype="bfloat16", **kw)
    mask = jnp.asarray(np.random.default_rng(4).random(layout.num_players) < 0.7)
    jaxpr = str(jax.make_jaxpr(bf16)(mask))
    products = [line for line in jaxpr.splitlines() if "dot_general" in line or "conv_general" in line]
    assert products and all("bf16" in line and "f32[" not in line.split("=")[0] for line in products)
    assert bf16(mask).dtype == jnp.float32
    masks = np.random.default_rng(5).random((8, layout.num_players)) < 0.7
    want, got = np.asarray(evaluate_coalitions(f32, masks)), np.asarray(evaluate_coalitions(bf16, masks))
    # bfloat16 keeps 8 bits of mantissa: relative error about 2^-8 per op, a few percent in the loss.
    np.testing.assert_allclose(got, want, rtol=0.05)
    assert not np.array_equal(got, want)


def test_core_imports_no_flax():
    code = (
        "import sys, jax, numpy as np, gtap_jax as g\n"
        "from gtap_jax.games import additive_game\n"
        "g.estimate(jax.random.key(0), additive_game(np.ones(3)), 3, 'shapley', evaluations=16)\n"
        "g.iterated_pruning(jax.random.key(0), additive_game(np.ones(3)), 3, 1, g.by_exact('banzhaf'))\n"
        "assert 'flax' not in sys.modules, 'the core imported flax'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
