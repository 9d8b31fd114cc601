"""Coupled players (gtap_jax/network/coupling.py): the groups a residual link ties together, found in one traced
pass of a Linen ResNet and an NNX transformer, and their games against passes that silence every member by hand."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gtap_jax as g
from gtap_jax.network import adapt, compact, metric_value


def _silenced(h, name, masks):
    if masks is None or name not in masks:
        return h
    return h * masks[name].astype(h.dtype).reshape((1,) * (h.ndim - 1) + (-1,))


class ResBlock(nn.Module):
    features: int
    project: bool = False  # (not decided from the widths: a smaller network has other widths)

    @nn.compact
    def __call__(self, x, masks=None, group=None):
        h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (3, 3))(x)))
        h = _silenced(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (3, 3))(h)), group, masks)
        if self.project:  # a projection shortcut writes the new stream too
            x = _silenced(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (1, 1))(x)), group, masks)
        return nn.relu(x + h)


class ResNet(nn.Module):
    """``masks``: the independent pass, each stream's channels silenced where each block writes them."""

    @nn.compact
    def __call__(self, x, masks=None):
        x = nn.Conv(8, (3, 3), name="stem")(x)
        x = nn.relu(_silenced(nn.BatchNorm(use_running_average=True, name="stem_bn")(x), "stem:group", masks))
        x = ResBlock(8, name="b1")(x, masks, "stem:group")
        x = ResBlock(16, project=True, name="b2")(x, masks, "b2/Conv_1:group")
        x = ResBlock(16, name="b3")(x, masks, "b2/Conv_1:group")
        return nn.Dense(3, name="head")(x.mean(axis=(1, 2)))


def _ln(norm, x, keep):
    """``norm`` (an nnx.LayerNorm) over the kept features only: a dropped feature of the stream is absent."""
    if keep is None:
        return norm(x)
    k = keep.astype(x.dtype).reshape(1, 1, -1)
    mean = (x * k).sum(-1, keepdims=True) / k.sum()
    var = (((x - mean) * k) ** 2).sum(-1, keepdims=True) / k.sum()
    scale, bias = norm.scale[...].reshape(1, 1, -1), norm.bias[...].reshape(1, 1, -1)
    return ((x - mean) / jnp.sqrt(var + norm.epsilon) * scale + bias) * k


def _m(h, keep):
    return h if keep is None else h * keep.astype(h.dtype).reshape((1,) * (h.ndim - 1) + (-1,))


class Block(nnx.Module):
    def __init__(self, d, rngs):
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=d, decode=False, rngs=rngs)
        self.up, self.down = nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x, keep=None, up_gate=None):
        x = x + _m(self.attn(_ln(self.ln1, x, keep)), keep)
        return x + _m(self.down(nnx.gelu(_m(self.up(_ln(self.ln2, x, keep)), up_gate))), keep)


class Transformer(nnx.Module):
    """Token embedding, position embedding, two pre-norm blocks, a final norm; ``keep``: the stream's features kept
    (the independent pass: dropped ones silenced where each module writes them, the norms over the kept ones)."""

    def __init__(self, rngs):
        self.embed = nnx.Linear(4, 8, rngs=rngs)
        self.pos = nnx.Param(jax.random.normal(jax.random.key(9), (1, 5, 8)))
        self.blocks = nnx.List([Block(8, rngs), Block(8, rngs)])
        self.norm, self.head = nnx.LayerNorm(8, rngs=rngs), nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x, keep=None, up_gate=None):
        x = _m(self.embed(x), keep) + self.pos[...]
        for i, block in enumerate(self.blocks):
            x = block(x, keep, up_gate if i == 0 else None)
        return self.head(_ln(self.norm, x, keep).mean(axis=1))


@pytest.fixture(scope="module")
def resnet():
    x = jax.random.normal(jax.random.key(0), (12, 8, 8, 1))
    model = ResNet()
    variables = model.init(jax.random.key(1), x)
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree.map(lambda a: a + 0.3, variables["batch_stats"])}  # not the identity
    return model, variables, x, jnp.arange(12) % 3


def test_groups_of_a_resnet_and_a_transformer(resnet):
    model, variables, x, _ = resnet
    groups = [group.members for group in adapt(model, variables).coupled(x)]
    assert ("b1/BatchNorm_1", "b1/Conv_1", "stem", "stem_bn") in groups  # the first stage's stream
    assert ("b2/BatchNorm_1", "b2/BatchNorm_2", "b2/Conv_1", "b2/Conv_2", "b3/BatchNorm_1", "b3/Conv_1") in groups
    assert ("b1/BatchNorm_0", "b1/Conv_0") in groups and ("head",) in groups  # inside a block: its own channels
    stream = ("blocks/0/attn/out", "blocks/0/down", "blocks/0/ln1", "blocks/0/ln2", "blocks/1/attn/out",
              "blocks/1/down", "blocks/1/ln1", "blocks/1/ln2", "embed", "norm")
    t_groups = [group.members for group in adapt(Transformer(nnx.Rngs(0)), None).coupled(jnp.ones((2, 5, 4)))]
    assert stream in t_groups and ("blocks/0/up",) in t_groups and ("blocks/1/attn/query",) in t_groups


def test_a_group_is_silenced_at_every_member(resnet):
    model, variables, x, y = resnet
    layers = ["stem:group", "b2/Conv_1:group", "b1/Conv_0"]
    fn, layout = g.network_game(model, variables, x, y, layers=layers, metric="neg_loss")
    assert layout.layers == (("stem:group", 8), ("b2/Conv_1:group", 16), ("b1/Conv_0", 8))
    for seed in range(3):
        mask = np.asarray(jax.random.bernoulli(jax.random.key(seed), 0.6, (layout.num_players,)))
        masks = layout.split(mask)
        by_hand = {k: v for k, v in masks.items() if k.endswith(":group")}
        inner = masks["b1/Conv_0"]  # a single module: silenced at its output, as every layer

        def silence_inner(next_fun, args, kwargs, context, inner=inner):
            out = next_fun(*args, **kwargs)
            return out * inner.reshape(1, 1, 1, -1) if "/".join(context.module.path) == "b1/Conv_0" else out

        with nn.intercept_methods(silence_inner):
            logits = model.apply(variables, x, masks=by_hand)
        np.testing.assert_allclose(fn(jnp.asarray(mask)), metric_value(logits, y, "neg_loss"), rtol=1e-5, atol=1e-6)

    net = Transformer(nnx.Rngs(0))
    tokens = jax.random.normal(jax.random.key(3), (10, 5, 4))
    fn, layout = g.network_game(net, None, tokens, jnp.arange(10) % 3, layers=["embed:group", "blocks/0/up"],
                                metric="neg_loss")
    for seed in range(3):
        mask = np.array(jax.random.bernoulli(jax.random.key(seed), 0.6, (layout.num_players,)))
        mask[8:] = True  # every up unit kept: the hand-written pass silences the stream only
        want = net(tokens, keep=jnp.asarray(mask[:8]))
        np.testing.assert_allclose(fn(jnp.asarray(mask)), metric_value(want, jnp.arange(10) % 3, "neg_loss"),
                                   rtol=1e-5, atol=1e-6)
    assert not np.allclose(fn(jnp.asarray(mask)), fn(jnp.ones(layout.num_players, bool)))  # it did silence some


def test_a_smaller_network_drops_each_group_everywhere(resnet):
    model, variables, x, _ = resnet
    net = adapt(model, variables)
    layout = net.layout(["stem:group", "b2/Conv_1:group", "b1/Conv_0:group"], x)
    mask = np.array(jax.random.bernoulli(jax.random.key(5), 0.6, (layout.num_players,)))
    done = compact(net, None, layout, mask, x=x)  # it reproduces the masked network, or raises
    small, error = done.network, done.max_error
    keep = layout.split(mask)
    params = small.variables["params"]
    assert params["stem"]["kernel"].shape[-1] == keep["stem:group"].sum()  # a member's outputs
    assert params["b2"]["Conv_0"]["kernel"].shape[-2] == keep["stem:group"].sum()  # a consumer's inputs
    assert small.variables["batch_stats"]["b3"]["BatchNorm_1"]["mean"].shape == (keep["b2/Conv_1:group"].sum(),)
    assert params["head"]["kernel"].shape == (keep["b2/Conv_1:group"].sum(), 3)
    assert error < 1e-4 and small.num_params() < net.num_params()

    t = adapt(Transformer(nnx.Rngs(0)), None)
    tokens = jax.random.normal(jax.random.key(3), (10, 5, 4))
    layout = t.layout(["embed:group", "blocks/0/up:group", "blocks/1/up:group", "blocks/1/attn:heads"], tokens)
    mask = np.array(jax.random.bernoulli(jax.random.key(6), 0.6, (layout.num_players,)))
    mask[-2:] = [True, False]  # one of block 1's two heads
    done = compact(t, None, layout, mask, x=tokens)
    small, error = done.network, done.max_error
    width = int(layout.split(mask)["embed:group"].sum())
    assert small.model.pos[...].shape == (1, 5, width)  # a variable that carries the stream
    assert small.model.blocks[1].attn.query.kernel[...].shape == (width, 1, 4)  # one head of 4 left
    assert small.model.blocks[1].attn.out.kernel[...].shape == (1, 4, width)
    assert small.model.blocks[0].down.kernel[...].shape == (layout.split(mask)["blocks/0/up:group"].sum(), width)
    assert error < 1e-4 and small.num_params() < t.num_params()


class _Chain(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(5, (3, 3), name="conv")(x)).mean((1, 2))
        return nn.Dense(3, name="out")(nn.relu(nn.Dense(6, name="fc")(h)))


def test_a_smaller_network_unchecked_is_the_checked_one_and_runs_nothing(resnet, monkeypatch):
    """``check=False`` (the cost step counts parameters and FLOPs) builds the same network, of groups (whose
    BatchNorms hold a group's variables: the trace decides how to narrow them) or of a chain, running neither it
    nor the masked network on x."""
    from gtap_jax.network.modules import shrink_groups

    model, variables, x, _ = resnet
    chain, traced = _Chain(), []
    real_traces = shrink_groups.traces
    monkeypatch.setattr(shrink_groups, "traces", lambda small, x: traced.append(real_traces(small, x)) or traced[-1])
    for net, layers in ((adapt(model, variables), ["stem:group", "b2/Conv_1:group"]),
                        (adapt(chain, chain.init(jax.random.key(2), x)), ["conv", "fc"])):
        layout = net.layout(layers, x)
        mask = np.array(jax.random.bernoulli(jax.random.key(5), 0.6, (layout.num_players,)))
        checked = net.smaller(layout, mask, x=x)
        predict = type(net).predict

        def traced_only(self, inputs, *args, _predict=predict, **kw):
            if not isinstance(inputs, jax.core.Tracer):
                pytest.fail("an unchecked smaller network ran")
            return _predict(self, inputs, *args, **kw)

        with monkeypatch.context() as m:
            m.setattr(type(net), "predict", traced_only)
            m.setattr(type(net), "masked_logits", lambda *a, **k: lambda *b: pytest.fail("the masked network ran"))
            unchecked = net.smaller(layout, mask, x=x, check=False)
        assert unchecked.num_params() == checked.num_params() < net.num_params()
        jax.tree.map(np.testing.assert_array_equal, unchecked.variables, checked.variables)
    assert traced == [True]  # the ResNet's narrowed BatchNorms trace as they are; the chain has no holders


class LinenAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(8)(x)
        h = h + nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=8, name="attn")(h)
        return nn.Dense(3)(h.mean(1))


def test_a_smaller_linen_attention_drops_heads_and_stream_channels():
    tokens = jax.random.normal(jax.random.key(3), (10, 5, 4))
    model = LinenAttention()
    net = adapt(model, model.init(jax.random.key(0), tokens))
    layout = net.layout(["attn:heads", "Dense_0:group"], tokens)
    mask = np.ones(layout.num_players, bool)
    mask[[1, 2, 6]] = False  # heads 1 and 2, stream channel 2
    done = compact(net, None, layout, mask, x=tokens)
    small, error = done.network, done.max_error
    assert small.variables["params"]["attn"]["query"]["kernel"].shape == (7, 2, 2)
    assert small.variables["params"]["attn"]["out"]["kernel"].shape == (2, 2, 7)
    assert error < 1e-4
    mask[:4] = False  # no head left: one silent head stands for the attention (its output projection's bias stays)
    done = compact(net, None, layout, mask, x=tokens)
    small, error = done.network, done.max_error
    assert small.variables["params"]["attn"]["query"]["kernel"].shape == (7, 1, 2) and error < 1e-4


def test_what_groups_refuse(resnet):
    model, variables, x, y = resnet
    with pytest.raises(ValueError, match="not a leaf module"):
        g.network_game(model, variables, x, y, layers=["b1:group"])
    with pytest.raises(ValueError, match="overlaps"):
        g.network_game(model, variables, x, y, layers=["stem:group", "stem_bn"])
    with pytest.raises(ValueError, match="zeros"):
        g.network_game(model, variables, x, y, layers=["stem:group"], masked_value="mean")
    net = adapt(model, variables)
    layout = net.layout(["stem:group", "b1/Conv_0"], x)
    with pytest.raises(ValueError, match="single modules"):
        net.smaller(layout, np.ones(16, bool), x=x)
    layout = net.layout(["stem:group"], x)
    with pytest.raises(ValueError, match="keeps none"):
        net.smaller(layout, np.zeros(8, bool), x=x)
    with pytest.raises(ValueError, match="coupled groups"):
        net.masked_weights(layout, np.ones(8, bool))


def test_a_member_named_alone_warns_and_a_concatenated_group_is_refused(resnet):
    """Naming one member of a coupled group silences its own output only: a warning names the group. A group whose
    features are concatenated with others along the feature axis cannot be followed past it: an error."""
    import warnings

    model, variables, x, _ = resnet
    net = adapt(model, variables)
    member = r"'stem' is one member of the coupled group \['b1/BatchNorm_1', .*'stem:group'"
    with pytest.warns(UserWarning, match=member):
        net.layout(["stem", "b1/Conv_0"], x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.layout(["stem:group", "b1/Conv_0"], x)  # the group itself, and a member of a group of one

    class Concatenated(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(4, name="a")(x)
            h = h + nn.Dense(4, name="b")(h)  # a and b: one group
            return nn.Dense(3, name="out")(jnp.concatenate([h, nn.Dense(2, name="c")(x)], axis=-1))

    model, xs = Concatenated(), jnp.ones((2, 5))
    net = adapt(model, model.init(jax.random.key(0), xs))
    with pytest.raises(ValueError, match=r"'a:group': the features of its group \['a', 'b'\] are concatenated"):
        net.layout(["a:group"], xs)
    assert net.layout(["c"], xs).num_players == 2  # a plain layer stays a plain layer


def test_weight_baselines_of_a_group_through_the_documented_call(resnet):
    """magnitude_scores on ``"stem:group"`` from the model and its variables: the L2 norm over every member's kernel
    column of the feature (stem and b1/Conv_1 produce the stream), once x traces the group; without x, an error
    that says so."""
    from gtap_jax.baselines import magnitude_scores, taylor_scores

    model, variables, x, y = resnet
    layout = adapt(model, variables).layout(["stem:group"], x)
    with pytest.raises(ValueError, match="call layout\\(layers, x\\) on this network first"):
        magnitude_scores(model, variables, layout)
    p = variables["params"]
    by_hand = np.sqrt(sum(np.sum(np.asarray(k).reshape(-1, 8) ** 2, 0) for k in (p["stem"]["kernel"],
                                                                               p["b1"]["Conv_1"]["kernel"])))
    np.testing.assert_allclose(magnitude_scores(model, variables, layout, x=x), by_hand, rtol=1e-6)
    assert np.all(taylor_scores(model, variables, x, y, layout) > 0)


def test_gate_and_leave_one_out_scores_equal_hand_computed_ones():
    """The baselines a reviewer expects for heads and channels: a gate's gradient on a feed-forward layer (a gate
    multiplying its module's outputs, where the game silences them, as Michel et al.'s on heads), leave-one-out on
    the transformer's stream."""
    import optax

    from gtap_jax.baselines import gate_scores, leave_one_out_scores

    net = Transformer(nnx.Rngs(0))
    tokens, y = jax.random.normal(jax.random.key(3), (10, 5, 4)), jnp.arange(10) % 3

    @jax.jit
    def losses(keep=None, up_gate=None):
        return optax.softmax_cross_entropy_with_integer_labels(net(tokens, keep=keep, up_gate=up_gate), y)

    layout = adapt(net, None).layout(["blocks/0/up"], tokens)
    by_hand = np.abs(np.asarray(jax.jit(jax.jacrev(lambda gate: losses(up_gate=gate)))(jnp.ones(32)))).mean(0)
    np.testing.assert_allclose(gate_scores(net, None, tokens, y, layout, chunk=4), by_hand, rtol=1e-4, atol=1e-7)
    layout = adapt(net, None).layout(["embed:group"], tokens)
    full = float(losses(jnp.ones(8)).mean())
    without = np.array([float(losses(jnp.ones(8).at[i].set(0.0)).mean()) for i in range(8)])
    np.testing.assert_allclose(leave_one_out_scores(net, None, tokens, y, layout), without - full, rtol=1e-4,
                               atol=1e-6)
    assert np.all(np.isfinite(gate_scores(net, None, tokens, y, layout)))


def test_norms_and_dense_layers_are_found_by_what_they_compute():
    """weights.norm_like and dense_like on one call's arrays: an RMSNorm scaled by 1 + scale (Gemma's), a LayerNorm
    with a bias, each with its epsilon read back; an identity (a dropout) and a Dense are no norm; a kernel stored
    [out, in] is a transposed Dense."""
    from gtap_jax.network.modules.weights import dense_like, norm_like

    x = np.asarray(jax.random.normal(jax.random.key(0), (6, 5, 8))) * 3.0 + 1.0
    scale, bias = np.linspace(-0.5, 0.5, 8), np.linspace(1.0, 2.0, 8)
    rms = x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-6) * (1.0 + scale)
    centred = x - x.mean(-1, keepdims=True)
    layer = centred / np.sqrt(np.mean(centred**2, -1, keepdims=True) + 1e-5) * scale + bias
    found = norm_like({"scale": scale}, x, rms)
    assert (found.center, found.scale, found.offset, found.bias) == (False, "scale", 1.0, None)
    assert found.epsilon == pytest.approx(1e-6, abs=1e-7)
    found = norm_like({"w": scale, "b": bias}, x, layer)
    assert (found.center, found.scale, found.offset, found.bias) == (True, "w", 0.0, "b")
    assert found.epsilon == pytest.approx(1e-5, rel=0.05)
    kernel = np.asarray(jax.random.normal(jax.random.key(1), (8, 8)))
    assert norm_like({"scale": scale}, x, x) is None and norm_like({"kernel": kernel}, x, x @ kernel) is None
    assert dense_like({"kernel": kernel}, x, x @ kernel) is False
    assert dense_like({"kernel": kernel}, x, x @ kernel.T) is True and dense_like({"kernel": kernel}, x, rms) is None
