"""Built-in Linen models with residual links, trained by gtap_jax (:class:`~gtap_jax.network.linen.TrainedModule`).

* :class:`ResNet`: a small ResNet for 28x28 inputs: a 3x3 stem conv (stride 2) with BatchNorm, then stages of
  basic blocks (two 3x3 convs with BatchNorm, the identity added), the first block of each later
  stage halving the resolution with a 1x1 projection shortcut; global average pooling and a Dense
  head. Its players are coupled groups (``gtap_jax.network.coupling``): each stage's residual
  stream (``"stem:group"``, ``"s2b1/conv2:group"``, ...) and each block's inner channels
  (``"s1b1/conv1:group"``).

Module names are fixed (``stem``, ``s{stage}b{block}/conv1``, ``bn1``, ``conv2``, ``bn2``, ``proj``,
``proj_bn``, ``head``) so that configs can name the groups; the projection is decided by the block's
place, not by widths, so that a smaller network runs the same code.
"""

from __future__ import annotations

import flax.linen as nn

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


__all__ = ["BasicBlock", "ResNet", "resnet"]
