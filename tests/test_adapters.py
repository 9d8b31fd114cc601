"""The model contract over every registered adapter (``ADAPTERS``): a newly registered adapter is tested here the
moment it is registered, and must bring an example (``EXAMPLES``) to be.

Each example is a small model with a hand-written masked forward pass (its oracle): the game equals it,
the smaller network (for ``Shrinkable`` adapters) computes it, the sizes add up, the network survives a
checkpoint and ``adapt(net.model, net.variables)``, and an adapter declares no member it cannot serve. The
function adapter (tests/function_adapter.py) is registered here, as a new framework's would be: one line.
"""

import inspect
import typing
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from function_adapter import ADAPTER as FUNCTION_ADAPTER
from function_adapter import FunctionModel

from gtap_jax.layout import PlayerLayout
from gtap_jax.models import MLP
from gtap_jax.network import (
    ADAPTERS,
    Network,
    Shrinkable,
    Trainable,
    adapt,
    adapter_for,
    compact,
    count_params,
    init_params,
    metric_value,
    network_game,
    restore,
)
from gtap_jax.network.linen import TrainedModule

ADAPTERS["function"] = FUNCTION_ADAPTER  # a new framework: its folder (here, one file) and this line


def _mask(h, masks, name):
    return h if masks is None else h * jnp.expand_dims(masks[name], tuple(range(h.ndim - 1)))


def _linen_mlp(x, masks):
    """Dense(6) -> relu -> Dense(5) -> relu -> Dense(3), its two hidden layers masked by hand when asked."""
    h = _mask(nn.relu(nn.Dense(6, name="fc1")(x)), masks, "fc1")
    h = _mask(nn.relu(nn.Dense(5, name="fc2")(h)), masks, "fc2")
    return nn.Dense(3, name="out")(h)


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, masks=None):
        return _linen_mlp(x, masks)


class TrainedMLP(TrainedModule):
    """The same, as a built-in Linen model would be (gtap_jax trains it)."""

    @nn.compact
    def __call__(self, x, masks=None, train: bool = False):
        return _linen_mlp(x, masks)


class NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.fc1, self.fc2, self.out = nnx.Linear(4, 6, rngs=rngs), nnx.Linear(6, 5, rngs=rngs), nnx.Linear(5, 3,
                                                                                                             rngs=rngs)

    def __call__(self, x, masks=None):
        h = _mask(nnx.relu(self.fc1(x)), masks, "fc1")
        return self.out(_mask(nnx.relu(self.fc2(h)), masks, "fc2"))


def _function(params, x, tap):
    h = tap("fc1", jax.nn.relu(x @ params["w1"]))
    h = tap("fc2", jax.nn.relu(h @ params["w2"]))
    return h @ params["w3"]


class Example(NamedTuple):
    model: object
    variables: object
    layers: list
    oracle: object  # (masks or None) -> logits on X


X = jax.random.normal(jax.random.key(0), (16, 4))
Y = jnp.arange(16) % 3


def _staged():
    model = MLP(hidden=(6, 5), num_classes=3)
    params = init_params(jax.random.key(1), model, (4,))
    return Example(model, params, ["fc1", "fc2"], lambda m: model.apply({"params": params}, X, masks=m))


def _linen(cls):
    def make():
        model = cls()
        variables = model.init(jax.random.key(1), X)
        return Example(model, variables, ["fc1", "fc2"], lambda m: model.apply(variables, X, masks=m))

    return make


def _nnx():
    model = NNXMLP(nnx.Rngs(1))
    return Example(model, None, ["fc1", "fc2"], lambda m: model(X, masks=m))


def _pure_function():
    keys = jax.random.split(jax.random.key(1), 3)
    params = {name: jax.random.normal(k, shape) for name, k, shape in
              zip(("w1", "w2", "w3"), keys, ((4, 6), (6, 5), (5, 3)), strict=True)}
    return Example(FunctionModel(_function), params, ["fc1", "fc2"],
                   lambda m: _function(params, X, lambda n, h: _mask(h, m, n)))


EXAMPLES = {"staged": _staged, "linen": _linen(LinenMLP), "linen_trained": _linen(TrainedMLP), "nnx": _nnx,
            "function": _pure_function}


def test_every_registered_adapter_brings_an_example():
    assert set(EXAMPLES) == set(ADAPTERS)


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(request):
    found = EXAMPLES[request.param]()
    return request.param, found, adapt(found.model, found.variables)


def _random_masks(layout: PlayerLayout, count: int, seed: int) -> np.ndarray:
    masks = np.random.default_rng(seed).random((count, layout.num_players)) < 0.6
    masks[:, 0] = True  # no layer emptied (a smaller Flax layer keeps a dead unit, not none)
    masks[:, 6] = True
    return masks


def test_the_adapter_is_the_registered_one_and_serves_what_it_declares(example):
    """The most specific registered class wins (a built-in model is a Linen module too); every member of a
    protocol the network satisfies is real code, none a stub that raises NotImplementedError."""
    name, found, net = example
    assert adapter_for(found.model) is ADAPTERS[name] and isinstance(net, Network)
    for protocol in (Network, Shrinkable, Trainable):
        if isinstance(net, protocol):
            for member in typing._get_protocol_attrs(protocol):
                code = inspect.getattr_static(type(net), member, None)
                code = getattr(code, "fget", code)
                if callable(code):
                    assert "NotImplementedError" not in inspect.getsource(code), (name, member)
    assert isinstance(net, Trainable) == (name in ("staged", "linen_trained"))
    assert isinstance(net, Shrinkable) == (name != "function")


def test_the_game_equals_the_hand_written_masked_pass(example):
    _, found, net = example
    value, layout = network_game(found.model, found.variables, X, Y, layers=found.layers, metric="neg_loss")
    assert layout.layers == (("fc1", 6), ("fc2", 5))
    for mask in _random_masks(layout, 4, 0):
        masks = {n: jnp.asarray(m) for n, m in layout.split(mask).items()}
        want = float(metric_value(found.oracle(masks), Y, "neg_loss"))
        np.testing.assert_allclose(float(value(jnp.asarray(mask))), want, rtol=1e-5)


class TestMaskedLogits(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jitted_or_not_they_equal_the_oracle(self):
        for name in sorted(EXAMPLES):
            found = EXAMPLES[name]()
            net = adapt(found.model, found.variables)
            layout = net.layout(found.layers, X)
            forward = self.variant(net.masked_logits(layout, X))
            for mask in _random_masks(layout, 2, 1):
                masks = {n: jnp.asarray(m) for n, m in layout.split(mask).items()}
                chex.assert_trees_all_close(forward(masks, None), found.oracle(masks), rtol=1e-5, atol=1e-6,
                                            custom_message=name)


def test_the_smaller_network_computes_the_masked_one_and_sizes_add_up(example):
    name, found, net = example
    layout = net.layout(found.layers, X)
    assert net.num_params() == count_params(net.params)
    if not isinstance(net, Shrinkable):
        with pytest.raises(TypeError, match="not Shrinkable"):
            compact(found.model, found.variables, layout, np.ones(layout.num_players, bool), x=X)
        return
    for mask in _random_masks(layout, 3, 2):
        small = compact(found.model, found.variables, layout, mask, x=X, input_shape=(4,))
        masks = {n: jnp.asarray(m) for n, m in layout.split(mask).items()}
        chex.assert_trees_all_close(small(X), found.oracle(masks), rtol=1e-5, atol=1e-5, custom_message=name)
        assert small.max_error < 1e-5
        kept = {n: int(m.sum()) for n, m in layout.split(mask).items()}
        assert small.kept == kept and small.report.neurons_after == sum(kept.values())
        # an MLP's parameters, counted by hand from the kept widths
        widths = [4, kept["fc1"], kept["fc2"], 3]
        assert small.report.params_after == small.network.num_params() == sum(
            (a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
        assert small.report.params_before == net.num_params() == (4 + 1) * 6 + (6 + 1) * 5 + (5 + 1) * 3
        assert 0 < small.report.flops_after < small.report.flops_before
        if name.startswith("linen"):  # the user's module, its producers narrowed by an interceptor
            with small.network.resized():
                alone = small.model.apply(small.variables, X)
        else:  # a smaller model of its own
            alone = adapt(small.model, small.variables).predict(X)
        chex.assert_trees_all_close(alone, small(X), rtol=1e-6, atol=1e-6)


def test_a_checkpoint_and_adapt_give_the_same_network(example, tmp_path):
    _, found, net = example
    net.save(tmp_path / "ckpt")
    restored = restore(found.model, tmp_path / "ckpt", X)
    chex.assert_trees_all_close(restored.predict(X), net.predict(X), rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(adapt(net.model, net.variables).predict(X), net.predict(X))


def test_a_model_of_no_registered_type_is_refused_naming_the_registered_ones():
    with pytest.raises(TypeError, match=r"no model adapter takes a dict; registered: staged \(.*\), linen"):
        adapt({"w": np.ones(3)})


def test_old_import_paths_work_one_release_with_a_warning_naming_the_new_place():
    import importlib
    import sys

    import gtap_jax.network as network
    from gtap_jax.network.linen import LinenNetwork
    from gtap_jax.network.modules import incremental

    sys.modules.pop("gtap_jax.network.chains", None)
    with pytest.warns(DeprecationWarning, match="network.chains moved to gtap_jax.network.modules.incremental"):
        old = importlib.import_module("gtap_jax.network.chains")
    assert old.RESTART == incremental.RESTART
    with pytest.warns(DeprecationWarning, match="gtap_jax.network.linen.LinenNetwork"):
        assert network.LinenNetwork is LinenNetwork
    found = _linen(LinenMLP)()
    layout = adapt(found.model, found.variables).layout(found.layers, X)
    with pytest.warns(DeprecationWarning, match="compact_flax is deprecated"):
        small = network.compact_flax(found.model, found.variables, X, layout, np.ones(11, bool))
    assert small.params == (4 + 1) * 6 + (6 + 1) * 5 + (5 + 1) * 3 and small.max_error < 1e-6


def test_a_model_that_does_not_return_logits_gets_one_clear_error():
    """The model contract: inputs -> one array of logits [batch, classes] (or [batch, ..., classes] with labels
    [batch, ...]); a tuple, a dict, another batch or logits that do not match the labels are named, with what to
    do."""

    class Returns(nn.Module):
        kind: str

        @nn.compact
        def __call__(self, x):
            h = nn.Dense(3, name="fc1")(x)
            return {"tuple": (h, x), "dict": {"logits": h}, "tokens": h[:, None, :], "batch": h[:1]}[self.kind]

    for kind, message in (("tuple", "returned a tuple; gtap_jax needs one array of logits"),
                          ("dict", r"returned a dict with keys \['logits'\]"),
                          ("tokens", r"logits \(\d+, 1, 3\) do not match the labels \(\d+,\)"),
                          ("batch", r"returned shape \(1, 3\) for a batch of 2")):
        model = Returns(kind)
        with pytest.raises(ValueError, match=message):
            fn, layout = network_game(model, model.init(jax.random.key(0), X), X, Y, layers=["fc1"])
            fn(np.ones(layout.num_players, bool))  # logits per token: checked against the labels when valued
