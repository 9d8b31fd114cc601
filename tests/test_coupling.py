"""Coupled players (gtap_jax/network/coupling.py): the groups a residual link ties together, found in one traced
pass of a Linen ResNet and an NNX transformer, and their games against passes that silence every member by hand."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gtap_jax as g
from gtap_jax.network import adapt, metric_value


def _silenced(h, name, masks):
    if masks is None or name not in masks:
        return h
    return h * masks[name].astype(h.dtype).reshape((1,) * (h.ndim - 1) + (-1,))


class ResBlock(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, masks=None, group=None):
        h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (3, 3))(x)))
        h = _silenced(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (3, 3))(h)), group, masks)
        if x.shape[-1] != self.features:  # a projection shortcut writes the new stream too
            x = _silenced(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (1, 1))(x)), group, masks)
        return nn.relu(x + h)


class ResNet(nn.Module):
    """``masks``: the independent pass, each stream's channels silenced where each block writes them."""

    @nn.compact
    def __call__(self, x, masks=None):
        x = nn.Conv(8, (3, 3), name="stem")(x)
        x = nn.relu(_silenced(nn.BatchNorm(use_running_average=True, name="stem_bn")(x), "stem:group", masks))
        x = ResBlock(8, name="b1")(x, masks, "stem:group")
        x = ResBlock(16, name="b2")(x, masks, "b2/Conv_1:group")
        x = ResBlock(16, name="b3")(x, masks, "b2/Conv_1:group")
        return nn.Dense(3, name="head")(x.mean(axis=(1, 2)))


class Block(nnx.Module):
    def __init__(self, d, rngs):
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=d, decode=False, rngs=rngs)
        self.up, self.down = nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x, m=lambda h: h):
        x = x + m(self.attn(m(self.ln1(x))))
        return x + m(self.down(nnx.gelu(self.up(m(self.ln2(x))))))


class Transformer(nnx.Module):
    """Token embedding, position embedding, two pre-norm blocks, a final norm; ``masks`` silence the stream."""

    def __init__(self, rngs):
        self.embed = nnx.Linear(4, 8, rngs=rngs)
        self.pos = nnx.Param(jax.random.normal(jax.random.key(9), (1, 5, 8)))
        self.blocks = nnx.List([Block(8, rngs), Block(8, rngs)])
        self.norm, self.head = nnx.LayerNorm(8, rngs=rngs), nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x, masks=None):
        def m(h):
            return _silenced(h, "embed:group", masks)

        x = m(self.embed(x)) + self.pos[...]
        for block in self.blocks:
            x = block(x, m)
        return self.head(m(self.norm(x)).mean(axis=1))


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
    groups = adapt(model, variables).coupled(x)
    assert ("b1/BatchNorm_1", "b1/Conv_1", "stem", "stem_bn") in groups  # the first stage's stream
    assert ("b2/BatchNorm_1", "b2/BatchNorm_2", "b2/Conv_1", "b2/Conv_2", "b3/BatchNorm_1", "b3/Conv_1") in groups
    assert ("b1/BatchNorm_0", "b1/Conv_0") in groups and ("head",) in groups  # inside a block: its own channels
    stream = ("blocks/0/attn/out", "blocks/0/down", "blocks/0/ln1", "blocks/0/ln2", "blocks/1/attn/out",
              "blocks/1/down", "blocks/1/ln1", "blocks/1/ln2", "embed", "norm")
    t_groups = adapt(Transformer(nnx.Rngs(0)), None).coupled(jnp.ones((2, 5, 4)))
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
        want = net(tokens, masks={"embed:group": mask[:8]})
        np.testing.assert_allclose(fn(jnp.asarray(mask)), metric_value(want, jnp.arange(10) % 3, "neg_loss"),
                                   rtol=1e-5, atol=1e-6)
    assert not np.allclose(fn(jnp.asarray(mask)), fn(jnp.ones(layout.num_players, bool)))  # it did silence some


def test_what_groups_refuse(resnet):
    model, variables, x, y = resnet
    with pytest.raises(ValueError, match="not a leaf module"):
        g.network_game(model, variables, x, y, layers=["b1:group"])
    with pytest.raises(ValueError, match="overlaps"):
        g.network_game(model, variables, x, y, layers=["stem:group", "stem_bn"])
    with pytest.raises(ValueError, match="zeros"):
        g.network_game(model, variables, x, y, layers=["stem:group"], masked_value="mean")
    net = adapt(model, variables)
    layout = net.layout(["stem:group"], x)
    with pytest.raises(ValueError, match="coupled groups"):
        net.smaller(layout, np.ones(8, bool), x=x)
