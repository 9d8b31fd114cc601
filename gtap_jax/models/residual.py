"""Built-in Linen models with residual links, trained by gtap_jax (:class:`~gtap_jax.network.linen.TrainedModule`).

* :class:`ResNet`: a small ResNet for 28x28 inputs: a 3x3 stem conv (stride 2) with BatchNorm, then stages of
  basic blocks (two 3x3 convs with BatchNorm, the identity added), the first block of each later
  stage halving the resolution with a 1x1 projection shortcut; global average pooling and a Dense
  head. Its players are coupled groups (``gtap_jax.network.modules.coupling``): each stage's residual
  stream (``"stem:group"``, ``"s2b1/conv2:group"``, ...) and each block's inner channels
  (``"s1b1/conv1:group"``).

* :class:`ViT`: a small vision transformer: non-overlapping patches embedded by a strided conv,
  learned position embeddings, pre-norm blocks (LayerNorm, multi-head self-attention, LayerNorm,
  a gelu feed-forward layer, each added to the stream), a final LayerNorm, the tokens' mean and a
  Dense head. Its players: the stream (``"embed:group"``), each block's heads
  (``"block1/attn:heads"``) and feed-forward units (``"block1/up:group"``).

* :class:`TextTransformer`: the same blocks over token ids (``gtap_jax.data.text``, 0 = padding): a
  token embedding, learned position embeddings, attention that ignores padding, the final LayerNorm's
  mean over the text's tokens and a Dense head. Its players are those of :class:`ViT`.

Module names are fixed (``stem``, ``s{stage}b{block}/conv1``, ``bn1``, ``conv2``, ``bn2``, ``proj``,
``proj_bn``, ``head``; ``embed``, ``pos``, ``block{i}/ln1``, ``attn``, ``ln2``, ``up``, ``down``,
``norm``, ``head``) so that configs can name the groups; structure is decided by attributes, not widths,
so that a smaller network runs the same code.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from gtap_jax.network.linen import TrainedModule


class BasicBlock(nn.Module):
    """conv3x3 - BatchNorm - relu - conv3x3 - BatchNorm, plus the input (projected by a strided 1x1 conv)."""

    features: int
    stride: int = 1
    project: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        def norm(name):
            return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)

        h = nn.Conv(self.features, (3, 3), (self.stride, self.stride), use_bias=False, name="conv1")(x)
        h = nn.relu(norm("bn1")(h))
        h = norm("bn2")(nn.Conv(self.features, (3, 3), use_bias=False, name="conv2")(h))
        if self.project:
            x = nn.Conv(self.features, (1, 1), (self.stride, self.stride), use_bias=False, name="proj")(x)
            x = norm("proj_bn")(x)
        return nn.relu(x + h)


class ResNet(TrainedModule):
    """A small ResNet (module docstring): ``widths[s]`` channels in stage s, ``blocks`` basic blocks a stage."""

    num_classes: int = 10
    widths: tuple[int, ...] = (8, 16)
    blocks: int = 2
    stem_stride: int = 2

    @nn.compact
    def __call__(self, x, train: bool = False):
        stride = (self.stem_stride, self.stem_stride)
        x = nn.Conv(self.widths[0], (3, 3), stride, use_bias=False, name="stem")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="stem_bn")(x))
        for s, width in enumerate(self.widths):
            for b in range(self.blocks):
                first = s > 0 and b == 0
                x = BasicBlock(width, 2 if first else 1, first, name=f"s{s + 1}b{b + 1}")(x, train)
        return nn.Dense(self.num_classes, name="head")(x.mean(axis=(1, 2)))

    def groups(self) -> tuple[str, ...]:
        """The layers that name every coupled group: each stage's stream, then each block's inner channels."""
        streams = ["stem:group"] + [f"s{s + 1}b1/conv2:group" for s in range(1, len(self.widths))]
        inner = [f"s{s + 1}b{b + 1}/conv1:group" for s in range(len(self.widths)) for b in range(self.blocks)]
        return tuple(streams + inner)


def resnet(num_classes: int = 10, widths: tuple[int, ...] = (8, 16), blocks: int = 2, stem_stride: int = 2) -> ResNet:
    """The small ResNet for MNIST-sized inputs (a stride-2 stem: 14x14, then 7x7 in the second stage)."""
    return ResNet(num_classes=num_classes, widths=tuple(widths), blocks=blocks, stem_stride=stem_stride)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + down(gelu(up(ln2(x))))``."""

    heads: int
    head_dim: int
    hidden: int

    @nn.compact
    def __call__(self, x, mask=None):
        h = nn.LayerNorm(name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.heads * self.head_dim,
                                                name="attn")(h, mask=mask)
        h = nn.gelu(nn.Dense(self.hidden, name="up")(nn.LayerNorm(name="ln2")(x)))
        return x + nn.Dense(x.shape[-1], name="down")(h)


class Encoder(TrainedModule):
    """What the two transformers share: ``depth`` pre-norm encoder blocks of width ``width`` with ``heads`` heads
    and ``hidden`` feed-forward units, over learned position embeddings, and the players' layers."""

    num_classes: int = 10
    width: int = 32
    depth: int = 2
    heads: int = 4
    hidden: int = 64

    def encoded(self, h, mask=None):
        """``h`` (``[batch, tokens, width]``) plus learned position embeddings (``"pos"``, their width taken from
        ``h``, so that a smaller stream narrows them), through the encoder blocks; called from a compact
        ``__call__``."""
        h = h + self.param("pos", nn.initializers.normal(0.02), (1, h.shape[1], h.shape[-1]))
        for i in range(self.depth):
            h = EncoderBlock(self.heads, self.width // self.heads, self.hidden, name=f"block{i + 1}")(h, mask)
        return h

    def groups(self) -> tuple[str, ...]:
        """The layers of every player: the stream, then each block's heads and feed-forward units."""
        blocks = [(f"block{i + 1}/attn:heads", f"block{i + 1}/up:group") for i in range(self.depth)]
        return ("embed:group", *(layer for pair in blocks for layer in pair))


class ViT(Encoder):
    """A small vision transformer (module docstring) on ``patch`` x ``patch`` patches of width ``width``."""

    patch: int = 7

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.width, (self.patch, self.patch), (self.patch, self.patch), name="embed")(x)
        x = self.encoded(x.reshape(x.shape[0], -1, x.shape[-1]))  # [batch, tokens, width]
        return nn.Dense(self.num_classes, name="head")(nn.LayerNorm(name="norm")(x).mean(axis=1))


class TextTransformer(Encoder):
    """A small transformer encoder over ``[batch, length]`` token ids below ``vocab_size`` (module docstring)."""

    num_classes: int = 6
    vocab_size: int = 5000

    @nn.compact
    def __call__(self, x, train: bool = False):
        tokens = x > 0
        h = nn.Embed(self.vocab_size, self.width, name="embed")(x)
        h = self.encoded(h, nn.make_attention_mask(tokens, tokens))
        weight = tokens[..., None].astype(h.dtype)
        pooled = (nn.LayerNorm(name="norm")(h) * weight).sum(axis=1) / jnp.maximum(weight.sum(axis=1), 1.0)
        return nn.Dense(self.num_classes, name="head")(pooled)


def vit(num_classes: int = 10, patch: int = 7, width: int = 32, depth: int = 2, heads: int = 4,
        hidden: int = 64) -> ViT:
    """The small vision transformer for MNIST-sized inputs (16 tokens of 7 x 7 pixels)."""
    return ViT(num_classes=num_classes, patch=patch, width=width, depth=depth, heads=heads, hidden=hidden)


def text_transformer(num_classes: int = 6, vocab_size: int = 5000, width: int = 32, depth: int = 2, heads: int = 4,
                     hidden: int = 64) -> TextTransformer:
    """The small transformer encoder for token ids (``data.options.sequence_length``) below ``vocab_size``."""
    return TextTransformer(num_classes=num_classes, vocab_size=vocab_size, width=width, depth=depth, heads=heads,
                           hidden=hidden)


__all__ = ["BasicBlock", "Encoder", "EncoderBlock", "ResNet", "TextTransformer", "ViT", "resnet", "text_transformer",
           "vit"]
