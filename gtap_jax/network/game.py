"""The neuron game of a trained network: v(S) = quality with only S active."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import optax
from jaxtyping import ArrayLike

from gtap_jax.engine import ChainGame
from gtap_jax.layout import PlayerLayout
from gtap_jax.network.any_model import adapt, mean_fills
from gtap_jax.network.contract import cast_floats
from gtap_jax.shapes import PyTree, ValueFn

METRICS = ("accuracy", "neg_loss")
MASKED_VALUES = ("zero", "mean")
DTYPES = ("float32", "bfloat16")


# Logits within this share of the largest magnitude of the top one count as tied (float32 rounding of a rank-1
# update along a chain or star is ~1e-7 of it).
TIE_TOLERANCE = 1e-5


def metric_value(logits, y, metric: str):
    """Accuracy, or negative mean cross-entropy, of logits ``[N, classes]`` against labels ``[N]`` (or
    ``[N, ..., classes]`` against ``[N, ...]``, a mean over every position).

    Accuracy predicts the first class whose logit is within ``TIE_TOLERANCE`` of the top one (relative to the
    largest magnitude): an exact tie (a coalition of no players outputs the biases, 0 under Flax's default
    init) stays one class however the coalition's logits were computed, whole or incrementally.
    """
    if tuple(logits.shape[:-1]) != tuple(jnp.shape(y)):
        raise ValueError(f"the model's logits {tuple(logits.shape)} do not match the labels {tuple(jnp.shape(y))}:"
                         " labels [N] go with logits [N, classes], labels [N, ...] with [N, ..., classes] (a class"
                         " per token)")
    if metric == "accuracy":
        logits = logits.astype(jnp.float32)
        top = jnp.max(logits, axis=-1, keepdims=True)
        scale = jnp.max(jnp.abs(logits), axis=-1, keepdims=True)
        predicted = jnp.argmax(logits >= top - TIE_TOLERANCE * (1.0 + scale), axis=-1)
        return jnp.mean(predicted == y)
    return -jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y))


def _check(metric: str, masked_value: str, dtype: str) -> None:
    for name, value, allowed in (("metric", metric, METRICS), ("masked_value", masked_value, MASKED_VALUES),
                                 ("dtype", dtype, DTYPES)):
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")


def network_game(
    model,
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
    """The game whose players are the neurons (features) of ``layers``.

    v(S) is the metric of the network on the fixed evaluation set ``(x, y)``
    with every player outside S silenced: set to 0, or with
    ``masked_value="mean"`` to its mean output on ``x`` (no dropout
    rescaling). Players of other layers are intact. One layer alone gives a
    layer-by-layer game, as the paper plays AlexNet.

    Any model works through its adapter (:func:`gtap_jax.network.adapt`): a
    built-in model with its ``"params"``, a ``flax.linen.Module`` with its full
    variables, a ``flax.nnx.Module`` with ``params=None``, or a ``Network``. For the
    built-in models, with ``cache_prefix`` (default) everything up to the first
    player layer's activation is computed once here; a coalition's value runs only
    the rest. Flax models name their ``layers`` by module path (required) and get
    ``apply_kwargs`` in every call.

    With ``dtype="bfloat16"`` the per-coalition part runs in bfloat16: the
    parameters, the cached prefix activations (computed in float32) and the
    fills are cast once, and the metric is taken in float32 from bfloat16
    logits; ``benchmarks/bfloat16.py`` measures what it does to the ranking.

    Args:
        model, params: the trained network (above).
        x, y: the evaluation set (inputs, integer labels).
        layers: the player layers (built-in models: default every prunable layer).
        metric: ``"accuracy"`` or ``"neg_loss"`` (negative cross-entropy).
        masked_value: ``"zero"`` or ``"mean"``.
        cache_prefix: compute the mask-independent prefix once (built-in models).
        dtype: ``"float32"`` or ``"bfloat16"``, the precision of each coalition's forward pass.
        apply_kwargs: keyword arguments of every call of a Flax model (e.g. ``{"train": False}``).

    Returns:
        ``(value_fn, layout)``: ``value_fn(bool[P]) -> float32`` and the
        :class:`PlayerLayout` numbering the players.

    Raises:
        ValueError: for an unknown metric, masked value, dtype or layer, a repeated
            layer, or an empty layer list.
    """
    _check(metric, masked_value, dtype)
    net = adapt(model, params, apply_kwargs=apply_kwargs)
    x, y = jnp.asarray(x), jnp.asarray(y)
    layout = net.layout(layers, x[:2])
    fills = cast_floats(mean_fills(net, x, layout), dtype) if masked_value == "mean" else None
    forward = net.masked_logits(layout, x, dtype=dtype, cache_prefix=cache_prefix)

    def value(mask):
        return metric_value(forward(layout.split(mask), fills), y, metric)

    chain = net.chain_fn(layout, x, lambda logits: metric_value(logits, y, metric), dtype=dtype)
    if chain is None:
        return value, layout
    return ChainGame(value, lambda masks, star: chain(masks, fills, star),
                     lambda base, players: chain.flips(base, players, fills),
                     lambda base, players: chain.flip_pairs(base, players, fills)), layout


__all__ = ["DTYPES", "MASKED_VALUES", "METRICS", "ChainGame", "metric_value", "network_game"]
