"""Which adapter a model gets (:func:`adapt`: the one place that asks), and the functions users call on any model.

``model`` below is a built-in staged model with its ``params``, a Linen module with
its ``variables`` (every collection), an NNX module (``variables=None``), or a
:class:`~gtap_jax.network.adapter.Network` already (returned as it is).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.layout import PlayerLayout
from gtap_jax.network.adapter import Network, SizeReport, size_report
from gtap_jax.network.linen import LinenNetwork
from gtap_jax.network.masking import feature_means, zero_fills_only
from gtap_jax.network.nnx import NNXNetwork
from gtap_jax.network.slicing import slice_sites
from gtap_jax.network.staged import StagedModel, StagedNetwork
from gtap_jax.network.train import batched_accuracy
from gtap_jax.shapes import InputShape, PyTree


def adapt(model, variables: Any = None, *, apply_kwargs: Mapping | None = None) -> Network:
    """The :class:`~gtap_jax.network.adapter.Network` of ``model`` (module docstring).

    Raises:
        ValueError: for variables given with an NNX model, apply_kwargs given to a built-in model.
        TypeError: for anything that is not a Flax module.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, StagedModel):
        if apply_kwargs:
            raise ValueError("the built-in models take no apply_kwargs")
        return StagedNetwork(model, variables)
    if isinstance(model, nnx.Module):
        if variables is not None:
            raise ValueError("an NNX model carries its own state: pass variables=None")
        return NNXNetwork(model, apply_kwargs)
    if isinstance(model, nn.Module):
        return LinenNetwork(model, variables, apply_kwargs)
    raise TypeError(f"expected a Flax (Linen or NNX) module or a gtap_jax Network, got {type(model).__name__}")


def restore(model, directory, example, *, apply_kwargs: Mapping | None = None) -> Network:
    """The network of ``model`` with the weights of an orbax checkpoint that ``Network.save`` wrote.

    ``example`` is one input batch (a Linen model's variables are shaped by ``model.init`` on it).

    Raises:
        ValueError: when the checkpoint does not hold this model's weights.
    """
    if isinstance(model, nn.Module) and not isinstance(model, StagedModel):
        kwargs = dict(apply_kwargs or {})
        like = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.asarray(example), **kwargs))
        net = adapt(model, like, apply_kwargs=apply_kwargs)
    else:
        net = adapt(model, apply_kwargs=apply_kwargs)
    try:
        return net.restored(directory)
    except Exception as e:  # orbax's errors for a missing folder or a tree of another shape
        raise ValueError(f"the checkpoint {str(directory)!r} does not hold this model's weights ({e})") from None


def mean_fills(net: Network, x, layout: PlayerLayout) -> dict[str, np.ndarray]:
    """Each player layer's mean output feature on ``x``: a silenced player's output under ``masked_value="mean"``."""
    zero_fills_only(layout.names)
    outputs = net.layer_outputs(jnp.asarray(x), layout)
    return {p: np.asarray(v) for p, v in feature_means(outputs, layout.names).items()}


def accuracy(model, params, x, y, *, masks: Mapping | None = None, fills: Mapping | None = None,
             batch_size: int = 1000, apply_kwargs: Mapping | None = None) -> float:
    """Accuracy on ``(x, y)`` in batches, optionally with players silenced by ``masks`` (to ``fills``, default 0)."""
    net = adapt(model, params, apply_kwargs=apply_kwargs)
    return batched_accuracy(lambda xb: net.predict(xb, masks, fills), x, y, batch_size)


def masked_weights(model, variables, layout: PlayerLayout, mask, fills: Mapping | None = None) -> Network:
    """The network with the players outside ``mask`` silenced in their modules' weights (jaxpruner-style: the
    unchanged model computes the masked network; its shapes stay). Linen and NNX models.

    Raises:
        ValueError: for a named module without a kernel or scale on its features.
    """
    return adapt(model, variables).masked_weights(layout, mask, fills)


class Compacted(NamedTuple):
    """A built-in model made smaller by :func:`compact`."""

    model: StagedModel
    params: PyTree
    report: SizeReport


def compact(model: StagedModel, params: PyTree, masks: Mapping[str, np.ndarray], *,
            input_shape: InputShape | None = None, fills: Mapping[str, np.ndarray] | None = None) -> Compacted:
    """Removes the silenced neurons of a built-in model: a smaller network with the same outputs.

    Args:
        model, params: a built-in staged model and its ``"params"``.
        masks: ``{site: bool[units]}``; sites not named are kept whole.
        input_shape: one input example's shape (or ``jax.ShapeDtypeStruct``), to report FLOPs (NaN if omitted).
        fills: ``{site: float[units]}``, each silenced neuron's constant output (folded into the next biases).

    Raises:
        TypeError: for another model (use :func:`compact_flax`).
        ValueError: for an unknown site, a mask of the wrong size or not boolean, or fills before a
            SAME-padded conv (not foldable into a bias).
    """
    if not isinstance(model, StagedModel):
        raise TypeError(f"compact takes the built-in staged models; for a Flax model ({type(model).__name__})"
                        " use gtap_jax.compact_flax(model, variables, x, layout, mask)")
    small = StagedNetwork(*slice_sites(model, params, masks, fills=fills))  # checks the sites and masks
    layout = PlayerLayout(tuple(model.site_sizes().items()))
    mask = layout.join(masks)
    return Compacted(small.model, small.params, size_report(StagedNetwork(model, params), small, layout, mask,
                                                            input_shape))


@dataclasses.dataclass
class CompactModel:
    """A smaller Flax model computing what the masked model computed (:func:`compact_flax`).

    Attributes:
        model: NNX: the smaller module. Linen: the user's module (run it through ``__call__`` or
            :meth:`resized`).
        variables: Linen: the smaller variables; NNX: None.
        features: ``{module path: output features kept}`` of every producer made smaller.
        params: parameters of the smaller model.
        max_error: largest absolute difference from the masked model on the evaluation inputs.
        network: the smaller network as a :class:`~gtap_jax.network.adapter.Network`.
    """

    model: Any
    variables: Any
    features: dict
    params: int
    max_error: float
    network: Network

    def resized(self):
        """Linen: the context under which ``model.apply(variables, ...)`` runs the smaller producers."""
        return self.network.resized() if self.variables is not None else contextlib.nullcontext()

    def __call__(self, x):
        return self.network.predict(x)


def compact_flax(model, variables: Mapping | None, x, layout: PlayerLayout, mask, *, masked_value: str = "zero",
                 apply_kwargs: Mapping | None = None, atol: float = 1e-4) -> CompactModel:
    """The smaller model of a chain of Dense / Conv / BatchNorm / elementwise layers (:mod:`gtap_jax.network.chain`).

    Args:
        model, variables, layout: as played by :func:`gtap_jax.network_game` (Linen with its
            variables, NNX with None; the layout it returned).
        x: evaluation inputs (the game's): the constants folded into biases are read and the
            result is checked on them.
        mask: ``bool[P]``, the players kept.
        masked_value: the game's ``"zero"`` or ``"mean"``.
        apply_kwargs: extra keyword arguments of every call (e.g. ``{"train": False}``).
        atol: tolerance of the constancy check and of the final check (relative to the output scale).

    Raises:
        ValueError: when the model is not such a chain around a named layer (naming the module that
            breaks it), the smaller model does not reproduce the masked one, or the mask is not boolean.
    """
    net = adapt(model, variables, apply_kwargs=apply_kwargs)
    if not isinstance(net, LinenNetwork | NNXNetwork):
        raise TypeError("compact_flax takes Linen and NNX models; for a built-in model use gtap_jax.compact")
    fills = mean_fills(net, x, layout) if masked_value == "mean" else None
    small, error = net.smaller_checked(layout, mask, x=x, fills=fills, atol=atol)
    variables = small.variables if isinstance(small, LinenNetwork) else None
    return CompactModel(small.model, variables, dict(small.widths), small.num_params(), error, small)


__all__ = ["CompactModel", "Compacted", "accuracy", "adapt", "compact", "compact_flax", "mean_fills",
           "masked_weights", "restore"]
