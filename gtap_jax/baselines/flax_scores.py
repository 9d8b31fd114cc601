"""Baseline scores for the players of any Flax model (the layouts of :func:`gtap_jax.games.flax_models.flax_game`).

A player is a feature of a named module's output; its weights are the slice of
that module's ``kernel`` along the kernel's last axis (a Dense unit's column, a
Conv channel's filter). A named module without a kernel whose last axis is its
features (a BatchNorm, an activation) has no incoming weights to score: that is
an error naming it, not a silent fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gtap_jax.games.flax_models import node_at
from gtap_jax.layout import PlayerLayout


def _kernel_of(tree, path: str, size: int, where: str):
    node = node_at(tree, path)
    kernel = node.get("kernel") if isinstance(node, Mapping) else getattr(node, "kernel", None)
    if isinstance(kernel, nnx.Variable):  # an nnx.Param: its array
        kernel = kernel[...]
    if kernel is None or np.shape(kernel)[-1] != size:
        raise ValueError(f"layer {path!r} has no kernel whose last axis is its {size} features in {where}: weight"
                         " baselines need the module that produces the features (a Dense or Conv), not e.g. a"
                         " BatchNorm or an activation after it")
    return kernel


def _params_of(model, variables) -> Any:
    if isinstance(model, nnx.Module):
        return nnx.state(model, nnx.Param)
    return variables["params"]


def flax_magnitude_scores(model, variables: Mapping | None, layout: PlayerLayout) -> np.ndarray:
    """L2 norm of each player's incoming weights, ``float[P]``, for a Linen (with variables) or NNX model."""
    params = _params_of(model, variables)
    out = []
    for path, size in layout.layers:
        k = np.asarray(_kernel_of(params, path, size, "the parameters"), np.float64)
        out.append(np.sqrt(np.sum(k.reshape(-1, size) ** 2, axis=0)))
    return np.concatenate(out)


def flax_taylor_scores(model, variables: Mapping | None, x, y, layout: PlayerLayout, *,
                       apply_kwargs: Mapping | None = None) -> np.ndarray:
    """Sum over each player's incoming weights of ``|w * dL/dw|`` (mean cross-entropy on ``(x, y)``), ``float[P]``."""
    kwargs = dict(apply_kwargs or {})
    x, y = jnp.asarray(x), jnp.asarray(y)
    if isinstance(model, nnx.Module):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(p):
            logits = nnx.merge(graphdef, p, rest)(x, **kwargs)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    else:
        params = variables["params"]

        def loss(p):
            logits = model.apply({**variables, "params": p}, x, **kwargs)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    grads = jax.grad(loss)(params)
    out = []
    for path, size in layout.layers:
        w = np.asarray(_kernel_of(params, path, size, "the parameters"), np.float64)
        gw = np.asarray(_kernel_of(grads, path, size, "the gradients"), np.float64)
        out.append(np.sum(np.abs(w * gw).reshape(-1, size), axis=0))
    return np.concatenate(out)


__all__ = ["flax_magnitude_scores", "flax_taylor_scores"]
