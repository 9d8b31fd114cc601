"""A player's weights in any Flax model: which modules compute a Dense, the kernel that the weight baselines score,
and the parameters that silence a player in place (masked weights).

A module is a Dense by what it computes, not by its class: ``flax``'s ``Dense`` is one, and so is any module
with a 2-D ``kernel`` whose output on a call is ``x @ kernel (+ bias)``, or ``x @ kernel.T (+ bias)`` with the
kernel stored ``[out, in]`` (*transposed*: Hugging Face's ``FlaxConv1D``), :func:`dense_like` decides which.
Every reader of a kernel takes the transposed ones as their transpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from gtap_jax.network.modules.masking import GROUP, HEADS, Grouping, node_at


def dense_like(params, x, out) -> bool | None:
    """Whether a module of a class not known as a Dense computes one, by what it computed on one call: ``out = x @ W
    (+ bias)`` with its 2-D ``kernel`` W as ``[in, out]`` (False: not transposed), as ``[out, in]`` (True: Hugging
    Face's ``FlaxConv1D``), or neither (None; also where the arrays are not concrete)."""
    kernel = params.get("kernel") if isinstance(params, Mapping) else None
    if kernel is None or np.ndim(kernel) != 2 or not hasattr(out, "shape") or not hasattr(x, "shape"):
        return None
    try:
        x, out, kernel = (np.asarray(a, np.float64) for a in (x, out, kernel))
    except Exception:  # noqa: BLE001 (tracers: not concrete, so not decided)
        return None
    bias = np.asarray(params.get("bias", 0.0), np.float64)
    for transposed, w in ((False, kernel), (True, kernel.T)):
        if x.shape[-1] == w.shape[0] and out.shape[-1] == w.shape[1]:
            want = x @ w + bias
            if np.allclose(out, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.max(np.abs(want), initial=0.0)))):
                return transposed
    return None


class NormSpec(NamedTuple):
    """A module that computes a LayerNorm (``center``) or an RMSNorm over the feature axis, whatever its class:
    ``(x - mean) / sqrt(var + epsilon) * (offset + scale) + bias`` (:func:`norm_like`)."""

    center: bool
    scale: str
    offset: float
    bias: str | None
    epsilon: float


def norm_like(params, x, out) -> NormSpec | None:
    """Whether a module of a class not known as a norm computes one, by what it computed on one call (a norm of its
    own class, as Hugging Face's Llama and Gemma RMSNorms, ``weight * x / sqrt(mean(x^2) + eps)`` or ``(1 + weight)
    * ...``): its :class:`NormSpec`, or None (also where the arrays are not concrete)."""
    if not isinstance(params, Mapping) or not hasattr(x, "shape") or not hasattr(out, "shape"):
        return None
    try:
        x, out = np.asarray(x, np.float64), np.asarray(out, np.float64)
        vectors = {k: np.asarray(v, np.float64) for k, v in params.items() if np.shape(v) == np.shape(x)[-1:]}
    except Exception:  # noqa: BLE001 (tracers: not concrete, so not decided)
        return None
    if (x.shape != out.shape or x.ndim < 1 or x.shape[-1] < 2 or not vectors or len(vectors) != len(params)
            or len(vectors) > 2 or np.allclose(out, x)):  # a scale of its own; not an identity (a dropout)
        return None
    for center in (False, True):
        centred = x - x.mean(-1, keepdims=True) if center else x
        second = np.mean(centred**2, axis=-1, keepdims=True)
        for scale in vectors:
            for bias in (b for b in [*vectors, None] if b != scale):
                for offset in (0.0, 1.0):
                    weight = offset + vectors[scale]
                    added = vectors[bias] if bias is not None else 0.0
                    shifted = out - added
                    usable = np.abs(shifted) > 1e-3 * max(1.0, float(np.max(np.abs(shifted))))
                    if not usable.any():
                        continue
                    # the epsilon that explains the output: (w x / (out - b))^2 = mean + epsilon
                    ratio = (weight * centred / np.where(usable, shifted, 1.0)) ** 2 - second
                    epsilon = max(float(np.median(ratio[usable])), 0.0)
                    want = weight * centred / np.sqrt(second + epsilon) + added
                    if np.allclose(out, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.max(np.abs(want))))):
                        return NormSpec(center, scale, offset, bias, epsilon)
    return None


def einsum_axes(equation: str) -> tuple[int | None, int | None, int | None, int | None]:
    """``(input axis, output axis, input head axis, output head axis)`` of an ``Einsum`` module's kernel: where the
    input's and the output's last letters (their features) and second-to-last letters (heads, where the kernel holds
    them) appear in the kernel's (``"BTD,NDH->BTNH"``: 1, 2, None, 0; ``"BTNH,NHD->BTD"``: 1, 2, 0, None)."""
    operands, _, out = equation.replace(" ", "").partition("->")
    x, kernel = operands.split(",")

    def axis(spec, i):
        return kernel.find(spec[i]) if len(spec) >= -i and spec[i] in kernel else None

    return axis(x, -1), axis(out, -1), axis(x, -2), axis(out, -2)


def _kernel(node, path: str, transposed) -> np.ndarray | None:
    """The kernel of a module's parameters ``node`` as ``[..., in, out]`` (a transposed one turned), or None."""
    kernel = node.get("kernel") if isinstance(node, Mapping) else None
    if kernel is None:
        return None
    return np.asarray(kernel).T if path in transposed else np.asarray(kernel)


def kernel_of(tree, path: str, size: int, grouped: Grouping | None = None, transposed=frozenset(),
              kernel_axes=None) -> np.ndarray:
    """The ``kernel`` of the module at ``path`` in a nested dict of arrays, ``[..., in, size]``, if its output axis is
    ``size`` features; for a coupled group (``"stem:group"``, with ``grouped``), its members' kernels, ``[rows, size]``;
    for heads (``"attn:heads"``), each head's projection weights, ``[rows, heads]``.
    ``transposed``: the modules whose kernels are stored ``[out, in]``; ``kernel_axes``: an Einsum's head axes
    (:func:`einsum_axes`), for heads that its kernel holds.

    Raises:
        ValueError: when there is none (a BatchNorm, an activation, attention heads).
    """
    if path.endswith(HEADS):
        return _head_kernels(tree, path, size, grouped, transposed, kernel_axes or {})
    if path.endswith(GROUP) and grouped is not None and path in grouped.groups:
        kernels = [_kernel(node_at(tree, m), m, transposed) for m in grouped.groups[path].members]
        parts = [k.reshape(-1, size) for k in kernels if k is not None and k.shape[-1:] == (size,)]
        if parts:
            return np.concatenate(parts)
    kernel = _kernel(node_at(tree, path), path, transposed)
    if kernel is None or kernel.shape[-1] != size:
        raise ValueError(f"layer {path!r} has no kernel whose output axis is its {size} features: weight baselines"
                         " need the module that produces the features (a Dense or Conv), not e.g. a BatchNorm or"
                         " an activation after it")
    return kernel


def _head_kernels(tree, layer: str, heads: int, grouped: Grouping | None, transposed, kernel_axes) -> np.ndarray:
    """``[rows, heads]``: each head's weights, its query, key and value columns and its rows of the output projection
    (a traced attention's, or flax's ``attn/query`` ... ``attn/out``)."""
    attention = grouped.attentions.get(layer) if grouped is not None else None
    parts = []
    def by_player(kernel, axis):  # [..., heads of the kernel on axis, ...] -> [rows, players]: a group's heads together
        grouped = np.moveaxis(kernel, axis, 0).reshape(heads, -1)  # query head n = player n // group: rows in order
        return grouped.T

    if attention is not None and attention.split:  # the kernels hold the heads (Einsum): their head axes
        for module, which in [*((m, 3) for m, _ in attention.sources), *((c, 2) for c in attention.consumers)]:
            kernel, axes = _kernel(node_at(tree, module), module, ()), kernel_axes.get(module, ())
            if kernel is not None and len(axes) == 4 and axes[which] is not None:
                parts.append(by_player(kernel, axes[which]))
    elif attention is not None:
        for i, (module, offset) in enumerate(attention.sources):
            kernel = _kernel(node_at(tree, module), module, transposed)
            width = attention.heads_of(i) * attention.head_dim
            parts.append(by_player(kernel[..., offset: offset + width].reshape(-1, width), -1))
        for consumer in attention.consumers:
            kernel = _kernel(node_at(tree, consumer), consumer, transposed)
            parts.append(by_player(kernel.reshape(heads * attention.group * attention.head_dim, -1), 0))
    else:
        attn = layer[: -len(HEADS)]
        for proj in ("query", "key", "value"):
            kernel = _kernel(node_at(tree, f"{attn}/{proj}"), proj, ())
            if kernel is not None and kernel.ndim == 3 and kernel.shape[1] == heads:  # [in, heads, head_dim]
                parts.append(np.moveaxis(kernel, 1, -1).reshape(-1, heads))
        kernel = _kernel(node_at(tree, f"{attn}/out"), "out", ())
        if kernel is not None and kernel.shape[0] == heads:  # [heads, head_dim, out]
            parts.append(np.moveaxis(kernel, 0, -1).reshape(-1, heads))
    if not parts:
        raise ValueError(f"layer {layer!r}: no query, key, value or output projection kernels found for its heads"
                         " (call layout(layers, x) on this network first)")
    return np.concatenate(parts)


def silenced_params(node: Mapping, keep: np.ndarray, fill, path: str, transposed: bool = False) -> dict:
    """A module's parameters (by name) with the dropped features (``~keep``) set to output ``fill`` (default 0);
    ``transposed``: its kernel is ``[out, in]``.

    Raises:
        ValueError: for a module with no kernel or scale on its features, or a fill without a bias to carry it.
    """
    node = dict(node)
    size = keep.size
    weight = "kernel" if "kernel" in node else "scale" if "scale" in node else None
    axis = 0 if transposed and weight == "kernel" else -1
    if weight is None or np.shape(node[weight])[axis] != size:
        raise ValueError(f"cannot silence layer {path!r} through its parameters: it has no kernel or scale on its"
                         f" {size} features (evaluate the masked game, or name the Dense / Conv / norm layer)")
    if fill is not None and "bias" not in node:
        raise ValueError(f"layer {path!r} has no bias to carry the mean fill; use masked_value='zero'")
    shape = [1] * np.ndim(node[weight])
    shape[axis] = size
    node[weight] = np.where(keep.reshape(shape), np.asarray(node[weight]), 0.0).astype(np.asarray(node[weight]).dtype)
    if "bias" in node:
        bias = np.asarray(node["bias"])
        node["bias"] = np.where(keep, bias, 0.0 if fill is None else np.asarray(fill)).astype(bias.dtype)
    return node


__all__ = ["NormSpec", "dense_like", "einsum_axes", "kernel_of", "norm_like", "silenced_params"]
