"""Which adapter a model gets (:data:`ADAPTERS`, looked up by model type: the one place that asks), and the
functions users call on any model.

``model`` below is a built-in staged model with its ``params``, a Linen module with its ``variables``
(every collection), an NNX module (``variables=None``), a model of any registered type with what its
adapter takes, or a :class:`~gtap_jax.network.contract.Network` already (returned as it is). A new
framework is one folder with its adapter and one line here (``ADAPTERS["mine"] = Adapter(MyModel, make)``,
as the tests' function adapter shows); the contract tests then run over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout
from gtap_jax.network import linen, nnx, staged
from gtap_jax.network.contract import Adapter, Network, Shrinkable
from gtap_jax.network.modules.masking import feature_means, zero_fills_only
from gtap_jax.network.train import batched_accuracy
from gtap_jax.registry import Registry

ADAPTERS = Registry("model adapter", {
    "staged": staged.ADAPTER,
    "linen": linen.ADAPTER,
    "linen_trained": linen.TRAINED_ADAPTER,
    "nnx": nnx.ADAPTER,
})


def adapter_for(model) -> Adapter:
    """The registered adapter of ``model``: the entry of the most specific class it is an instance of.

    Raises:
        TypeError: for a model of no registered type, listing the registered ones.
    """
    entry = _registered(model)
    if entry is None:
        kinds = ", ".join(f"{name} ({entry.model_type.__module__}.{entry.model_type.__qualname__})"
                          for name, entry in ADAPTERS.items())
        raise TypeError(f"no model adapter takes a {type(model).__name__}; registered: {kinds}, or a gtap_jax Network")
    return entry


def _registered(model) -> Adapter | None:
    ranks = {cls: i for i, cls in enumerate(type(model).__mro__)}
    matching = [entry for entry in ADAPTERS.values() if entry.model_type in ranks]
    return min(matching, key=lambda entry: ranks[entry.model_type]) if matching else None


def adapt(model, variables: Any = None, *, apply_kwargs: Mapping | None = None) -> Network:
    """The :class:`~gtap_jax.network.contract.Network` of ``model`` (module docstring).

    Raises:
        ValueError: for variables given with an NNX model, apply_kwargs given to a built-in model.
        TypeError: for a model of no registered type.
    """
    if _registered(model) is None and isinstance(model, Network):  # a model first: a Linen module's attributes
        return model  # raise ValueError when unbound, so it is not asked whether it looks like a Network
    return adapter_for(model).network(model, variables, apply_kwargs)


def restore(model, directory, example, *, apply_kwargs: Mapping | None = None) -> Network:
    """The network of ``model`` with the weights of an orbax checkpoint that ``Network.save`` wrote.

    ``example`` is one input batch (a Linen model's variables are shaped by ``model.init`` on it).

    Raises:
        ValueError: when the checkpoint does not hold this model's weights.
    """
    entry = adapter_for(model)
    like = entry.variables_like(model, example, apply_kwargs) if entry.variables_like else None
    net = entry.network(model, like, apply_kwargs)
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
    unchanged model computes the masked network; its shapes stay).

    Raises:
        TypeError: for a network that cannot be changed in its weights (not ``Shrinkable``).
        ValueError: for a named module without a kernel or scale on its features.
    """
    net = adapt(model, variables)
    if not isinstance(net, Shrinkable):
        raise TypeError(f"{type(net).__name__} offers no masked weights (it is not Shrinkable)")
    return net.masked_weights(layout, mask, fills)


__all__ = ["ADAPTERS", "accuracy", "adapt", "adapter_for", "masked_weights", "mean_fills", "restore"]
