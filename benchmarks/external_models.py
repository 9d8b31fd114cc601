"""Coupled players on models defined outside gtap_jax: the ResNet of flax's ImageNet example and the Transformer
encoder of its nlp_seq example, imported from a checkout of flax's examples (nothing of them is copied into gtap_jax).

For each: the coupled groups found in one traced pass; the game over the groups (and, for the Transformer,
the heads) on random inputs; and for 5 random coalitions the smaller network, which must reproduce the masked
one (``compact`` raises otherwise): its largest difference and the parameters before and after.

    git clone https://github.com/google/flax && python benchmarks/external_models.py --examples flax/examples
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
from datetime import date
from pathlib import Path

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, required=True, help="the examples folder of a flax checkout")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind}, jax {jax.__version__}, flax {flax.__version__},"
          f" {platform.machine()}\n\n| model | players | count | largest difference, 5 smaller networks |"
          " parameters |\n|---|---|---|---|---|")
    resnet(args.examples)
    transformer(args.examples)


if __name__ == "__main__":
    main()
