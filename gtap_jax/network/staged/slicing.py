"""Exact compaction of the staged models: slice a masked network into a physically smaller one.

Each masked site's producer loses the removed output units (conv: output
channels) and its consumer the matching inputs (a dense consumer of flattened
conv features: every position of a removed channel). Used by
:class:`gtap_jax.network.staged.StagedNetwork`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import as_mask
from gtap_jax.shapes import InputShape, PyTree, example_batch


def flops_per_example(model, params: PyTree, input_shape: InputShape) -> float:
    """FLOPs of one forward pass on one example, as counted by XLA's cost analysis.

    They depend only on the architecture and the parameter shapes, so the
    compiled count is memoised on those (a pruning run compacts to the same
    architectures many times).
    """
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), params)
    x = example_batch(input_shape)
    key = (model, x.shape, str(x.dtype), jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))
    if key not in _FLOPS:
        fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
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


def slice_sites(model, params: PyTree, masks: Mapping[str, np.ndarray], *,
                fills: Mapping[str, np.ndarray] | None = None) -> tuple:
    """``(smaller model, its params)``: the silenced neurons removed; the outputs equal the masked network's.

    Zero-masked by default; with ``fills`` (a silenced neuron outputs a constant, e.g. its mean
    activation), the constants' contribution is folded into the consumer's bias.

    Args:
        model: a staged model (``site_sizes``, ``site_specs``, ``with_sizes``).
        params: its parameters (the ``"params"`` collection).
        masks: ``{site: bool[units]}``; sites not named are kept whole.
        fills: ``{site: float[units]}``, the constant output of each silenced neuron.

    Raises:
        ValueError: for an unknown site, a mask of the wrong size, or fills
            before a SAME-padded conv (not foldable into a bias).

    A site with every neuron removed makes the network's output constant.
    Flax layers cannot have zero units, so it keeps one dead unit whose
    outgoing weights are zero: the same function, a few parameters more.
    """
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
        try:
            keep = as_mask(masks[spec.name], sizes[spec.name])
        except ValueError as e:
            raise ValueError(f"layer {spec.name}: {e}") from None
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
    return model.with_sizes(new_sizes), jax.tree.map(jnp.asarray, new)


__all__ = ["flops_per_example", "slice_sites"]
