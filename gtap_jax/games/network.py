"""The neuron game of a trained network: v(S) = quality with only S active."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from jaxtyping import ArrayLike

from gtap_jax.games.flax_models import flax_game, is_flax_model
from gtap_jax.layout import PlayerLayout
from gtap_jax.models.staged import StagedModel, apply_site, layout_for
from gtap_jax.shapes import PyTree, ValueFn

METRICS = ("accuracy", "neg_loss")
MASKED_VALUES = ("zero", "mean")
DTYPES = ("float32", "bfloat16")


def metric_value(logits, y, metric: str):
    """Accuracy, or negative mean cross-entropy, of logits ``[N, classes]`` against labels ``[N]``."""
    if metric == "accuracy":
        return jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return -jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y))


def mean_activations(model: StagedModel, params: PyTree, x: ArrayLike, layers: Sequence[str]) -> dict:
    """``{layer: float32[units]}``: each neuron's mean post-activation output on ``x`` (the "mean" fill)."""
    _, acts = jax.jit(lambda p, x: model.apply({"params": p}, x, capture=True))(params, jnp.asarray(x))
    return {n: jnp.mean(a.reshape(-1, a.shape[-1]), axis=0) for n, a in acts.items() if n in layers}


def network_game(
    model: StagedModel,
    params: PyTree,
    x: ArrayLike,
    y: ArrayLike,
    *,
    layers: Sequence[str] | None = None,
    metric: str = "accuracy",
    masked_value: str = "zero",
    cache_prefix: bool = True,
    dtype: str = "float32",
    apply_kwargs: dict | None = None,
) -> tuple[ValueFn, PlayerLayout]:
    """The game whose players are the neurons of ``layers``.

    v(S) is the metric of the network on the fixed evaluation set ``(x, y)``
    with every player outside S silenced: set to 0, or with
    ``masked_value="mean"`` to its mean activation on ``x`` (no dropout
    rescaling). Neurons of other layers are intact. One layer alone gives a
    layer-by-layer game, as the paper plays AlexNet.

    With ``cache_prefix`` (default), everything up to the first player layer's
    activation is computed once here; a coalition's value runs only the rest.

    With ``dtype="bfloat16"`` the per-coalition part runs in bfloat16: the
    parameters, the cached prefix activations (computed in float32) and the
    fills are cast once, and the metric is taken in float32 from bfloat16
    logits. On accelerators with bfloat16 matrix units this roughly halves
    the suffix's time and memory; ``benchmarks/bfloat16.py`` measures what it
    does to the ranking.

    Any other Flax model works too (:mod:`gtap_jax.games.flax_models`): a
    ``flax.linen.Module`` with its full variables as ``params``, or a
    ``flax.nnx.Module`` with ``params=None``; ``layers`` then names module paths
    and is required, and ``apply_kwargs`` is passed to every call.

    Args:
        model, params: a trained :class:`StagedModel` and its ``"params"`` (or a Linen or NNX model).
        x, y: the evaluation set (inputs, integer labels).
        layers: the player layers (default: every prunable layer).
        metric: ``"accuracy"`` or ``"neg_loss"`` (negative cross-entropy).
        masked_value: ``"zero"`` or ``"mean"``.
        cache_prefix: compute the mask-independent prefix once.
        dtype: ``"float32"`` or ``"bfloat16"``, the precision of each coalition's forward pass.

    Returns:
        ``(value_fn, layout)``: ``value_fn(bool[P]) -> float32`` and the
        :class:`PlayerLayout` numbering the players.

    Raises:
        ValueError: for an unknown metric, masked value, dtype or layer, or an empty layer list.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if masked_value not in MASKED_VALUES:
        raise ValueError(f"unknown masked_value {masked_value!r}; expected one of {MASKED_VALUES}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if is_flax_model(model):
        if layers is None:
            raise ValueError("name the player layers of a Flax model: layers=[module path, ...]")
        return flax_game(model, params, x, y, layers=list(layers), metric=metric, masked_value=masked_value,
                         dtype=dtype, apply_kwargs=apply_kwargs)
    compute = jnp.dtype(dtype)

    def cast(tree):
        return jax.tree.map(lambda a: a.astype(compute) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    layout = layout_for(model, layers)
    variables = {"params": params}
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    fills = None
    if masked_value == "mean":
        fills = cast(mean_activations(model, params, x, layout.names))
    suffix_variables = cast(variables)

    names = model.stage_names()
    first = min(names.index(n) for n in layout.names)
    first_name = names[first]

    if cache_prefix:
        prefix = cast(jax.jit(lambda v, x: model.apply(v, x, stop=first + 1))(variables, x))

        def value(mask):
            masks = layout.split(mask)
            h = apply_site(prefix, masks.pop(first_name), None if fills is None else fills[first_name])
            logits = model.apply(suffix_variables, h, masks=masks, fills=fills, start=first + 1)
            return metric_value(logits, y, metric)

    else:
        x = cast(x)

        def value(mask):
            # Without the barrier XLA would constant-fold the mask-independent prefix
            # of the closed-over data at compile time: prefix caching in disguise.
            x_in = jax.lax.optimization_barrier(x)
            logits = model.apply(suffix_variables, x_in, masks=layout.split(mask), fills=fills)
            return metric_value(logits, y, metric)

    return value, layout


__all__ = ["DTYPES", "MASKED_VALUES", "METRICS", "mean_activations", "metric_value", "network_game"]
