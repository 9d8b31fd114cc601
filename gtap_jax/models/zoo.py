"""Networks for the paper's experiments, each with a mask site on every prunable layer.

The text we can reach names LeNet on MNIST, a tweet topic task and CARER emotions;
the exact architectures (LeNet-300-100, LeNet5, the 3 x 256 text MLP, AlexNet for
64 x 64 inputs) are our reconstruction.

* :func:`lenet300`: LeNet-300-100 on 28x28 inputs (sites ``fc1``, ``fc2``).
* :class:`LeNet5`: two 5x5 conv layers (channels are players: ``conv1``,
  ``conv2``), then dense 120-84 (``fc1``, ``fc2``).
* :func:`text_mlp`: three hidden layers of 256 on a binary term-frequency
  vector (``fc1``..``fc3``).
* :func:`alexnet`: AlexNet for 64x64x3 inputs and 200 classes (``conv1``..
  ``conv5``, ``fc6``, ``fc7``), channel and unit counts scaled by ``width``.

All use ReLU and no dropout or normalisation, so a silenced neuron is exactly a
removed one and compaction is exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn

from gtap_jax.network.staged import SiteSpec, StagedModel


def _flatten(h):
    return h.reshape(h.shape[0], -1)


def _pool(h):
    return nn.max_pool(h, (2, 2), strides=(2, 2))


class MLP(StagedModel):
    """ReLU multilayer perceptron; hidden layer i is the site ``fc{i+1}``."""

    hidden: tuple[int, ...] = (300, 100)
    num_classes: int = 10

    def site_sizes(self):
        return {f"fc{i + 1}": w for i, w in enumerate(self.hidden)}

    def stage_names(self):
        return [*self.site_sizes(), "out"]

    def stages(self):
        out = []
        for i, (name, width) in enumerate(self.site_sizes().items()):

            def dense(h, name=name, width=width, first=i == 0):
                h = _flatten(h) if first else h
                return nn.relu(nn.Dense(width, name=name)(h))

            out.append((name, dense))
        out.append(("out", lambda h: nn.Dense(self.num_classes, name="out")(_flatten(h))))
        return out

    def site_specs(self):
        names = self.stage_names()
        return [SiteSpec(n, n, names[i + 1]) for i, n in enumerate(names[:-1])]

    def with_sizes(self, sizes: Mapping[str, int]) -> MLP:
        hidden = tuple(sizes.get(n, w) for n, w in self.site_sizes().items())
        return self.clone(parent=None, hidden=hidden)


def lenet300(num_classes: int = 10) -> MLP:
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10."""
    return MLP(hidden=(300, 100), num_classes=num_classes)


def text_mlp(num_classes: int, width: int = 256, depth: int = 3) -> MLP:
    """The text classifier (our reconstruction): ``depth`` hidden layers of ``width`` units."""
    return MLP(hidden=(width,) * depth, num_classes=num_classes)


class LeNet5(StagedModel):
    """LeNet5 for 28x28x1 inputs: conv 5x5 (SAME) - pool - conv 5x5 - pool - dense - dense."""

    conv: tuple[int, int] = (6, 16)
    dense: tuple[int, int] = (120, 84)
    num_classes: int = 10

    def site_sizes(self):
        return {"conv1": self.conv[0], "conv2": self.conv[1], "fc1": self.dense[0], "fc2": self.dense[1]}

    def stage_names(self):
        return ["conv1", "conv2", "fc1", "fc2", "out"]

    def stages(self):
        c1, c2 = self.conv
        d1, d2 = self.dense
        return [
            ("conv1", lambda h: nn.relu(nn.Conv(c1, (5, 5), padding="SAME", name="conv1")(h))),
            ("conv2", lambda h: nn.relu(nn.Conv(c2, (5, 5), padding="VALID", name="conv2")(_pool(h)))),
            ("fc1", lambda h: nn.relu(nn.Dense(d1, name="fc1")(_flatten(_pool(h))))),
            ("fc2", lambda h: nn.relu(nn.Dense(d2, name="fc2")(h))),
            ("out", lambda h: nn.Dense(self.num_classes, name="out")(h)),
        ]

    def site_specs(self):
        return [
            SiteSpec("conv1", "conv1", "conv2"),
            SiteSpec("conv2", "conv2", "fc1", consumer_spatial=(5, 5)),
            SiteSpec("fc1", "fc1", "fc2"),
            SiteSpec("fc2", "fc2", "out"),
        ]

    def with_sizes(self, sizes: Mapping[str, int]) -> LeNet5:
        s = {**self.site_sizes(), **sizes}
        return self.clone(parent=None, conv=(s["conv1"], s["conv2"]), dense=(s["fc1"], s["fc2"]))


class AlexNet(StagedModel):
    """AlexNet adapted to 64x64x3 (Tiny ImageNet).

    conv1 5x5/2 (32x32) - pool - conv2 5x5 (16x16) - pool - conv3, conv4, conv5
    3x3 (8x8) - pool (4x4) - fc6 - fc7 - out.
    """

    conv: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)
    dense: tuple[int, int] = (4096, 4096)
    num_classes: int = 200

    def site_sizes(self):
        return {**{f"conv{i + 1}": c for i, c in enumerate(self.conv)}, "fc6": self.dense[0], "fc7": self.dense[1]}

    def stage_names(self):
        return [*self.site_sizes(), "out"]

    def stages(self):
        c = self.conv

        def conv(i, kernel, strides=1, pool=False):
            def fn(h):
                h = _pool(h) if pool else h
                return nn.relu(nn.Conv(c[i], kernel, strides=strides, padding="SAME", name=f"conv{i + 1}")(h))

            return (f"conv{i + 1}", fn)

        return [
            conv(0, (5, 5), strides=2),
            conv(1, (5, 5), pool=True),
            conv(2, (3, 3), pool=True),
            conv(3, (3, 3)),
            conv(4, (3, 3)),
            ("fc6", lambda h: nn.relu(nn.Dense(self.dense[0], name="fc6")(_flatten(_pool(h))))),
            ("fc7", lambda h: nn.relu(nn.Dense(self.dense[1], name="fc7")(h))),
            ("out", lambda h: nn.Dense(self.num_classes, name="out")(h)),
        ]

    def site_specs(self):
        names = self.stage_names()
        return [
            SiteSpec(n, n, names[i + 1], consumer_spatial=(4, 4) if n == "conv5" else None,
                     consumer_padded=names[i + 1].startswith("conv"))
            for i, n in enumerate(names[:-1])
        ]

    def with_sizes(self, sizes: Mapping[str, int]) -> AlexNet:
        s = {**self.site_sizes(), **sizes}
        return self.clone(
            parent=None, conv=tuple(s[f"conv{i + 1}"] for i in range(5)), dense=(s["fc6"], s["fc7"])
        )


def alexnet(num_classes: int = 200, width: float = 1.0) -> AlexNet:
    """AlexNet for 64x64x3 with every layer's width scaled by ``width`` (at least 1 unit)."""
    conv = tuple(max(1, round(c * width)) for c in (64, 192, 384, 256, 256))
    dense = tuple(max(1, round(d * width)) for d in (4096, 4096))
    return AlexNet(conv=conv, dense=dense, num_classes=num_classes)


def lenet5(num_classes: int = 10, conv: tuple[int, int] = (6, 16), dense: tuple[int, int] = (120, 84)) -> LeNet5:
    """LeNet5 (LeCun et al. 1998) with ``conv`` channels and ``dense`` units."""
    return LeNet5(conv=tuple(conv), dense=tuple(dense), num_classes=num_classes)


__all__ = ["MLP", "AlexNet", "LeNet5", "alexnet", "lenet300", "lenet5", "text_mlp"]
