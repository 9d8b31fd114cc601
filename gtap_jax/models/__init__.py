"""The built-in models and their registry ``MODELS``: staged ones (a mask site on every prunable layer) and Linen
ones with residual links (:mod:`gtap_jax.models.residual`), whose players are coupled groups.

An entry's factory is ``(num_classes, **options) -> StagedModel``; a config's ``model.options``
are its keyword arguments (one it does not take is an error). The entry also gives one
example's input shape (None where the data decides it, as a text model's vocabulary) and
the options of a small version (for smoke runs and tests). Adding a model: a
:class:`~gtap_jax.network.staged.StagedModel` subclass, its factory, one line in ``MODELS``.
"""

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn

from gtap_jax.models.residual import ResNet, TextTransformer, ViT, resnet, text_transformer, vit
from gtap_jax.models.zoo import MLP, AlexNet, LeNet5, alexnet, lenet5, lenet300, text_mlp
from gtap_jax.network.staged import SiteSpec, StagedModel, apply_site, layout_for
from gtap_jax.registry import Registry


class ModelEntry(NamedTuple):
    """A registered model: its factory, one example's input shape (or None), and a small version's options."""

    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...] | None
    small: dict

    def __call__(self, num_classes: int, **options) -> nn.Module:
        return self.factory(num_classes=num_classes, **options)

    @property
    def staged(self) -> bool:
        """Whether it is a staged model (else a Linen model with residual links, whose players are groups)."""
        return isinstance(self(2, **self.small), StagedModel)


MODELS = Registry("model", {
    "lenet300": ModelEntry(lenet300, (28, 28, 1), {}),
    "lenet5": ModelEntry(lenet5, (28, 28, 1), {}),
    "text_mlp": ModelEntry(text_mlp, None, {"width": 32}),
    "alexnet": ModelEntry(alexnet, (64, 64, 3), {"width": 1 / 32}),
    "resnet": ModelEntry(resnet, (28, 28, 1), {"widths": (4, 8), "blocks": 1}),
    "vit": ModelEntry(vit, (28, 28, 1), {"width": 8, "depth": 1, "heads": 2, "hidden": 16}),
    "text_transformer": ModelEntry(text_transformer, None,
                                   {"vocab_size": 1000, "width": 8, "depth": 1, "heads": 2, "hidden": 16}),
})
INPUT_SHAPES = {name: entry.input_shape for name, entry in MODELS.items() if entry.input_shape}

__all__ = [
    "INPUT_SHAPES",
    "MLP",
    "MODELS",
    "AlexNet",
    "ResNet",
    "TextTransformer",
    "ViT",
    "LeNet5",
    "ModelEntry",
    "SiteSpec",
    "StagedModel",
    "alexnet",
    "apply_site",
    "layout_for",
    "lenet5",
    "lenet300",
    "resnet",
    "text_mlp",
    "text_transformer",
    "vit",
]
