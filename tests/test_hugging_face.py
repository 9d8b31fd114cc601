"""Hugging Face Flax models end to end (gtap_jax.network.hf), and attention heads found in the trace for attention
written any way (gtap_jax/network/modules/heads.py): BERT (sequence classification), ViT (image classification) and
GPT-2 (causal LM, a FlaxConv1D model) on tiny random configs, and hand-written Linen and NNX attention.

Oracles: Hugging Face's own head_mask (BERT); zeroing a head's value columns in the parameters (its context is then
0: ViT, GPT-2, the hand-written attention); the smaller network against the masked one, parameter counts by hand.
"""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gtap_jax as g
from gtap_jax.baselines import gate_scores, leave_one_out_scores, magnitude_scores, taylor_scores
from gtap_jax.engine import ChainValueFn, batched_chain_fn
from gtap_jax.network import adapt, hf, metric_value

transformers = pytest.importorskip("transformers", reason="Hugging Face transformers < 5 (the test extra) is absent")
warnings.filterwarnings("ignore", message=".*Flax classes are deprecated.*")

HEADS, DIM, WIDTH = 4, 4, 16
IDS = np.asarray(jax.random.randint(jax.random.key(1), (12, 10), 1, 50))
IMAGES = np.asarray(jax.random.normal(jax.random.key(2), (12, 8, 8, 1)))
LABELS = np.arange(12) % 3
ALLOW = jax.numpy_rank_promotion("allow")


def _bert():
    config = transformers.BertConfig(vocab_size=50, hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=HEADS,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=3)
    return transformers.FlaxBertForSequenceClassification(config, seed=0)


def _vit():
    config = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=WIDTH, num_hidden_layers=2,
                                    num_attention_heads=HEADS, intermediate_size=32, num_labels=3)
    return transformers.FlaxViTForImageClassification(config, seed=0)


def _gpt2():
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=WIDTH, n_layer=2, n_head=HEADS)
    return transformers.FlaxGPT2LMHeadModel(config, seed=0)


def _llama():
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=WIDTH, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=16)
    return transformers.FlaxLlamaForCausalLM(config, seed=0)


def test_llama_grouped_queries_and_its_own_rmsnorm():
    """Llama: grouped-query attention (a player per key / value head and its 2 query heads; oracle: that head's value
    columns 0) and an RMSNorm of its own class in the stream (normalising over the kept features, as a narrower
    stream does: the smaller network reproduces the masked one)."""
    with ALLOW:
        llama = _llama()
    net = hf.network(llama, "last_token")
    layout = net.layout(["model/layers/1/self_attn:heads"], IDS)
    assert layout.num_players == 2 and net.attentions(IDS)[1].group == 2
    keep = np.array([0, 1], bool)
    oracle = hf.network(llama, "last_token")
    oracle = type(oracle)(oracle.model, {"params": _values_zeroed(oracle.params, "model/layers/1/self_attn/v_proj",
                                                                   0, keep)})
    np.testing.assert_allclose(net.predict(IDS, layout.split(keep)), oracle.predict(IDS), atol=1e-5)
    for layers in (["model/layers/0/self_attn:heads", "model/layers/1/mlp/up_proj:group"],
                   ["model/embed_tokens:group"]):
        layout = net.layout(layers, IDS)
        mask = np.random.default_rng(3).random(layout.num_players) < 0.6
        small = g.compact(net, None, layout, mask, x=IDS)
        np.testing.assert_allclose(small.network.predict(IDS), net.predict(IDS, layout.split(mask)), atol=2e-5)


@pytest.fixture(scope="module")
def models():
    """``{name: (Hugging Face model, network, inputs, labels)}``."""
    with ALLOW:  # Hugging Face's code promotes ranks; the tests raise on it in ours
        bert, vit, gpt2 = _bert(), _vit(), _gpt2()
    return {"bert": (bert, hf.network(bert), IDS, LABELS), "vit": (vit, hf.network(vit), IMAGES, LABELS),
            "gpt2": (gpt2, hf.network(gpt2, "last_token"), IDS, IDS[:, -1])}


def test_the_wrapper_gives_the_models_logits(models):
    bert, vit, gpt2 = (models[k][0] for k in ("bert", "vit", "gpt2"))
    padded = IDS.copy()
    padded[:, 7:] = 0
    with ALLOW:
        want = [bert(IDS).logits, vit(IMAGES.transpose(0, 3, 1, 2)).logits, gpt2(IDS).logits[:, -1],
                gpt2(padded, attention_mask=(padded != 0).astype(int)).logits[:, 6],
                metric_value(gpt2(IDS).logits[:, :-1], IDS[:, 1:], "neg_loss")]
    np.testing.assert_allclose(models["bert"][1].predict(IDS), want[0], atol=1e-6)
    np.testing.assert_allclose(models["vit"][1].predict(IMAGES), want[1], atol=1e-6)
    np.testing.assert_allclose(models["gpt2"][1].predict(IDS), want[2], atol=1e-6)
    np.testing.assert_allclose(hf.network(gpt2, "last_token", pad_id=0).predict(padded), want[3], atol=1e-5)
    tokens = hf.network(gpt2, "next_tokens")  # the per-token loss: logits [batch, length - 1, vocabulary]
    fn, _ = g.network_game(tokens, None, IDS, IDS[:, 1:], layers=["transformer/h/0/mlp/c_fc"], metric="neg_loss")
    want = want[4]
    np.testing.assert_allclose(float(fn(np.ones(64, bool))), float(want), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown task 'lm'"):
        hf.network(gpt2, "lm")


def test_heads_are_found_in_each_attention(models):
    owners = {name: [a.owner for a in net.attentions(x)] for name, (_, net, x, _) in models.items()}
    assert owners == {"bert": [f"bert/encoder/layer/{i}/attention/self" for i in (0, 1)],
                      "vit": [f"vit/encoder/layer/{i}/attention/attention" for i in (0, 1)],
                      "gpt2": [f"transformer/h/{i}/attn" for i in (0, 1)]}
    gpt2 = models["gpt2"][1].attentions(IDS)[0]
    assert gpt2.sources == (("transformer/h/0/attn/c_attn", 0), ("transformer/h/0/attn/c_attn", WIDTH),
                            ("transformer/h/0/attn/c_attn", 2 * WIDTH))  # one projection split in three
    assert gpt2.consumers == ("transformer/h/0/attn/c_proj",) and (gpt2.num_heads, gpt2.head_dim) == (HEADS, DIM)


def test_the_head_game_is_hugging_faces_head_mask(models):
    bert, net, x, _ = models["bert"]
    layers = ["bert/encoder/layer/0/attention/self:heads", "bert/encoder/layer/1/attention:heads"]  # any ancestor
    layout = net.layout(layers, x)
    for mask in np.random.default_rng(0).random((3, 2 * HEADS)) < 0.5:
        with ALLOW:
            want = bert(x, head_mask=mask.reshape(2, HEADS).astype(np.float32)).logits
        np.testing.assert_allclose(net.predict(x, layout.split(mask)), want, atol=1e-5)


def _values_zeroed(params, module, offset, keep, transposed=False):
    """``params`` with the value columns of the dropped heads 0: each dropped head's context is 0."""
    params = jax.tree.map(np.array, params)
    node = params
    for part in module.split("/"):
        node = node[part]
    for h in np.flatnonzero(~keep):
        cols = slice(offset + h * DIM, offset + (h + 1) * DIM)
        if transposed:
            node["kernel"][cols, :] = 0
        else:
            node["kernel"][:, cols] = 0
        if "bias" in node:
            node["bias"][cols] = 0
    return params


@pytest.mark.parametrize("name", ["vit", "gpt2"])
def test_the_head_game_silences_each_dropped_heads_context(models, name):
    model, net, x, _ = models[name]
    attention = net.attentions(x)[1]
    value, offset = attention.sources[-1] if name == "gpt2" else next(s for s in attention.sources
                                                                       if s[0].endswith("value"))
    layout = net.layout([attention.owner + ":heads"], x)
    for keep in np.random.default_rng(1).random((3, HEADS)) < 0.5:
        oracle = hf.network(model, net.model.task)
        oracle = type(oracle)(oracle.model, {"params": _values_zeroed(oracle.params, value, offset, keep,
                                                                     name == "gpt2")})
        np.testing.assert_allclose(net.predict(x, layout.split(keep)), oracle.predict(x), atol=1e-5)


# (model, layers): heads, feed-forward units (a plain chain), the residual stream, and heads with groups together
SMALLER = [("bert", ["bert/encoder/layer/0/attention/self:heads", "bert/encoder/layer/1/attention/self:heads"]),
           ("bert", ["bert/encoder/layer/0/intermediate/dense"]),
           ("bert", ["bert/encoder/layer/1/attention:heads", "bert/encoder/layer/0/intermediate/dense:group",
                     "bert/embeddings/word_embeddings:group"]),
           ("vit", ["vit/encoder/layer/0/intermediate/dense"]),
           ("vit", ["vit/embeddings/patch_embeddings/projection:group",
                    "vit/encoder/layer/0/attention/attention:heads"]),
           ("gpt2", ["transformer/h/0/mlp/c_fc"]),
           ("gpt2", ["transformer/h/0/attn:heads", "transformer/h/1/mlp/c_fc:group", "transformer/wte:group"])]


@pytest.mark.parametrize("name,layers", SMALLER)
def test_the_smaller_network_is_the_masked_one(models, name, layers):
    _, net, x, _ = models[name]
    layout = net.layout(layers, x)
    mask = np.random.default_rng(2).random(layout.num_players) < 0.6
    small = g.compact(net, None, layout, mask, x=x)
    np.testing.assert_allclose(small.network.predict(x), net.predict(x, layout.split(mask)), atol=2e-5)
    assert small.report.params_after < small.report.params_before


def test_heads_dropped_by_hand_count(models):
    """A dropped head of BERT takes its query, key and value columns and biases (3 x (16 + 1) x 4) and its 4 rows of
    the output projection (4 x 16); an attention that keeps none keeps one silent head."""
    _, net, x, _ = models["bert"]
    layout = net.layout([f"bert/encoder/layer/{i}/attention/self:heads" for i in (0, 1)], x)
    mask = np.array([1, 0, 1, 1, 0, 0, 0, 0], bool)
    small = g.compact(net, None, layout, mask, x=x)
    per_head = 3 * (WIDTH + 1) * DIM + DIM * WIDTH
    assert small.report.params_before - small.report.params_after == (1 + 3) * per_head
    np.testing.assert_allclose(small.network.predict(x), net.predict(x, layout.split(mask)), atol=1e-5)


def test_baselines_on_heads_and_units(models):
    _, net, x, y = models["gpt2"]
    layout = net.layout(["transformer/h/1/attn:heads", "transformer/h/0/mlp/c_fc"], x)
    for scores in (magnitude_scores(net, None, layout, x=x), taylor_scores(net, None, x, y, layout),
                   gate_scores(net, None, x, y, layout), leave_one_out_scores(net, None, x, y, layout)):
        assert np.shape(scores) == (HEADS + 64,) and np.all(np.isfinite(scores))
    params = net.params["transformer"]["h"]["1"]["attn"]
    c_attn, c_proj = np.asarray(params["c_attn"]["kernel"]), np.asarray(params["c_proj"]["kernel"])  # [out, in]
    by_hand = [np.sqrt(sum(np.sum(c_attn[o + h * DIM: o + (h + 1) * DIM] ** 2) for o in (0, WIDTH, 2 * WIDTH))
                       + np.sum(c_proj[:, h * DIM: (h + 1) * DIM] ** 2)) for h in range(HEADS)]
    np.testing.assert_allclose(magnitude_scores(net, None, layout, x=x)[:HEADS], by_hand, rtol=1e-5)
    fc = np.asarray(net.params["transformer"]["h"]["0"]["mlp"]["c_fc"]["kernel"])  # FlaxConv1D: [64, 16]
    np.testing.assert_allclose(magnitude_scores(net, None, layout, x=x)[HEADS:], np.linalg.norm(fc, axis=1),
                               rtol=1e-5)
    weights = adapt(net).masked_weights(net.layout(["transformer/h/0/mlp/c_fc"], x), np.arange(64) % 2 == 0)
    masked = net.predict(x, {"transformer/h/0/mlp/c_fc": np.arange(64) % 2 == 0})
    np.testing.assert_allclose(weights.predict(x), masked, atol=1e-5)


def test_head_games_value_chains_and_stars_incrementally(models):
    _, net, x, y = models["bert"]
    fn, layout = g.network_game(net, None, x, y, layers=["bert/encoder/layer/0/attention:heads",
                                                         "bert/encoder/layer/1/attention:heads"], metric="neg_loss")
    assert isinstance(fn, ChainValueFn)
    masks = np.asarray(jax.vmap(g.make_estimator(8, "shapley", estimator="permutation").draw, in_axes=(None, 0))(
        jax.random.key(1), np.arange(2)))
    chains = np.asarray(batched_chain_fn(fn, 1)(masks))  # jitted, as the engine runs it
    batched = np.asarray(g.evaluate_coalitions(fn, masks.reshape(-1, 8))).reshape(chains.shape)
    np.testing.assert_allclose(chains, batched, rtol=1e-5, atol=1e-6)


class _Attention(nn.Module):
    """Attention written by hand: Dense q/k/v, a reshape into heads, einsums, a merge, an output Dense."""

    num_heads: int = HEADS
    kv_heads: int = HEADS

    @nn.compact
    def __call__(self, x):
        split = lambda h, n: h.reshape(*h.shape[:-1], n, DIM)  # noqa: E731
        q = split(nn.Dense(self.num_heads * DIM, name="q")(x), self.num_heads)
        k = split(nn.Dense(self.kv_heads * DIM, name="k")(x), self.kv_heads)
        v = split(nn.Dense(self.kv_heads * DIM, name="v")(x), self.kv_heads)
        if self.kv_heads != self.num_heads:  # grouped-query: each key / value head serves several query heads
            k, v = (jnp.repeat(a, self.num_heads // self.kv_heads, axis=-2) for a in (k, v))
        weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(DIM))
        context = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(*x.shape[:-1], self.num_heads * DIM)
        return nn.Dense(3, name="head")(nn.Dense(x.shape[-1], name="o")(context).mean(1))


class _Model(nn.Module):
    kv_heads: int = HEADS

    @nn.compact
    def __call__(self, x):
        return _Attention(kv_heads=self.kv_heads, name="attn")(x)


def test_hand_written_attention_and_grouped_queries():
    x = jax.random.normal(jax.random.key(0), (6, 5, 8))
    model = _Model()
    variables = model.init(jax.random.key(1), x)
    net = adapt(model, variables)
    layout = net.layout(["attn:heads"], x)
    keep = np.array([1, 0, 0, 1], bool)
    oracle = _values_zeroed(variables["params"], "attn/v", 0, keep)
    np.testing.assert_allclose(net.predict(x, layout.split(keep)), model.apply({"params": oracle}, x), atol=1e-5)
    small = g.compact(model, variables, layout, keep, x=x)
    assert small.network.model is model and small.max_error < 1e-5  # num_heads set to 2 on the smaller one
    with pytest.raises(ValueError, match="silenced with zeros"):
        g.network_game(model, variables, x, np.arange(6) % 3, layers=["attn:heads"], masked_value="mean")
    for refuse in (lambda: net.masked_weights(layout, keep), lambda: net.train_masked(layout, keep, None)):
        with pytest.raises(ValueError, match="heads found in the trace"):
            refuse()
    grouped = _Model(kv_heads=2)  # grouped-query: a player is a key / value head with the 2 query heads reading it
    variables = grouped.init(jax.random.key(1), x)
    net = adapt(grouped, variables)
    (attention,) = net.attentions(x)
    assert (attention.num_heads, attention.group, attention.source_heads) == (2, 2, (4, 2, 2))
    layout = net.layout(["attn:heads"], x)
    keep = np.array([0, 1], bool)
    oracle = _values_zeroed(variables["params"], "attn/v", 0, keep)  # its value head 0 silences query heads 0, 1
    np.testing.assert_allclose(net.predict(x, layout.split(keep)), grouped.apply({"params": oracle}, x), atol=1e-5)
    small = g.compact(grouped, variables, layout, keep, x=x)
    per_group = 8 * DIM * (2 + 1 + 1) + DIM * (2 + 1 + 1) + 2 * DIM * 8  # q (2 heads), k, v columns; o's rows
    assert small.max_error < 1e-5 and small.report.params_before - small.report.params_after == per_group
    scores = magnitude_scores(grouped, variables, layout, x=x)
    q, v = (np.asarray(variables["params"]["attn"][n]["kernel"]) for n in ("q", "v"))
    assert scores.shape == (2,) and np.all(scores[1:] >= np.sqrt(np.sum(q[:, 8:] ** 2) + np.sum(v[:, 4:] ** 2)))
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['head:heads'\]"):
        net.layout(["head:heads"], x)


class _NNXAttention(nnx.Module):
    def __init__(self, rngs):
        self.num_heads = HEADS
        self.q, self.k, self.v = (nnx.Linear(8, HEADS * DIM, rngs=rngs) for _ in range(3))
        self.o = nnx.Linear(HEADS * DIM, 3, rngs=rngs)

    def __call__(self, x):
        q, k, v = (p(x).reshape(*x.shape[:-1], self.num_heads, DIM) for p in (self.q, self.k, self.v))
        weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k))
        return self.o(jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(*x.shape[:-1], -1).mean(1))


def test_hand_written_nnx_attention():
    x = jax.random.normal(jax.random.key(0), (6, 5, 8))
    model = _NNXAttention(nnx.Rngs(0))
    net = adapt(model, None)
    layout = net.layout([":heads"], x)
    keep = np.array([0, 1, 1, 0], bool)
    clone = nnx.clone(model)
    for h in np.flatnonzero(~keep):
        clone.v.kernel[...] = clone.v.kernel[...].at[:, h * DIM: (h + 1) * DIM].set(0)
        clone.v.bias[...] = clone.v.bias[...].at[h * DIM: (h + 1) * DIM].set(0)
    np.testing.assert_allclose(net.predict(x, layout.split(keep)), clone(x), atol=1e-5)
    small = g.compact(model, None, layout, keep, x=x)
    assert small.max_error < 1e-5 and small.network.model.num_heads == 2


class _EinsumAttention(nnx.Module):
    """Projections that hold the head axis in their kernels (as gemma's): no reshape into heads; the queries and keys
    rotated by halves (a split and a concatenation along head_dim); with fewer key / value heads, the queries split
    into (key / value heads, group), as gemma's grouped-query attention."""

    def __init__(self, rngs, kv_heads=HEADS):
        self.q = nnx.Einsum("BTD,NDH->BTNH", (HEADS, 8, DIM), rngs=rngs)
        self.k, self.v = (nnx.Einsum("BTD,NDH->BTNH", (kv_heads, 8, DIM), rngs=rngs) for _ in range(2))
        self.o = nnx.Einsum("BTNH,NHD->BTD", (HEADS, DIM, 8), rngs=rngs)
        self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        def rotated(h):
            first, second = jnp.split(h, 2, axis=-1)
            return jnp.concatenate([-second, first], axis=-1)

        q, k, v = rotated(self.q(x)), rotated(self.k(x)), self.v(x)
        heads, kv = q.shape[-2], k.shape[-2]  # the counts from the kernels, as gemma's
        q = q.reshape(*q.shape[:2], kv, heads // kv, DIM)
        weights = jax.nn.softmax(jnp.einsum("BTKGH,BSKH->BKGTS", q, k))
        context = jnp.einsum("BKGTS,BSKH->BTKGH", weights, v).reshape(*x.shape[:2], heads, DIM)
        return self.head(self.o(context).mean(1))


def test_heads_held_in_einsum_kernels():
    x = jax.random.normal(jax.random.key(0), (6, 5, 8))
    model = _EinsumAttention(nnx.Rngs(0))
    net = adapt(model, None)
    (attention,) = net.attentions(x)
    assert attention.split and attention.consumers == ("o",) and (attention.num_heads, attention.head_dim) == (4, 4)
    layout = net.layout([":heads"], x)
    keep = np.array([1, 1, 0, 1], bool)
    clone = nnx.clone(model)
    clone.v.kernel[...] = clone.v.kernel[...] * keep[:, None, None]  # the dropped heads' values 0
    np.testing.assert_allclose(net.predict(x, layout.split(keep)), clone(x), atol=1e-5)
    small = g.compact(model, None, layout, keep, x=x)
    per_head = 3 * 8 * DIM + DIM * 8
    assert small.max_error < 1e-5 and small.report.params_before - small.report.params_after == per_head
    kernels = [np.asarray(p.kernel[...]) for p in (model.q, model.k, model.v, model.o)]  # heads on axis 0
    by_hand = np.sqrt(sum(np.sum(k.reshape(HEADS, -1) ** 2, axis=1) for k in kernels))
    np.testing.assert_allclose(magnitude_scores(model, None, layout, x=x), by_hand, rtol=1e-5)
    grouped = _EinsumAttention(nnx.Rngs(1), kv_heads=2)  # a player: a key / value head with its 2 query heads
    net = adapt(grouped, None)
    assert (net.attentions(x)[0].num_heads, net.attentions(x)[0].group) == (2, 2)
    layout, keep = net.layout([":heads"], x), np.array([1, 0], bool)
    clone = nnx.clone(grouped)
    clone.v.kernel[...] = clone.v.kernel[...] * keep[:, None, None]
    np.testing.assert_allclose(net.predict(x, layout.split(keep)), clone(x), atol=1e-5)
    small = g.compact(grouped, None, layout, keep, x=x)
    per_group = 2 * 8 * DIM + 8 * DIM * 2 + 2 * DIM * 8  # 2 query heads, a key and a value head, 2 heads' rows of o
    assert small.max_error < 1e-5 and small.report.params_before - small.report.params_after == per_group
