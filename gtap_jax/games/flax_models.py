"""The neuron game of any Flax model, Linen or NNX, written outside the project.

Players are the features of named modules: the output units of a Dense layer,
the output channels of a Conv, BatchNorm or any module whose output has a feature
axis (the last, as Flax lays features out), numbered layer by layer in the
order given, unit by unit. A player outside the coalition has its feature of
that module's *output* set to 0 (or to its mean on the evaluation set): naming
the BatchNorm of conv -> BatchNorm -> relu silences the channel after the
normalisation, before the relu, so the relu passes 0 on.

* Linen: ``layers`` are module paths as Flax names them (``"Dense_0"``,
  ``"block1/Conv_0"``), the mask applied by :func:`flax.linen.intercept_methods`
  around each named module's ``__call__``; the user's code is not changed.
* NNX: ``layers`` are attribute paths (``"fc1"``, ``"blocks/0/mlp"``); a clone of the
  model has each named module wrapped by one that masks its output (graph surgery on
  the clone; the user's model is not changed), split once into a graph and a state,
  and merged inside the value function.

Attention heads: a layer ``"attn:heads"`` makes the heads of the attention module at
``attn`` (``nn.MultiHeadDotProductAttention`` and its subclasses, ``nnx.MultiHeadAttention``)
the players. A dropped head's output, ``[..., heads, head_dim]`` as it enters the output
projection ``attn/out``, is set to 0 (or to its mean), so the head contributes nothing
(or a constant) to the attention's output.

A module called more than once (shared weights) is masked at every call. The game
is played in inference mode: pass ``apply_kwargs`` (Linen, e.g. ``{"train": False}``)
or call ``model.eval()`` (NNX; done on the clone when the model has it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from gtap_jax.layout import PlayerLayout

# (masks, fills) of the coalition being evaluated, or a dict recording outputs
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("gtap_masks", default=None)


def is_flax_model(model) -> bool:
    """Whether ``model`` is a Linen or NNX module (not one of the project's staged models)."""
    return isinstance(model, nn.Module | nnx.Module) and not hasattr(model, "site_sizes")


HEADS = ":heads"  # a layer "attn:heads": the heads of the attention module at "attn" are the players


def _mask_output(path: str, out, axis: int = -1):
    """Applies the active coalition's mask of ``path`` to ``out`` along ``axis`` (or records ``out``)."""
    active = _ACTIVE.get()
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


def _heads_of(module_path: str, module) -> str | None:
    """``"attn:heads"`` when ``module`` is the output projection ``out`` of an attention module at ``attn``."""
    if module_path.rsplit("/", 1)[-1] != "out":
        return None
    parent = getattr(module, "parent", None) if isinstance(module, nn.Module) else None
    if isinstance(module, nn.Module) and not isinstance(parent, nn.MultiHeadDotProductAttention):
        return None
    return module_path.rsplit("/", 1)[0] + HEADS if "/" in module_path else HEADS


def _linen_interceptor(next_fun, args, kwargs, context):
    if context.method_name != "__call__" or not context.module.path:
        return next_fun(*args, **kwargs)
    path = "/".join(str(p) for p in context.module.path)
    heads = _heads_of(path, context.module)
    if heads is not None and args:  # the heads enter the output projection as [..., heads, head_dim]
        args = (_mask_output(heads, args[0], axis=-2), *args[1:])
    return _mask_output(path, next_fun(*args, **kwargs))


class _MaskedModule(nnx.Module):
    """An NNX module whose output is masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, path: str):
        self.inner = inner
        self.gtap_path = path

    def __call__(self, *args, **kwargs):
        return _mask_output(self.gtap_path, self.inner(*args, **kwargs))


class _MaskedHeads(nnx.Module):
    """An NNX attention output projection whose input heads are masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, layer: str):
        self.inner = inner
        self.gtap_heads = layer

    def __call__(self, x, *args, **kwargs):
        return self.inner(_mask_output(self.gtap_heads, x, axis=-2), *args, **kwargs)


def _nnx_modules(model: nnx.Module) -> list[str]:
    """Attribute paths of every submodule (``"blocks/0/mlp"``), in graph order."""
    return ["/".join(str(p) for p in path) for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Module) and path]


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


def _nnx_wrap(model: nnx.Module, path: str) -> None:
    """Replaces the submodule at ``path`` of ``model`` by a masking wrapper around it (for ``"attn:heads"``,
    the attention module's output projection ``attn/out`` by one that masks its input heads)."""
    target = path[: -len(HEADS)] + "/out" if path.endswith(HEADS) else path
    *parents, last = target.split("/")
    node = node_at(model, "/".join(parents))
    wrap = (lambda m: _MaskedHeads(m, path)) if path.endswith(HEADS) else (lambda m: _MaskedModule(m, path))
    if last.isdigit():
        node[int(last)] = wrap(node[int(last)])
    else:
        setattr(node, last, wrap(getattr(node, last)))


def _with(active, fn, *args):
    token = _ACTIVE.set(active)
    try:
        return fn(*args)
    finally:
        _ACTIVE.reset(token)


def masked_forward(model, variables: Mapping | None, layers: Sequence[str], apply_kwargs: Mapping[str, Any],
                   cast=lambda tree: tree):
    """``forward(inputs)``: the model's output with the named modules' outputs masked by :data:`_ACTIVE`.

    Linen: ``model.apply(cast(variables), ...)`` under the masking interceptor. NNX: a clone in eval
    mode with the named modules wrapped (after checking the names), split once and merged per call.
    """
    if isinstance(model, nnx.Module):
        clone = nnx.clone(model)
        if hasattr(clone, "eval"):
            clone.eval()
        modules = _nnx_modules(clone)
        heads = [p[: -len("/out")] + HEADS for p in modules
                 if p.endswith("/out") and isinstance(node_at(clone, p[: -len("/out")]), nnx.MultiHeadAttention)]
        _check_names(layers, modules + heads)
        for path in layers:
            _nnx_wrap(clone, path)
        graphdef, state = nnx.split(clone)
        state = cast(state)

        def forward(inputs):
            return nnx.merge(graphdef, state)(inputs, **apply_kwargs)

        return forward
    variables = cast(variables)

    def forward(inputs):
        with nn.intercept_methods(_linen_interceptor):
            return model.apply(variables, inputs, **apply_kwargs)

    return forward


def flax_game(
    model,
    variables: Mapping | None,
    x,
    y,
    *,
    layers: Sequence[str],
    metric: str = "accuracy",
    masked_value: str = "zero",
    dtype: str = "float32",
    apply_kwargs: Mapping[str, Any] | None = None,
):
    """``(value_fn, layout)`` of the neuron game of a Linen or NNX model (module docstring).

    Args:
        model: a ``flax.linen.Module`` (with ``variables``, all collections:
            params, batch_stats, ...) or a ``flax.nnx.Module`` (``variables=None``).
        x, y: the evaluation set; the model maps ``x`` to logits ``[N, classes]``.
        layers: module paths whose output features are the players.
        metric, masked_value, dtype: as in :func:`gtap_jax.network_game`.
        apply_kwargs: extra keyword arguments of every call (e.g. ``{"train": False}``).

    Raises:
        ValueError: for an unknown layer (listing the model's module paths), a
            layer whose output has no feature axis (not an array of rank >= 2),
            or variables given for an NNX model.
    """
    from gtap_jax.games.network import metric_value

    kwargs = dict(apply_kwargs or {})
    compute = jnp.dtype(dtype)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def cast(tree):
        return jax.tree.map(lambda a: a.astype(compute) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    if isinstance(model, nnx.Module) and variables is not None:
        raise ValueError("an NNX model carries its own state: pass variables=None")
    forward = masked_forward(model, variables, layers, kwargs, cast)
    x = cast(x)
    outputs: dict = {}
    _with(outputs, forward, x[:2])  # one small pass: the output of every (Linen) or every named (NNX) module
    if not isinstance(model, nnx.Module):
        _check_names(layers, sorted(outputs))
    sizes = []
    for path in layers:
        out, axis = outputs[path], -2 if path.endswith(HEADS) else -1
        if not hasattr(out, "shape") or len(out.shape) < 1 - axis:
            what = f"shape {tuple(out.shape)}" if hasattr(out, "shape") else type(out).__name__
            raise ValueError(f"layer {path!r} has no feature axis to prune: its output is {what}; name a module"
                             " whose output is [batch, ..., features]")
        sizes.append((path, int(out.shape[axis])))
    layout = PlayerLayout(tuple(sizes))
    fills = None
    if masked_value == "mean":
        full: dict = {}
        _with(full, forward, x)
        fills = feature_means(full, layers)

    def value(mask):
        logits = _with((layout.split(mask), fills), forward, x)
        return metric_value(logits, y, metric)

    return value, layout


def feature_means(outputs: Mapping, layers: Sequence[str]) -> dict:
    """Each layer's mean output feature (for ``"attn:heads"``: mean ``[heads, head_dim]``) over the rest."""
    return {p: jnp.mean(outputs[p].reshape((-1, *outputs[p].shape[-2 if p.endswith(HEADS) else -1:])), axis=0)
            for p in layers}


def _check_names(layers: Sequence[str], available: Sequence[str]) -> None:
    if not layers:
        raise ValueError("layers is empty; name at least one module, e.g. one of " + ", ".join(available[:10]))
    unknown = [n for n in layers if n not in available]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the model's modules are {list(available)}")


__all__ = ["flax_game", "is_flax_model", "node_at"]
