"""Masks at named modules of any Flax model: what the Linen and NNX adapters share.

Players are the features of named modules: the output units of a Dense layer,
the output channels of a Conv, BatchNorm or any module whose output has a feature
axis (the last, as Flax lays features out). A player outside the coalition has
its feature of that module's *output* set to 0 (or to its mean on the evaluation
set): naming the BatchNorm of conv -> BatchNorm -> relu silences the channel after
the normalisation, before the relu, so the relu passes 0 on.

The coalition being evaluated travels in a context variable (:data:`ACTIVE`),
set around one forward pass by :func:`with_active`; the Linen interceptor and
the NNX wrappers read it at each named module. Set to a dict instead, a pass
records every named module's output (shapes, mean fills).

Attention heads: a layer ``"attn:heads"`` makes the heads of the attention module at
``attn`` the players. A dropped head's output, ``[..., heads, head_dim]`` as it
enters the output projection ``attn/out``, is set to 0 (or to its mean), so the head
contributes nothing (or a constant) to the attention's output.

Coupled groups: a layer ``"stem:group"`` makes the features of ``stem``'s group
(:mod:`gtap_jax.network.modules.coupling`: the modules a residual add ties together) the players. A
dropped feature is absent: :func:`expand` gives the group's mask to every member's output and
every consumer's input (0 there), and a LayerNorm or RMSNorm among the members normalises over
the kept features only (:func:`grouped_norm`), as a smaller network without them computes.
:data:`OVERRIDE` lets a pass record a module's input or output, or replace its output (incremental chains).
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gtap_jax.network.modules.heads import attention_at

# (masks, fills) of the coalition being evaluated, or a dict recording outputs
ACTIVE: contextvars.ContextVar = contextvars.ContextVar("gtap_masks", default=None)

# {module path: list} records the module's first input there; {module path: array} replaces its output by
# the array (the Linen interceptor and the NNX wrappers read it at each module they mask; incremental.py)
OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("gtap_override", default=None)

# {module path: weights.NormSpec} of the modules of other classes than flax's norms that compute one (set by an
# adapter around a pass: a coupled group's member normalises over the kept features, :func:`grouped_norm`)
NORMS: contextvars.ContextVar = contextvars.ContextVar("gtap_norms", default=None)

HEADS = ":heads"  # a layer "attn:heads": the heads of the attention module at "attn" are the players
GROUP = ":group"  # a layer "stem:group": the features of stem's coupled group (coupling.py), absent when dropped

INPUT = "<in"  # masks[path + INPUT]: the features of a coupled group silenced at the input of the module at path
GROUPED = "<grouped>"  # masks[path + GROUPED]: path is a member of a coupled group (a norm there normalises the kept)


class Grouping(NamedTuple):
    """The coupled groups and traced heads that layers name: ``{member: layer}``, ``{consumer: layer}``,
    ``{layer: Group}`` and ``{layer: Attention}`` (:mod:`gtap_jax.network.modules.heads`)."""

    members: dict
    consumers: dict
    groups: dict
    attentions: dict


def grouping(layers: Sequence[str], groups: Sequence, attentions: Sequence = ()) -> Grouping:
    """The coupled groups (:class:`gtap_jax.network.modules.coupling.Group`, ``"stem:group"``) and the heads found in
    the trace (:class:`gtap_jax.network.modules.heads.Attention`, ``"attn:heads"``) that ``layers`` name. A heads
    layer whose module holds no traced attention is left to flax's own attention modules (masked at ``attn/out``).

    Raises:
        ValueError: for a group of a module that is not a leaf module, groups that overlap another layer, a group
            whose features are concatenated with others along the feature axis (not supported), a module that holds
            several attentions, or an attention whose head counts do not divide.
    """
    found = Grouping({}, {}, {}, {})
    for layer in layers:
        if layer.endswith(HEADS):
            attention = attention_at(attentions, layer[: -len(HEADS)])
            if attention is not None and attention.unsupported:
                raise ValueError(f"layer {layer!r}: its queries, keys and values have {attention.unsupported}, which"
                                 " heads as players do not support; name its feed-forward units or the residual"
                                 " stream instead")
            if attention is not None:
                found.attentions[layer] = attention
                found.consumers.update({c: layer for c in attention.consumers})
            continue
        if not layer.endswith(GROUP):
            continue
        base = layer[: -len(GROUP)]
        group = next((g for g in groups if base in g.members), None)
        if group is None:
            raise ValueError(f"layer {layer!r}: {base!r} is not a leaf module (a module with no module inside);"
                             " name the Dense / Conv / norm whose features the group shares")
        if group.concatenated:
            raise ValueError(f"layer {layer!r}: the features of its group {list(group.members)} are concatenated with"
                             " others along the feature axis, where a group cannot follow them (not supported);"
                             " name a module after the concatenation, or its members one by one")
        for member in group.members:
            if member in found.members or member in layers:
                raise ValueError(f"layer {layer!r} overlaps another layer at {member!r}: its group is"
                                 f" {list(group.members)}")
            found.members[member] = layer
        found.consumers.update({c: layer for c in group.consumers})
        found.groups[layer] = group
    return found


def check_logits(out, batch: int) -> None:
    """The model contract: a model maps a batch of inputs to one array of logits ``[batch, classes]`` (or
    ``[batch, ..., classes]``, labelled ``[batch, ...]``: a class per token).

    Raises:
        ValueError: naming what it returned instead, and what to do.
    """
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        kind = type(out).__name__
        keys = f" with keys {sorted(out)}" if isinstance(out, Mapping) else ""
        raise ValueError(f"the model returned a {kind}{keys}; gtap_jax needs one array of logits [batch, classes]:"
                         " wrap the model so that it returns them (e.g. its output's logits; a Hugging Face model:"
                         " gtap_jax.network.hf.network), with fixed extra arguments in apply_kwargs")
    if len(out.shape) < 2 or out.shape[0] != batch:
        raise ValueError(f"the model returned shape {tuple(out.shape)} for a batch of {batch}; gtap_jax needs logits"
                         f" [batch, classes] (a sequence model: pool or pick the tokens to classify, e.g. the last;"
                         f" inputs of another batch size, such as fixed attention masks, go with the batch)")


def warn_if_grouped(layers: Sequence[str], groups: Sequence) -> None:
    """A warning for each plain layer (no ``:group``) that is one member of a coupled group of several: naming it
    alone silences that module's output only, and the group's other members keep the feature alive."""
    for layer in layers:
        if layer.endswith((GROUP, HEADS)):
            continue
        group = next((g for g in groups if layer in g.members and len(g.members) > 1), None)
        if group is not None:
            warnings.warn(f"layer {layer!r} is one member of the coupled group {list(group.members)}: naming it alone"
                          f" silences its own output only (the others keep each feature alive); name"
                          f" {layer + GROUP!r} for the group's features", UserWarning, stacklevel=4)


def expand(masks: Mapping, grouped: Grouping | None) -> dict:
    """``masks`` by layer, each coupled group's mask given to its members' outputs and its consumers' inputs: a
    dropped feature is absent, as from a smaller model (:mod:`gtap_jax.network.modules.shrink_groups`)."""
    if not grouped or not (grouped.groups or grouped.attentions):
        return dict(masks)
    out = {k: v for k, v in masks.items() if not k.endswith(GROUP)}
    out.update({member: masks[layer] for member, layer in grouped.members.items() if layer in masks})
    out.update({c + INPUT: _per_feature(masks[layer], grouped.attentions.get(layer))
                for c, layer in grouped.consumers.items() if layer in masks})
    out.update({m + GROUPED: masks[layer] for m, layer in grouped.members.items() if layer in masks})
    return out


def _per_feature(mask, attention):
    """A layer's mask at its consumers' input features: a traced attention's head mask, one entry per head feature."""
    if attention is None:
        return mask
    mask = jnp.repeat(mask, attention.group, axis=-1)  # a key / value head's group of query heads
    if attention.split:  # the consumer reads [..., heads, head_dim]
        return jnp.broadcast_to(mask[..., None], (*mask.shape, attention.head_dim))
    return jnp.repeat(mask, attention.head_dim, axis=-1)


def mask_input(path: str, x):
    """``x``, the input of the module at ``path``, with the dropped features of a coupled group set to 0."""
    active = ACTIVE.get()
    if not isinstance(active, tuple) or path + INPUT not in active[0]:
        return x
    mask = active[0][path + INPUT]  # [features], or [heads, head_dim] for an input of heads
    return x * mask.reshape((1,) * (x.ndim - mask.ndim) + mask.shape).astype(x.dtype)


def grouped_norm(path: str, x, scale, bias, epsilon: float, center: bool = True):
    """A LayerNorm (``center=False``: RMSNorm) of ``x`` over the kept features of the coupled group whose member it
    is, or None where ``path`` is no such member: the dropped features are absent, not zeros among the rest."""
    active = ACTIVE.get()
    if not isinstance(active, tuple) or path + GROUPED not in active[0]:
        return None
    keep = active[0][path].reshape((1,) * (x.ndim - 1) + (-1,)).astype(x.dtype)
    count = jnp.maximum(keep.sum(), 1.0)
    mean = (x * keep).sum(-1, keepdims=True) / count if center else 0.0
    y = (x - mean) * jax.lax.rsqrt((((x - mean) * keep) ** 2).sum(-1, keepdims=True) / count + epsilon)
    y = y if scale is None else y * scale.reshape((1,) * (x.ndim - 1) + (-1,))
    return y if bias is None else y + bias.reshape((1,) * (x.ndim - 1) + (-1,))


def not_for_groups(layers: Sequence[str], what: str) -> None:
    """Raises ValueError where a layer names a coupled group: ``what`` is built for single modules only."""
    grouped = [layer for layer in layers if layer.endswith(GROUP)]
    if grouped:
        raise ValueError(f"{what} is built for layers of single modules; {grouped} are coupled groups, whose"
                         " removal runs through residual links (evaluate their game, or name single modules)")


def zero_fills_only(layers: Sequence[str]) -> None:
    """Raises ValueError where a layer names a coupled group: its members are silenced with zeros only."""
    grouped = [layer for layer in layers if layer.endswith(GROUP)]
    if grouped:
        raise ValueError(f"layers {grouped} are coupled groups: their members are silenced with zeros"
                         " (masked_value='zero'); a mean fill would differ between the members")


def feature_axis(layer: str) -> int:
    """The axis of a layer's output that holds its players: -2 for heads (``[..., heads, head_dim]``), else -1."""
    return -2 if layer.endswith(HEADS) else -1


def mask_output(path: str, out, axis: int = -1):
    """Applies the active coalition's mask of ``path`` to ``out`` along ``axis`` (or records ``out``)."""
    active = ACTIVE.get()
    if active is None:
        return out
    if isinstance(active, dict):  # a recording pass: the first output of every module
        active.setdefault(path, out)
        return out
    masks, fills = active
    if path not in masks:
        return out
    shape = [1] * out.ndim
    shape[axis] = -1
    m = masks[path].reshape(shape)
    if fills is None:
        return out * m.astype(out.dtype)
    fill = fills[path].astype(out.dtype)  # [..., features] as the features' axes of out
    return jnp.where(m, out, fill.reshape((1,) * (out.ndim - fill.ndim) + fill.shape))


def with_active(active, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with ``active`` (``(masks, fills)``, or a dict to record into) as the coalition."""
    token = ACTIVE.set(active)
    try:
        return fn(*args, **kwargs)
    finally:
        ACTIVE.reset(token)


class Recorded(list):
    """An :data:`OVERRIDE` entry that records the module's output (a plain list records its input)."""


def called(path: str, call, *args, **kwargs):
    """``call(*args, **kwargs)``, the module at ``path``, unless :data:`OVERRIDE` replaces its output (or records
    its input, or its output in a :class:`Recorded`)."""
    over = OVERRIDE.get()
    what = None if over is None else over.get(path)
    if what is None:
        return call(*args, **kwargs)
    if isinstance(what, Recorded):
        what.append(call(*args, **kwargs))
        return what[-1]
    if isinstance(what, list):
        what.append(args[0] if args else None)
        return call(*args, **kwargs)
    return what


def with_override(override: dict, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with ``override`` (:data:`OVERRIDE`) in force."""
    token = OVERRIDE.set(override)
    try:
        return fn(*args, **kwargs)
    finally:
        OVERRIDE.reset(token)


def node_at(root, path: str):
    """The node at a module path (``"block1/Conv_0"``, ``"blocks/0/mlp"``) of a Linen params dict, an NNX
    module or an NNX state; None if there is none. ``""`` is the root."""
    node = root
    for part in path.split("/") if path else ():
        for key in (part, int(part)) if part.isdigit() else (part,):  # NNX lists and states index items by int
            try:
                node = node[key]
                break
            except (KeyError, IndexError, TypeError):
                continue
        else:
            node = getattr(node, part, None)
        if node is None:
            return None
    return node


def check_names(layers: Sequence[str], available: Sequence[str]) -> None:
    """Raises ValueError for an empty list, or names the model does not have (listing those it has)."""
    if not layers:
        raise ValueError("layers is empty; name at least one module, e.g. one of " + ", ".join(available[:10]))
    unknown = [n for n in layers if n not in available]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the model's modules are {list(available)}")


def sizes_of(outputs: Mapping, layers: Sequence[str]) -> dict[str, int]:
    """``{layer: players}`` from one recording pass's outputs.

    Raises:
        ValueError: for a layer whose output has no feature axis.
    """
    sizes = {}
    for path in layers:
        out, axis = outputs[path.removesuffix(GROUP)], feature_axis(path)
        if not hasattr(out, "shape") or len(out.shape) < 1 - axis:
            what = f"shape {tuple(out.shape)}" if hasattr(out, "shape") else type(out).__name__
            raise ValueError(f"layer {path!r} has no feature axis to prune: its output is {what}; name a module"
                             " whose output is [batch, ..., features]")
        sizes[path] = int(out.shape[axis])
    return sizes


def feature_means(outputs: Mapping, layers: Sequence[str]) -> dict:
    """Each layer's mean output feature (for ``"attn:heads"``: mean ``[heads, head_dim]``) over the rest."""
    return {p: jnp.mean(outputs[p].reshape((-1, *outputs[p].shape[feature_axis(p) :])), axis=0) for p in layers}


__all__ = [
    "ACTIVE", "GROUP", "GROUPED", "HEADS", "INPUT", "NORMS", "OVERRIDE", "Grouping", "Recorded", "called",
    "check_logits", "check_names", "expand", "feature_axis", "feature_means", "grouped_norm", "grouping",
    "mask_input", "mask_output", "node_at", "not_for_groups", "sizes_of", "warn_if_grouped", "with_active",
    "with_override", "zero_fills_only",
]
