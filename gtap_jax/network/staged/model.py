"""The built-in models' base: a Linen module made of named stages with mask sites (:class:`StagedModel`).

A stage that ends in a *mask site* produces the post-activation output of a prunable layer; the
site's keep mask (dense: per unit, conv: per output channel) silences the neurons outside the
coalition there: ``jnp.where(keep, h, fill)`` with fill 0 (or a per-neuron constant), no dropout
rescaling. ``model.apply({"params": params}, x, masks)`` is pure, so the engine can vmap over masks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from gtap_jax.layout import PlayerLayout, layout_of


class SiteSpec(NamedTuple):
    """How a mask site maps onto parameters, for compaction.

    Attributes:
        name: the site (= the prunable layer's name).
        producer: param collection of the layer whose outputs are the site's neurons.
        consumer: param collection of the next layer, whose inputs they are.
        consumer_spatial: for a dense consumer of flattened conv features, the
            (H, W) of the feature map; None when no flattening lies between.
        consumer_padded: True for a conv consumer with SAME padding: a constant
            input channel then reaches its border outputs only in part, so a
            silenced neuron's constant fill cannot be folded into its bias.
    """

    name: str
    producer: str
    consumer: str
    consumer_spatial: tuple[int, int] | None = None
    consumer_padded: bool = False


def apply_site(h, keep, fill=None):
    """Silences the neurons of the last axis of ``h`` outside ``keep`` (a float ``keep`` gates them: ``fill + keep
    (h - fill)``, differentiable; gate-gradient scores)."""
    shape = (1,) * (h.ndim - 1) + (-1,)
    keep = jnp.reshape(keep, shape)
    fill = 0.0 if fill is None else jnp.reshape(fill, shape)
    if keep.dtype != jnp.bool_:
        return fill + keep.astype(h.dtype) * (h - fill)
    return jnp.where(keep, h, fill)


class StagedModel(nn.Module):
    """Base class: subclasses define ``stages()``, ``site_sizes()``, ``site_specs()``, ``with_sizes()``.

    ``stages()`` is called inside the compact ``__call__`` and creates each
    layer with an explicit name, so parameters are ``params[layer_name]``.
    """

    def stages(self) -> list[tuple[str, Callable]]:
        """``[(name, fn)]`` in order; a stage named in ``site_sizes()`` ends in a mask site."""
        raise NotImplementedError

    def site_sizes(self) -> dict[str, int]:
        """Neurons at each mask site, in network order."""
        raise NotImplementedError

    def site_specs(self) -> list[SiteSpec]:
        """Producer and consumer parameters of each site, in network order."""
        raise NotImplementedError

    def with_sizes(self, sizes: Mapping[str, int]) -> StagedModel:
        """The same architecture with some sites narrowed (used by compaction)."""
        raise NotImplementedError

    def stage_names(self) -> list[str]:
        """Names of the stages in order (without parameters: a site's stage is its layer)."""
        raise NotImplementedError

    @nn.compact
    def __call__(self, h, masks=None, fills=None, start: int = 0, stop: int | None = None, capture: bool = False):
        """Runs stages ``[start, stop)``, applying the masks of the sites among them.

        Args:
            h: the input (or the output of stage ``start - 1``).
            masks: ``{site: bool[units]}``; sites not named are intact.
            fills: ``{site: float[units]}`` values of silenced neurons (default 0).
            start, stop: the stage range (static).
            capture: also return ``{site: post-activation output}`` (unmasked sites
                as computed, masked ones after masking).

        Returns:
            The output of stage ``stop - 1`` (logits for a full pass), and the
            captured site outputs if ``capture``.
        """
        sites = self.site_sizes()
        captured = {}
        for name, fn in self.stages()[start:stop]:
            h = fn(h)
            if masks is not None and name in masks:
                h = apply_site(h, masks[name], None if fills is None else fills.get(name))
            if capture and name in sites:
                captured[name] = h
        return (h, captured) if capture else h


def layout_for(model: StagedModel, layers: Sequence[str] | None = None) -> PlayerLayout:
    """The player layout of a staged model's ``layers`` (default: every site), in network order.

    Raises:
        ValueError: for an empty list, an unknown or repeated layer.
    """
    return layout_of(model.site_sizes(), layers)


__all__ = ["SiteSpec", "StagedModel", "apply_site", "layout_for"]
