"""A smaller network for any Flax model that is a chain of Dense / Conv / BatchNorm / elementwise layers.

The Linen and NNX adapters record the leaf module calls of one masked pass
(:class:`Call`, with the kind of each module); :func:`chain_cuts` reads from
them what to remove: each named layer's producer (the Dense or Conv itself, or
the one before a named BatchNorm) loses the dropped output features, every
BatchNorm between it and the next Dense / Conv (its consumer) loses those
channels, and the consumer loses the matching inputs: a Dense after a flatten
loses every position of a dropped channel (channels-last flatten, as Flax
writes it). What a dropped feature still fed the consumer (a mean fill, a
BatchNorm's shift, the bias through a relu) is observed on the evaluation
inputs; when it is the same for every example and position it is added to the
consumer's bias, otherwise the layer is not part of a chain (a residual
connection, attention, a LayerNorm over the features) and that is an error.
:func:`smaller_network` then runs the adapter's smaller network and requires
its outputs to equal the masked model's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gtap_jax.layout import PlayerLayout, as_mask
from gtap_jax.network.modules.masking import HEADS

PRODUCERS = ("dense", "conv")


def kind_of(module, dense: type, conv: type, norm: type) -> str:
    """A module's :attr:`Call.kind`, given its framework's Dense, Conv and BatchNorm classes (a module of another
    class that computes a Dense is found by :func:`~gtap_jax.network.modules.weights.dense_like`)."""
    if isinstance(module, dense):
        return "dense"
    if isinstance(module, conv) and getattr(module, "feature_group_count", 1) == 1:
        return "conv"
    return "norm" if isinstance(module, norm) else "other"
INSTEAD = "use the masked weights (gtap_jax.network.masked_weights) instead"


@dataclasses.dataclass
class Call:
    """One leaf module call of a masked pass, as the adapter saw it.

    Attributes:
        path: the module path.
        kind: ``"dense"``, ``"conv"`` (one feature group), ``"norm"`` (BatchNorm: per-channel) or ``"other"``.
        type_name: the module's class name, for messages.
        inputs: its first input in this pass.
        has_params: whether it has parameters.
        padding: a conv's padding (``"VALID"``, ``"SAME"``, ...).
        transposed: a Dense whose kernel is ``[out, in]`` (:func:`~gtap_jax.network.modules.weights.dense_like`).
    """

    path: str
    kind: str
    type_name: str
    inputs: Any
    has_params: bool
    padding: Any = "VALID"
    transposed: bool = False


class ChainCuts(NamedTuple):
    """What :func:`chain_cuts` found, per module path.

    Attributes:
        out_keep: output features (and a BatchNorm's channels) that stay.
        in_keep: a consumer's inputs that stay.
        bias_add: per consumer, ``(dropped inputs, their constant values, dead kept inputs)``.
    """

    out_keep: dict
    in_keep: dict
    bias_add: dict

    @property
    def touched(self) -> list[str]:
        return sorted(set(self.out_keep) | set(self.in_keep))

    def features(self, calls: list[Call]) -> dict[str, int]:
        """``{producer path: output features kept}``."""
        kinds = {c.path: c.kind for c in calls}
        return {p: int(k.sum()) for p, k in self.out_keep.items() if kinds[p] in PRODUCERS}


def _producer_of(calls: list[Call], layer: str, order: list[str]) -> int:
    """The index of the call producing ``layer``'s features (the Dense / Conv itself, or before its BatchNorm)."""
    if layer.endswith(HEADS):
        raise ValueError(f"layer {layer!r}: attention heads do not compact into a chain; {INSTEAD}")
    if order.count(layer) != 1:
        raise ValueError(f"layer {layer!r} is called {order.count(layer)} times in one pass; only a chain"
                         f" (each module called once) compacts: {INSTEAD}")
    i = order.index(layer)
    if calls[i].kind == "norm" and i > 0 and calls[i - 1].kind in PRODUCERS:
        i -= 1  # a named BatchNorm: its channels are its producer's
    if calls[i].kind not in PRODUCERS:
        raise ValueError(f"layer {layer!r} ({calls[i].type_name}) has no Dense / Conv producing its features right"
                         f" before it; compaction needs one ({INSTEAD})")
    return i


def chain_cuts(calls: list[Call], layout: PlayerLayout, keep: dict, atol: float) -> ChainCuts:
    """Which features of which module stay, and the constants the dropped ones fed on (module docstring).

    Raises:
        ValueError: naming the module that breaks the chain.
    """
    plan = ChainCuts({}, {}, {})
    order = [c.path for c in calls]
    for layer in layout.names:
        i = _producer_of(calls, layer, order)
        producer, k = calls[i].path, keep[layer]
        kept = k.copy()
        kept[0] |= not k.any()  # Flax layers cannot have zero units: one dead unit, its outgoing weights 0
        plan.out_keep[producer] = kept
        j = i + 1
        while j < len(calls) and calls[j].kind not in PRODUCERS:
            if calls[j].has_params and calls[j].kind != "norm":
                raise ValueError(f"between {producer!r} and the next Dense / Conv sits {calls[j].path!r}"
                                 f" ({calls[j].type_name}), which mixes features: not a chain ({INSTEAD})")
            if calls[j].has_params:
                plan.out_keep[calls[j].path] = kept  # a BatchNorm on the producer's channels
            j += 1
        if j == len(calls):
            raise ValueError(f"layer {layer!r} feeds the model's output with no Dense / Conv after it; pruning"
                             " the output layer is not compaction (drop it from layers)")
        _plan_consumer(plan, calls[j], layer, producer, k, kept, atol)
    return plan


def _plan_consumer(plan: ChainCuts, consumer: Call, layer: str, producer: str, k, kept, atol: float) -> None:
    inputs = np.asarray(consumer.inputs)
    width, channels = inputs.shape[-1], k.size
    if width % channels or (width != channels and consumer.kind != "dense"):
        raise ValueError(f"{consumer.path!r} takes {width} inputs, not {channels} channels of {producer!r}"
                         f" (or their channels-last flatten): not a chain ({INSTEAD})")
    rows = np.tile(k, width // channels)  # channels-last flatten: the channel is the fastest index
    dropped = inputs.reshape(-1, width)[:, ~rows]
    const = dropped[0] if len(dropped) else np.zeros(0)
    if not np.allclose(dropped, const, atol=atol):
        raise ValueError(f"the dropped features of {layer!r} reach {consumer.path!r} with values that vary"
                         f" between examples: not a chain ({INSTEAD})")
    if np.any(np.abs(const) > atol) and width == channels and consumer.padding != "VALID" and consumer.kind != "dense":
        raise ValueError(f"the dropped channels of {layer!r} feed the padded conv {consumer.path!r} a constant"
                         f" (up to {np.max(np.abs(const)):.3g}), which no bias can stand for at its borders:"
                         " name the layer after the normalisation (its BatchNorm) with masked_value='zero'"
                         f" so they feed 0, or {INSTEAD}")
    plan.in_keep[consumer.path] = np.tile(kept, width // channels)
    plan.bias_add[consumer.path] = (~rows, const, ~rows[plan.in_keep[consumer.path]])


def resized_arrays(params: dict, stats: dict | None, path: str, plan: ChainCuts, transposed: bool = False) -> dict:
    """New arrays (by name) of one module's parameters and statistics (``transposed``: a Dense kernel ``[out, in]``,
    cut as its transpose)."""
    if transposed:
        return {name: value.T if name == "kernel" else value for name, value in resized_arrays(
            {**params, "kernel": np.asarray(params["kernel"]).T}, stats, path, plan).items()}
    new = {}
    if path in plan.bias_add:
        dropped, const, dead = plan.bias_add[path]
        kernel = np.asarray(params["kernel"], np.float64)
        added = np.einsum("i,...io->...o", const, kernel[..., dropped, :]).reshape(-1, kernel.shape[-1]).sum(0)
        if np.any(added != 0) and "bias" not in params:
            raise ValueError(f"{path!r} has no bias to absorb the constant its dropped inputs fed it")
        if "bias" in params:
            new["bias"] = np.asarray(params["bias"]) + added.astype(np.asarray(params["bias"]).dtype)
        new["kernel"] = np.asarray(params["kernel"])[..., plan.in_keep[path], :].copy()
        new["kernel"][..., dead, :] = 0  # a dead unit kept so that no layer has zero units
    if path in plan.out_keep:
        k = plan.out_keep[path]
        for name, value in {**params, **(stats or {}), **new}.items():
            new[name] = np.asarray(value)[..., k]
    return new


def smaller_network(layout: PlayerLayout, mask, x, fills, *, forward: Callable, record: Callable, rebuild: Callable,
                    atol: float = 1e-4, check: bool = True):
    """``(smaller network, largest difference from the masked one on x)`` for an adapter.

    Args:
        forward: ``(masks, fills) -> logits`` of the masked model on ``x``.
        record: ``(masks, fills) -> [Call]``, the leaf calls of one masked pass on ``x``.
        rebuild: ``(plan, calls) -> Network``, the adapter's smaller network.
        check: False skips running it against ``forward`` (the difference is then NaN).

    Raises:
        ValueError: when the model is not such a chain, or the smaller network does not reproduce the masked one.
    """
    keep = {p: np.asarray(k) for p, k in layout.split(as_mask(mask, layout.num_players)).items()}
    masks = {p: np.asarray(k) for p, k in keep.items()}
    calls = record(masks, fills)
    small = rebuild(chain_cuts(calls, layout, keep, atol), calls)
    if not check:
        return small, float("nan")
    reference = np.asarray(forward(masks, fills))
    try:
        out = np.asarray(small.predict(x))
    except Exception as e:  # a shape error: something outside the chain still expects the old width
        raise ValueError(f"the smaller model fails ({type(e).__name__}: {str(e).splitlines()[0]}): the model is"
                         f" not a chain of Dense / Conv / BatchNorm / elementwise layers as assumed; {INSTEAD}") from e
    error = float(np.max(np.abs(out - reference))) if out.shape == reference.shape else np.inf
    if not error <= atol * max(1.0, float(np.max(np.abs(reference)))):
        raise ValueError(f"the smaller model does not reproduce the masked model (largest difference {error:.3g}):"
                         " the model is not a chain of Dense / Conv / BatchNorm / elementwise layers as assumed;"
                         f" {INSTEAD}")
    return small, error


__all__ = ["PRODUCERS", "Call", "ChainCuts", "chain_cuts", "kind_of", "resized_arrays", "smaller_network"]
