"""The built-in models (staged, with a mask site on every prunable layer) and their registry ``MODELS``.

An entry's factory is ``(num_classes, **options) -> StagedModel``; a config's ``model.options``
are its keyword arguments (one it does not take is an error). The entry also gives one
example's input shape (None where the data decides it, as a text model's vocabulary) and
the options of a small version (for smoke runs and tests). Adding a model: a
:class:`~gtap_jax.network.staged.StagedModel` subclass, its factory, one line in ``MODELS``.
"""

from collections.abc import Callable
from typing import NamedTuple

from gtap_jax.models.zoo import MLP, AlexNet, LeNet5, alexnet, lenet5, lenet300, text_mlp
from gtap_jax.network.staged import SiteSpec, StagedModel, apply_site, layout_for
from gtap_jax.registry import Registry


class ModelEntry(NamedTuple):
    """A registered model: its factory, one example's input shape (or None), and a small version's options."""

    factory: Callable[..., StagedModel]
    input_shape: tuple[int, ...] | None
    small: dict

    def __call__(self, num_classes: int, **options) -> StagedModel:
        return self.factory(num_classes=num_classes, **options)


MODELS = Registry("model", {
    "lenet300": ModelEntry(lenet300, (28, 28, 1), {}),
    "lenet5": ModelEntry(lenet5, (28, 28, 1), {}),
    "text_mlp": ModelEntry(text_mlp, None, {"width": 32}),
    "alexnet": ModelEntry(alexnet, (64, 64, 3), {"width": 1 / 32}),
})
INPUT_SHAPES = {name: entry.input_shape for name, entry in MODELS.items() if entry.input_shape}

__all__ = [
    "INPUT_SHAPES",
    "MLP",
    "MODELS",
    "AlexNet",
    "LeNet5",
    "ModelEntry",
    "SiteSpec",
    "StagedModel",
    "alexnet",
    "apply_site",
    "layout_for",
    "lenet5",
    "lenet300",
    "text_mlp",
]
