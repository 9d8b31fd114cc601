"""Slice a masked network into a physically smaller dense one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.models.staged import StagedModel
from gtap_jax.shapes import PyTree


class SizeReport(NamedTuple):
    """Size and cost of a network before and after compaction."""

    params_before: int
    params_after: int
    flops_before: float
    flops_after: float
    neurons_before: int
    neurons_after: int

    def to_dict(self) -> dict:
        return dict(self._asdict())


class Compacted(NamedTuple):
    model: StagedModel
    params: PyTree
    report: SizeReport


def count_params(params: PyTree) -> int:
    """Number of scalars in a parameter tree."""
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def flops_per_example(model: StagedModel, params: PyTree, input_shape: Sequence[int]) -> float:
    """FLOPs of one forward pass on one example, as counted by XLA's cost analysis.

    They depend only on the architecture and the parameter shapes, so the
    compiled count is memoised on those (a pruning run compacts to the same
    architectures many times).
    """
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), params)
    key = (model, tuple(input_shape), jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))
    if key not in _FLOPS:
        fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
        x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
        cost = fn.lower(shapes, x).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        _FLOPS[key] = float(cost.get("flops", float("nan")))
    return _FLOPS[key]


_FLOPS: dict = {}


def _slice_inputs(kernel: np.ndarray, keep: np.ndarray, spatial: tuple[int, int] | None) -> np.ndarray:
    if spatial is not None:  # dense kernel over flattened (H, W, C) features
        h, w = spatial
        k = kernel.reshape(h, w, -1, kernel.shape[-1])[:, :, keep, :]
        return k.reshape(-1, kernel.shape[-1])
    return kernel[keep] if kernel.ndim == 2 else kernel[..., keep, :]


def _fold_fill(consumer: dict, spec, removed: np.ndarray, fill: np.ndarray) -> None:
    """Adds the constant inputs of removed neurons to the consumer's bias (in place)."""
    if not removed.any():
        return
    kernel = np.asarray(consumer["kernel"], np.float64)
    if spec.consumer_spatial is not None:  # dense over flattened (H, W, C): every position sees the constant
        h, w = spec.consumer_spatial
        per_input = kernel.reshape(h, w, -1, kernel.shape[-1]).sum(axis=(0, 1))
    elif kernel.ndim == 2:
        per_input = kernel
    elif spec.consumer_padded:
        raise ValueError(
            f"{spec.consumer} is a SAME-padded conv: the constant fill of {spec.name}'s silenced channels reaches"
            " its border outputs only in part and cannot be folded into a bias; compact with zero fills"
        )
    else:  # a VALID conv: every output sees the constant through the whole kernel
        per_input = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]).sum(axis=0)
    shift = fill[removed].astype(np.float64) @ per_input[removed]
    consumer["bias"] = (np.asarray(consumer["bias"], np.float64) + shift).astype(np.asarray(consumer["bias"]).dtype)


def compact(
    model: StagedModel,
    params: PyTree,
    masks: Mapping[str, np.ndarray],
    *,
    input_shape: Sequence[int] | None = None,
    fills: Mapping[str, np.ndarray] | None = None,
) -> Compacted:
    """Removes the silenced neurons: a smaller network with the same outputs.

    Each masked site's producer loses the removed output units (conv: output
    channels) and the consumer loses the matching inputs. The compacted
    network's outputs equal the masked network's: zero-masked by default; with
    ``fills`` (a silenced neuron outputs a constant, e.g. its mean activation:
    ``network_game(masked_value="mean")``), the constants' contribution is
    folded into the consumer's bias.

    Args:
        model: a :class:`StagedModel`.
        params: its parameters (the ``"params"`` collection).
        masks: ``{site: bool[units]}``; sites not named are kept whole.
        input_shape: shape of one input example, to report FLOPs (NaN if omitted).
        fills: ``{site: float[units]}``, the constant output of each silenced neuron.

    Returns:
        :class:`Compacted` (model, params, size report).

    Raises:
        ValueError: for an unknown site, a mask of the wrong size, or fills
            before a SAME-padded conv (not foldable into a bias).

    A site with every neuron removed makes the network's output constant.
    Flax layers cannot have zero units, so it keeps one dead unit whose
    outgoing weights are zero: the same function, a few parameters more
    (counted in the report).
    """
    if not hasattr(model, "site_sizes"):
        raise TypeError(f"compact takes the built-in staged models; for a Flax model ({type(model).__name__})"
                        " use gtap_jax.compact_flax(model, variables, x, layout, mask)")
    sizes = model.site_sizes()
    unknown = set(masks) - set(sizes)
    if unknown:
        raise ValueError(f"unknown layer(s) {sorted(unknown)}; prunable layers: {list(sizes)}")
    new = jax.tree.map(np.asarray, dict(params))
    new = {k: dict(v) for k, v in new.items()}
    new_sizes = {}
    for spec in model.site_specs():
        if spec.name not in masks:
            continue
        keep = np.asarray(masks[spec.name], bool)
        if keep.shape != (sizes[spec.name],):
            raise ValueError(f"mask for {spec.name} must be bool[{sizes[spec.name]}], got shape {keep.shape}")
        dead = not keep.any()
        if dead:
            keep = np.zeros_like(keep)
            keep[0] = True
        if fills is not None and spec.name in fills:
            _fold_fill(new[spec.consumer], spec, ~np.asarray(masks[spec.name], bool), np.asarray(fills[spec.name]))
        new[spec.producer]["kernel"] = new[spec.producer]["kernel"][..., keep]
        new[spec.producer]["bias"] = new[spec.producer]["bias"][keep]
        new[spec.consumer]["kernel"] = _slice_inputs(new[spec.consumer]["kernel"], keep, spec.consumer_spatial)
        if dead:
            new[spec.consumer]["kernel"] = np.zeros_like(new[spec.consumer]["kernel"])
        new_sizes[spec.name] = int(keep.sum())
    small = model.with_sizes(new_sizes)
    new = jax.tree.map(jnp.asarray, new)
    nan = float("nan")
    report = SizeReport(
        params_before=count_params(params),
        params_after=count_params(new),
        flops_before=flops_per_example(model, params, input_shape) if input_shape else nan,
        flops_after=flops_per_example(small, new, input_shape) if input_shape else nan,
        neurons_before=sum(sizes.values()),
        neurons_after=sum(int(np.sum(masks.get(k, np.ones(v, bool)))) for k, v in sizes.items()),
    )
    return Compacted(small, new, report)


__all__ = ["Compacted", "SizeReport", "compact", "count_params", "flops_per_example"]
