"""One way to make any model smaller: :func:`compact`, and its result :class:`Compacted`.

Every ``Shrinkable`` network (the built-in models, Linen and NNX models) goes through the same
function: the adapter removes the dropped players (exact slicing for the built-in models; a chain of
Dense / Conv / BatchNorm / elementwise layers, or coupled groups and heads, for Flax models), and the
result says how much smaller it is and how far it is from the masked network on the given inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from gtap_jax.layout import PlayerLayout, as_mask
from gtap_jax.network.any_model import adapt, mean_fills
from gtap_jax.network.contract import Network, Shrinkable, SizeReport, size_report
from gtap_jax.shapes import InputShape, PyTree


@dataclasses.dataclass
class Compacted:
    """A model made smaller by :func:`compact`.

    Attributes:
        network: the smaller network (a :class:`~gtap_jax.network.contract.Network`).
        report: parameters, FLOPs (NaN without ``input_shape``) and players before and after.
        max_error: the largest absolute difference of its logits from the masked network's on ``x``
            (NaN without ``x``).
        kept: players kept per layer.
    """

    network: Network
    report: SizeReport
    max_error: float
    kept: dict[str, int]

    @property
    def model(self) -> Any:
        """The smaller model: a built-in or NNX model of its own; for Linen the user's module, whose narrower
        producers run under ``network.resized()`` (``model.apply(variables, x)`` inside that context)."""
        return self.network.model

    @property
    def variables(self) -> Any:
        """What goes with :attr:`model` (``adapt(model, variables)``): the built-in models' params, Linen's
        variables, None for NNX."""
        return self.network.variables

    @property
    def params(self) -> PyTree:
        """The smaller network's trainable parameters."""
        return self.network.params

    def __call__(self, x):
        return self.network.predict(x)


def compact(model, variables, layout: PlayerLayout | Mapping, mask=None, *, x=None, fills: Mapping | None = None,
            masked_value: str = "zero", input_shape: InputShape | None = None, apply_kwargs: Mapping | None = None,
            atol: float = 1e-4) -> Compacted:
    """Removes the players outside ``mask``: a smaller network that computes what the masked one does.

    Args:
        model, variables: any model :func:`~gtap_jax.network.adapt` takes (a built-in model with its params, a
            Linen module with its variables, an NNX module with None) or a ``Network``.
        layout, mask: the players (as :func:`~gtap_jax.network_game` returned them) and ``bool[P]``, the kept.
        x: evaluation inputs: a Flax model's smaller network is built and checked on them (required there);
            for every model, :attr:`Compacted.max_error` is measured on them.
        fills: ``{layer: float[features]}``, each dropped player's constant output (folded into the next biases);
            or ``masked_value="mean"``: their means on ``x``, as the game's ``"mean"``.
        input_shape: one example's shape, to report FLOPs (NaN if omitted).
        apply_kwargs: extra keyword arguments of every call of a Flax model (e.g. ``{"train": False}``).
        atol: the tolerance of a Flax model's check, relative to the output scale.

    Raises:
        TypeError: for a network that cannot be made smaller (not ``Shrinkable``).
        ValueError: when the adapter cannot remove these players (naming what breaks it), for a mask that is not
            boolean or of the wrong size, for fills together with ``masked_value="mean"``.
    """
    if isinstance(layout, Mapping) and mask is None:  # the built-in models' compact(model, params, {site: mask})
        warnings.warn("compact(model, params, masks) is deprecated: call compact(model, params, layout, mask)"
                      " (layout.join(masks) gives the mask)", DeprecationWarning, stacklevel=2)
        return compact(model, variables, *_site_masks(model, variables, layout), x=x, fills=fills,
                       input_shape=input_shape)
    net = adapt(model, variables, apply_kwargs=apply_kwargs)
    if not isinstance(net, Shrinkable):
        raise TypeError(f"{type(net).__name__} cannot be made smaller (it is not Shrinkable)")
    mask = as_mask(mask, layout.num_players)
    if masked_value == "mean":
        if fills is not None:
            raise ValueError("give fills or masked_value='mean', not both")
        if x is None:
            raise ValueError("masked_value='mean' needs the evaluation inputs x")
        fills = mean_fills(net, x, layout)
    elif masked_value != "zero":
        raise ValueError(f"unknown masked_value {masked_value!r}; expected 'zero' or 'mean'")
    small = net.smaller(layout, mask, x=x, fills=fills, atol=atol)
    masks, error = layout.split(mask), float("nan")
    if x is not None:
        masked = np.asarray(net.predict(x, masks, fills))
        error = float(np.max(np.abs(np.asarray(small.predict(x)) - masked)))
    kept = {name: int(np.sum(keep)) for name, keep in masks.items()}
    return Compacted(small, size_report(net, small, layout, mask, input_shape), error, kept)


def _site_masks(model, params, masks: Mapping) -> tuple[PlayerLayout, np.ndarray]:
    """The layout of every layer of a built-in model and the mask of ``{site: bool[units]}`` (others kept whole)."""
    layout = adapt(model, params).layout(None, None)
    unknown = sorted(set(masks) - set(layout.names))
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the model has {list(layout.names)}")
    sizes = dict(layout.layers)
    return layout, layout.join({name: as_mask(keep, sizes[name]) for name, keep in masks.items()})


@dataclasses.dataclass
class CompactModel:
    """The result of the deprecated :func:`compact_flax` (use :func:`compact` and :class:`Compacted`)."""

    model: Any
    variables: Any
    features: dict
    params: int
    max_error: float
    network: Network

    def resized(self):
        """Linen: the context under which ``model.apply(variables, ...)`` runs the smaller producers."""
        return getattr(self.network, "resized", contextlib.nullcontext)()

    def __call__(self, x):
        return self.network.predict(x)


def compact_flax(model, variables: Mapping | None, x, layout: PlayerLayout, mask, *, masked_value: str = "zero",
                 apply_kwargs: Mapping | None = None, atol: float = 1e-4) -> CompactModel:
    """Deprecated: ``compact(model, variables, layout, mask, x=x, masked_value=..., apply_kwargs=..., atol=...)``."""
    warnings.warn("compact_flax is deprecated and goes in the next release: use"
                  " gtap_jax.compact(model, variables, layout, mask, x=x)", DeprecationWarning, stacklevel=2)
    done = compact(model, variables, layout, mask, x=x, masked_value=masked_value, apply_kwargs=apply_kwargs,
                   atol=atol)
    small = done.network
    return CompactModel(small.model, small.variables, dict(getattr(small, "widths", {})), small.num_params(),
                        done.max_error, small)


__all__ = ["CompactModel", "Compacted", "compact", "compact_flax"]
