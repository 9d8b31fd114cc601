"""Pruned parameters for any Flax model: the masked network as plain weights (jaxpruner-style).

For a Linen or NNX model played by :func:`gtap_jax.games.flax_models.flax_game`,
:func:`masked_variables` (Linen) and :func:`masked_model` (NNX) return weights under
which the *unchanged* model computes exactly what the masked game computed: each
dropped feature of a named module outputs 0 (or its fill) because its weights say so.

* a module with a ``kernel`` whose last axis is the features (Dense, Conv): the
  dropped features' kernel slices become 0 and their bias the fill (0 by default);
* a module with a ``scale`` on the features (BatchNorm, LayerNorm): the dropped
  features' scale becomes 0 and their bias the fill.

The network keeps its shapes (a smaller network needs the model's structure:
:func:`gtap_jax.compact_flax` builds one for chains). A named module with
neither is an error that names it.

For *training* under a mask (the lottery ticket, fine-tuning a pruned network):
:func:`masked_apply` (Linen: ``model.apply`` with the dropped features' outputs
multiplied by 0, so they get no gradient) and :func:`masked_clone` /
:func:`unmasked` (NNX: a clone whose named modules are wrapped by fixed masks,
held in :class:`Mask` variables that no ``nnx.Param`` optimiser updates, and the
trained modules taken back out).
"""

from __future__ import annotations

from collections.abc import Mapping

import flax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.games.flax_models import _ACTIVE, _check_names, _linen_interceptor, _nnx_modules, node_at
from gtap_jax.layout import PlayerLayout


def _silenced(node: dict, keep: np.ndarray, fill: np.ndarray | None, path: str) -> dict:
    """A module's parameters with the dropped features (``~keep``) set to output ``fill`` (default 0)."""
    node = dict(node)
    size = keep.size
    weight = "kernel" if "kernel" in node else "scale" if "scale" in node else None
    if weight is None or np.shape(node[weight])[-1] != size:
        raise ValueError(f"cannot silence layer {path!r} through its parameters: it has no kernel or scale on its"
                         f" {size} features (evaluate the masked game, or name the Dense / Conv / norm layer)")
    if fill is not None and "bias" not in node:
        raise ValueError(f"layer {path!r} has no bias to carry the mean fill; use masked_value='zero'")
    node[weight] = np.where(keep, np.asarray(node[weight]), 0.0).astype(np.asarray(node[weight]).dtype)
    if "bias" in node:
        bias = np.asarray(node["bias"])
        node["bias"] = np.where(keep, bias, 0.0 if fill is None else np.asarray(fill)).astype(bias.dtype)
    return node


def masked_variables(variables: Mapping, layout: PlayerLayout, mask, fills: Mapping | None = None) -> dict:
    """Linen: ``variables`` with the players outside ``mask`` silenced in their modules' parameters.

    ``fills`` (``{layer: float[features]}``) gives the mean-fill values; None for zero.

    Raises:
        ValueError: for a named module without a kernel or scale on its features.
    """
    out = flax.core.unfreeze(variables)
    for path, keep in layout.split(np.asarray(mask, bool)).items():
        *parents, last = path.split("/")
        node = node_at(out["params"], "/".join(parents))
        if node is None or last not in node:
            raise ValueError(f"cannot silence layer {path!r} through its parameters: it has none (evaluate the"
                             " masked game, or name the Dense / Conv / norm layer before it)")
        node[last] = _silenced(node[last], np.asarray(keep), None if fills is None else fills[path], path)
    return out


def masked_model(model: nnx.Module, layout: PlayerLayout, mask, fills: Mapping | None = None) -> nnx.Module:
    """NNX: a clone of ``model`` with the players outside ``mask`` silenced in their modules' parameters."""
    clone = nnx.clone(model)
    for path, keep in layout.split(np.asarray(mask, bool)).items():
        node = node_at(clone, path)
        params = {n: getattr(node, n)[...] for n in ("kernel", "scale", "bias")
                  if isinstance(getattr(node, n, None), nnx.Variable)}
        for name, value in _silenced(params, np.asarray(keep), None if fills is None else fills[path],
                                     path).items():
            getattr(node, name)[...] = value
    return clone


def masked_apply(model: nn.Module, layout: PlayerLayout, mask):
    """Linen: ``apply(variables, *args, **kwargs)``, ``model.apply`` with the players outside ``mask`` zeroed at
    their modules' outputs (a new function per mask, so a ``jax.jit`` of it is traced per mask)."""
    masks = {p: jnp.asarray(k) for p, k in layout.split(np.asarray(mask, bool)).items()}

    def apply(variables, *args, **kwargs):
        token = _ACTIVE.set((masks, None))
        try:
            with nn.intercept_methods(_linen_interceptor):
                return model.apply(variables, *args, **kwargs)
        finally:
            _ACTIVE.reset(token)

    return apply


class Mask(nnx.Variable):
    """A fixed feature mask inside a :func:`masked_clone` (not an ``nnx.Param``: optimisers leave it)."""


class _Masked(nnx.Module):
    def __init__(self, inner: nnx.Module, keep):
        self.inner = inner
        self.keep = Mask(jnp.asarray(keep))

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        return out * self.keep[...].reshape((1,) * (out.ndim - 1) + (-1,)).astype(out.dtype)


def masked_clone(model: nnx.Module, layout: PlayerLayout, mask) -> nnx.Module:
    """NNX: a clone of ``model`` whose named modules' outputs are multiplied by ``mask`` in every call."""
    clone = nnx.clone(model)
    _check_names(layout.names, _nnx_modules(clone))
    for path, keep in layout.split(np.asarray(mask, bool)).items():
        _replace(clone, path, lambda node, keep=keep: _Masked(node, keep))
    return clone


def unmasked(model: nnx.Module, layout: PlayerLayout) -> nnx.Module:
    """NNX: a clone of a :func:`masked_clone` (trained or not) with the mask wrappers taken out."""
    clone = nnx.clone(model)
    for path in layout.names:
        _replace(clone, path, lambda node: node.inner if isinstance(node, _Masked) else node)
    return clone


def _replace(root: nnx.Module, path: str, how) -> None:
    *parents, last = path.split("/")
    parent = node_at(root, "/".join(parents))
    if last.isdigit():
        parent[int(last)] = how(parent[int(last)])
    else:
        setattr(parent, last, how(getattr(parent, last)))


__all__ = ["Mask", "masked_apply", "masked_clone", "masked_model", "masked_variables", "unmasked"]
