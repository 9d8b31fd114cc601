"""Players on models defined outside gtap_jax: the ResNet of flax's ImageNet example, the Transformer encoder of its
nlp_seq example and its gemma (NNX), imported from a checkout of flax's examples (nothing of them is copied into
gtap_jax), and Hugging Face Flax BERT, ViT and GPT-2 (transformers < 5) on random configs.

For each: the coupled groups and attention heads found in one traced pass; the game over them on random inputs;
for 5 random coalitions the smaller network, which must reproduce the masked one (``compact`` raises otherwise):
its largest difference and the parameters before and after; for the Hugging Face models, the values/s of the
first feed-forward layer's game whole and along permutation chains, and the time to build that game.

    git clone https://github.com/google/flax && python benchmarks/external_models.py --examples flax/examples
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import time
from datetime import date
from pathlib import Path

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import gtap_jax as g
from gtap_jax.network import adapt, compact


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smaller(net, layout, x, keep: float):
    worst, small = 0.0, None
    for seed in range(5):
        mask = np.asarray(jax.random.bernoulli(jax.random.key(seed), keep, (layout.num_players,)))
        done = compact(net, None, layout, mask, x=x)
        small, worst = done.network, max(worst, done.max_error)
    return worst, small


def resnet(examples: Path) -> None:
    models = _module(examples / "imagenet" / "models.py", "flax_imagenet_models")
    model = models.ResNet(stage_sizes=[1, 1], block_cls=models.ResNetBlock, num_classes=5, num_filters=8)
    x = jax.random.normal(jax.random.key(0), (16, 32, 32, 3))
    variables = model.init(jax.random.key(1), x, train=False)
    stats = jax.tree.map(lambda a: a + 0.3 * jnp.abs(a) + 0.2, variables["batch_stats"])  # not the identity
    variables = {"params": variables["params"], "batch_stats": stats}
    net = adapt(model, variables, apply_kwargs={"train": False})
    groups = [group.members for group in net.coupled(x) if len(group.members) > 1]
    layers = [members[0] + ":group" for members in groups]
    layout = net.layout(layers, x)
    error, small = _smaller(net, layout, x, 0.6)
    print(f"| ResNet (imagenet example, 2 stages, 8 filters) | {len(groups)} groups: "
          + "; ".join(", ".join(m) for m in groups)
          + f" | {layout.num_players} | {error:.1e} | {net.num_params():,} -> {small.num_params():,} |", flush=True)


def transformer(examples: Path) -> None:
    models = _module(examples / "nlp_seq" / "models.py", "flax_nlp_seq_models")
    config = models.TransformerConfig(vocab_size=50, output_vocab_size=4, emb_dim=16, num_heads=4, num_layers=2,
                                      qkv_dim=16, mlp_dim=32, max_len=12, posemb_init=nn.initializers.normal(0.02))

    class Classifier(nn.Module):  # its per-token logits averaged: one class per sequence
        @nn.compact
        def __call__(self, tokens):
            return models.Transformer(config, name="t")(inputs=tokens, train=False).mean(axis=1)

    tokens = jax.random.randint(jax.random.key(2), (16, 12), 0, 50)
    model = Classifier()
    net = adapt(model, model.init(jax.random.key(3), tokens))
    found = net.coupled(tokens)
    stream = max(found, key=lambda group: len(group.members)).members
    heads = [p.rsplit("/", 1)[0] + ":heads" for group in found for p in group.members if p.endswith("/out")]
    ffn = [group.members[0] + ":group" for group in found if group.members[0].endswith("MlpBlock_0/Dense_0")]
    layers = [stream[0] + ":group", *heads, *ffn]
    layout = net.layout(layers, tokens)
    error, small = _smaller(net, layout, tokens, 0.7)
    print(f"| Transformer (nlp_seq example, 2 blocks, 4 heads, width 16) | the stream: {', '.join(stream)}; the"
          f" heads of both attentions; both feed-forward layers | {layout.num_players} | {error:.1e} |"
          f" {net.num_params():,} -> {small.num_params():,} |", flush=True)


def _rates(fn, p: int, values: int = 512) -> tuple[float, float | None]:
    """Values/s of a game whole and along permutation chains (None where it values none), in one run."""
    draw = g.make_estimator(p, "shapley", estimator="permutation").draw
    draws = np.asarray(jax.vmap(draw, in_axes=(None, 0))(jax.random.key(1), np.arange(-(-values // (p + 1)))))
    plan = g.make_plan(fn, p)
    runs = {"whole": lambda: g.evaluate_coalitions(fn, draws.reshape(-1, p), plan=plan)}
    if isinstance(fn, g.engine.ChainValueFn):
        chain = g.engine.batched_chain_fn(fn, 1, plan.mesh)
        runs["chains"] = lambda: chain(g.engine.place(draws, plan.mesh))
    rates = {}
    for name, run in runs.items():
        np.asarray(run())  # compile
        t0 = time.perf_counter()
        rates[name] = np.asarray(run()).size / (time.perf_counter() - t0)
    return rates["whole"], rates.get("chains")


def _hf_row(label: str, net, x, y, heads: list[str], ffn: list[str], stream: str) -> None:
    """One Hugging Face model: its players, 5 smaller networks, and the first feed-forward game's values/s."""
    layout = net.layout([*heads, *[f + ":group" for f in ffn], stream + ":group"], x)
    error, small = _smaller(net, layout, x, 0.7)
    t0 = time.perf_counter()
    fn, ffn_layout = g.network_game(net, None, x, y, layers=[ffn[0]], metric="neg_loss")
    built = time.perf_counter() - t0
    whole, chains = _rates(fn, ffn_layout.num_players)
    gain = "valued whole" if chains is None else f"{chains:,.0f} ({chains / whole:.1f}x)"
    print(f"| {label} | heads of {len(heads)} attentions, {len(ffn)} feed-forward layers, the stream (`{stream}`)"
          f" | {layout.num_players} | {error:.1e} | {net.num_params():,} -> {small.num_params():,} |"
          f" {whole:,.0f} / {gain}, built in {built:.1f} s |", flush=True)


def hugging_face() -> None:
    """Hugging Face Flax BERT, ViT, GPT-2 and Llama (transformers < 5), random 2-layer configs of width 64 and 4 heads
    (Llama: 2 key-value heads)."""
    import transformers

    from gtap_jax.network import hf

    ids = np.asarray(jax.random.randint(jax.random.key(4), (64, 16), 1, 500))
    images = np.asarray(jax.random.normal(jax.random.key(5), (64, 16, 16, 1)))
    labels = np.arange(64) % 3
    common = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    with jax.numpy_rank_promotion("allow"):
        bert = transformers.FlaxBertForSequenceClassification(transformers.BertConfig(
            vocab_size=500, max_position_embeddings=32, num_labels=3, **common), seed=0)
        vit = transformers.FlaxViTForImageClassification(transformers.ViTConfig(
            image_size=16, patch_size=4, num_channels=1, num_labels=3, **common), seed=0)
        gpt2 = transformers.FlaxGPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=500, n_positions=32, n_embd=64, n_layer=2, n_head=4), seed=0)
        llama = transformers.FlaxLlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=500, max_position_embeddings=32, num_key_value_heads=2, **common), seed=0)
    layer = "bert/encoder/layer/{}"
    _hf_row("BERT (sequence classification)", hf.network(bert), ids, labels,
            [layer.format(i) + "/attention/self:heads" for i in (0, 1)],
            [layer.format(i) + "/intermediate/dense" for i in (0, 1)], "bert/embeddings/word_embeddings")
    layer = "vit/encoder/layer/{}"
    _hf_row("ViT (image classification)", hf.network(vit), images, labels,
            [layer.format(i) + "/attention/attention:heads" for i in (0, 1)],
            [layer.format(i) + "/intermediate/dense" for i in (0, 1)], "vit/embeddings/patch_embeddings/projection")
    _hf_row("GPT-2 (causal LM, last token)", hf.network(gpt2, "last_token"), ids, ids[:, -1],
            [f"transformer/h/{i}/attn:heads" for i in (0, 1)], [f"transformer/h/{i}/mlp/c_fc" for i in (0, 1)],
            "transformer/wte")
    _hf_row("Llama (causal LM, last token; 4 query / 2 key-value heads)", hf.network(llama, "last_token"), ids,
            ids[:, -1], [f"model/layers/{i}/self_attn:heads" for i in (0, 1)],
            [f"model/layers/{i}/mlp/up_proj" for i in (0, 1)], "model/embed_tokens")


def gemma(examples: Path) -> None:
    """flax's examples/gemma (NNX): tiny configs with gated feed-forward layers, an RMSNorm stream and rotary
    positions, one with grouped-query attention (4 query and 2 key-value heads: a player per key-value head), one
    with 4 of each; their last token's logits."""
    import sys

    from flax import nnx

    sys.path.insert(0, str(examples / "gemma"))  # its modules import one another by name
    transformer, cfg = _module(examples / "gemma" / "transformer.py", "transformer"), importlib.import_module(
        "transformer_cfg")
    tokens = jax.random.randint(jax.random.key(2), (64, 12), 0, 64)
    for kv_heads in (2, 4):
        config = cfg.TransformerConfig(num_layers=2, num_embed=64, embed_dim=16, hidden_dim=32, num_heads=4,
                                       head_dim=4, num_kv_heads=kv_heads, final_logit_softcap=None,
                                       use_post_attn_norm=True, use_post_ffw_norm=True,
                                       attention_types=(cfg.AttentionType.GLOBAL,) * 2)

        class LastToken(nnx.Module):
            def __init__(self, rngs, config=config):
                self.t = transformer.Transformer(config, rngs=rngs)

            def __call__(self, tokens):
                length = tokens.shape[1]
                causal = jnp.broadcast_to(jnp.tril(jnp.ones((length, length), bool)), (len(tokens), length, length))
                return self.t(tokens, jnp.broadcast_to(jnp.arange(length), tokens.shape), None, causal)[0][:, -1]

        net = adapt(LastToken(nnx.Rngs(0)), None)
        heads = [f"t/layers/{i}/attn:heads" for i in (0, 1)]
        ffn = [f"t/layers/{i}/mlp/up_proj:group" for i in (0, 1)]  # gate_proj and up_proj meet in a product
        layout = net.layout([*heads, *ffn], tokens)
        group = net.attentions(tokens)[0].group
        what = (f"the heads of both attentions (`Einsum` kernels hold the head axis; {layout.layers[0][1]} players"
                f" each{f', a key-value head with its {group} query heads' if group > 1 else ''}), both gated"
                " feed-forward groups")
        error, small = _smaller(net, layout, tokens, 0.7)
        stream = net.layout(["t/embedder:group"], tokens)
        try:
            _smaller(net, stream, tokens, 0.7)
            refused = "compacts"
        except ValueError as e:
            refused = f"is refused ({str(e).split('(')[1].split(')')[0]})"
        fn, first = g.network_game(net, None, tokens, tokens[:, -1], layers=[ffn[0]], metric="neg_loss")
        whole, chains = _rates(fn, first.num_players)
        gain = "valued whole" if chains is None else f"{chains:,.0f} ({chains / whole:.1f}x)"
        print(f"| gemma (flax examples, NNX, 2 blocks, 4 query / {kv_heads} key-value heads, width 16) | {what}; the"
              f" stream's game ({stream.num_players} players) is valued, its smaller network {refused} |"
              f" {layout.num_players} | {error:.1e} | {net.num_params():,} -> {small.num_params():,} |"
              f" {whole:,.0f} / {gain} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, required=True, help="the examples folder of a flax checkout")
    parser.add_argument("--skip-flax", action="store_true", help="only the Hugging Face models and gemma")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind}, jax {jax.__version__}, flax {flax.__version__},"
          f" {platform.machine()}\n\n| model | players | count | largest difference, 5 smaller networks |"
          " parameters | values/s of the first feed-forward game, whole / chains |\n|---|---|---|---|---|---|")
    if not args.skip_flax:
        resnet(args.examples)
        transformer(args.examples)
    gemma(args.examples)
    hugging_face()


if __name__ == "__main__":
    main()
