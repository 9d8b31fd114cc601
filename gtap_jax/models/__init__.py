"""Flax networks with mask sites, and the player layout."""

from gtap_jax.models.staged import SiteSpec, StagedModel, apply_site, layout_for
from gtap_jax.models.zoo import (
    INPUT_SHAPES,
    MLP,
    MODELS,
    AlexNet,
    LeNet5,
    alexnet,
    lenet300,
    text_mlp,
)

__all__ = [
    "INPUT_SHAPES",
    "MLP",
    "MODELS",
    "AlexNet",
    "LeNet5",
    "SiteSpec",
    "StagedModel",
    "alexnet",
    "apply_site",
    "layout_for",
    "lenet300",
    "text_mlp",
]
