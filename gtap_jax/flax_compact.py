"""A smaller network for any Flax model that is a chain of Dense / Conv / BatchNorm / elementwise layers.

:func:`compact_flax` turns a coalition of a :func:`gtap_jax.games.flax_models.flax_game`
into a model whose dropped features are gone, not zeroed: each named layer's producer
(the Dense or Conv itself, or the one before a named BatchNorm) loses those output
features, every BatchNorm between it and the next Dense / Conv (its consumer) loses
those channels, and the consumer loses the matching inputs: a Dense after a flatten
loses every position of a dropped channel (channels-last flatten, as Flax writes it).
What a dropped feature still fed the consumer (a mean fill, a BatchNorm's shift, the
bias through a relu) is observed on the evaluation inputs; when it is the same for
every example and position it is added to the consumer's bias, otherwise the layer is
not part of a chain (a residual connection, attention, a LayerNorm over the features)
and that is an error.

The result is checked: the smaller model's outputs on the evaluation inputs must
equal the masked model's, or :func:`compact_flax` raises and says to use the masked
parameters (:mod:`gtap_jax.flax_masks`) instead.

* NNX: graph surgery on a clone; ``CompactModel.model`` is a plain, smaller
  ``nnx.Module`` of the user's own class (call it as the original).
* Linen: a module's width is fixed in its code (``nn.Dense(300)``), so the smaller
  producers run through :func:`flax.linen.intercept_methods`:
  ``CompactModel(x)`` or, in your own code, ``with compact.resized():
  model.apply(compact.variables, x)``. Consumers and BatchNorms take their sizes
  from their inputs and need nothing. Inference only (batch statistics are read).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.games.flax_models import _ACTIVE, HEADS, _nnx_modules, _with, feature_means, masked_forward, node_at
from gtap_jax.layout import PlayerLayout

_PRODUCERS = (nn.Dense, nn.Conv, nnx.Linear, nnx.Conv)
_CHANNELWISE = (nn.BatchNorm, nnx.BatchNorm)
_RECORD: Any = None  # a list while recording the call order of the leaf modules


@dataclasses.dataclass
class _Call:
    path: str
    module: Any
    inputs: Any
    has_params: bool


@dataclasses.dataclass
class CompactModel:
    """A smaller model computing what the masked model computed (module docstring).

    Attributes:
        model: NNX: the smaller module. Linen: the user's module (run it through ``__call__`` or
            :meth:`resized`).
        variables: Linen: the smaller variables; NNX: None.
        features: ``{module path: output features kept}`` of every producer made smaller.
        params: parameters of the smaller model (every ``params`` leaf).
        max_error: largest absolute difference from the masked model on the evaluation inputs.
    """

    model: Any
    variables: Any
    features: dict
    params: int
    max_error: float
    apply_kwargs: dict = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def resized(self):
        """Linen: the context under which ``model.apply(variables, ...)`` runs the smaller producers."""
        def interceptor(next_fun, args, kwargs, context):
            path = "/".join(str(p) for p in context.module.path)
            if context.method_name != "__call__" or path not in self.features:
                return next_fun(*args, **kwargs)
            module = context.module
            small = module.clone(parent=None, features=self.features[path])
            return small.apply(dict(module.variables), *args, **kwargs)

        with nn.intercept_methods(interceptor):
            yield

    def __call__(self, *args, **kwargs):
        kwargs = {**self.apply_kwargs, **kwargs}
        if self.variables is None:
            return self.model(*args, **kwargs)
        with self.resized():
            return self.model.apply(self.variables, *args, **kwargs)


def _linen_calls(model, variables, forward, x) -> list[_Call]:
    """Leaf module calls (no module called inside) of one masked pass, in order, with their inputs."""
    calls, stack = [], []

    def record(next_fun, args, kwargs, context):
        if context.method_name != "__call__" or not context.module.path:
            return next_fun(*args, **kwargs)
        path = "/".join(str(p) for p in context.module.path)
        if stack:
            stack[-1][1] = False  # the caller is not a leaf
        entry = [path, True]
        stack.append(entry)
        try:
            return next_fun(*args, **kwargs)
        finally:
            stack.pop()
            if entry[1]:
                has = node_at(variables.get("params", {}), path) is not None
                calls.append(_Call(path, context.module, args[0] if args else None, has))

    with nn.intercept_methods(record):
        forward(x)
    return calls


class _Recorded(nnx.Module):
    """An NNX leaf module that reports its calls to :data:`_RECORD`."""

    def __init__(self, inner: nnx.Module, path: str):
        self.inner = inner
        self.gtap_record = path

    def __call__(self, *args, **kwargs):
        if _RECORD is not None:
            has = any(isinstance(v, nnx.Param) for v in vars(self.inner).values())
            _RECORD.append(_Call(self.gtap_record, self.inner, args[0] if args else None, has))
        return self.inner(*args, **kwargs)


def _nnx_calls(model, layers, masks, fills, x, kwargs) -> list[_Call]:
    global _RECORD
    clone = nnx.clone(model)
    paths = _nnx_modules(clone)
    leaves = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    for path in leaves:
        *parents, last = path.split("/")
        parent = node_at(clone, "/".join(parents))
        if last.isdigit():
            parent[int(last)] = _Recorded(parent[int(last)], path)
        else:
            setattr(parent, last, _Recorded(getattr(parent, last), path))
    forward = masked_forward(clone, None, layers, kwargs)
    _RECORD = []
    try:
        _with((masks, fills), forward, x)
        calls = _RECORD
    finally:
        _RECORD = None
    return calls


def _is(module, kinds) -> bool:
    return isinstance(module, kinds) and getattr(module, "feature_group_count", 1) == 1


def _plan(calls: list[_Call], layout: PlayerLayout, keep: dict, atol: float) -> tuple[dict, dict, dict]:
    """``(out_keep, in_keep, bias_add)`` per module path: which output features and input features stay,
    and per consumer ``(dropped inputs, their constant values, dead kept inputs)`` (module docstring)."""
    out_keep, in_keep, bias_add = {}, {}, {}
    order = [c.path for c in calls]
    for layer in layout.names:
        if layer.endswith(HEADS):
            raise ValueError(f"layer {layer!r}: attention heads do not compact into a chain; use"
                             " gtap_jax.flax_masks for the masked weights")
        if order.count(layer) != 1:
            raise ValueError(f"layer {layer!r} is called {order.count(layer)} times in one pass; only a chain"
                             " (each module called once) compacts: use gtap_jax.flax_masks for its masked weights")
        i = order.index(layer)
        if _is(calls[i].module, _CHANNELWISE) and i > 0 and _is(calls[i - 1].module, _PRODUCERS):
            i -= 1  # a named BatchNorm: its channels are its producer's
        if not _is(calls[i].module, _PRODUCERS):
            raise ValueError(f"layer {layer!r} ({type(calls[i].module).__name__}) has no Dense / Conv producing"
                             " its features right before it; compaction needs one (use gtap_jax.flax_masks)")
        producer, k = calls[i].path, keep[layer]
        kept = k.copy()
        kept[0] |= not k.any()  # Flax layers cannot have zero units: one dead unit, its outgoing weights 0
        out_keep[producer] = kept
        j = i + 1
        while j < len(calls) and not _is(calls[j].module, _PRODUCERS):
            if calls[j].has_params and not isinstance(calls[j].module, _CHANNELWISE):
                raise ValueError(f"between {producer!r} and the next Dense / Conv sits {calls[j].path!r}"
                                 f" ({type(calls[j].module).__name__}), which mixes features: not a chain"
                                 " (use gtap_jax.flax_masks)")
            if calls[j].has_params:
                out_keep[calls[j].path] = kept  # a BatchNorm on the producer's channels
            j += 1
        if j == len(calls):
            raise ValueError(f"layer {layer!r} feeds the model's output with no Dense / Conv after it; pruning"
                             " the output layer is not compaction (drop it from layers)")
        consumer = calls[j]
        inputs = np.asarray(consumer.inputs)
        width, channels = inputs.shape[-1], k.size
        if width % channels or (width != channels and not _is(consumer.module, (nn.Dense, nnx.Linear))):
            raise ValueError(f"{consumer.path!r} takes {width} inputs, not {channels} channels of {producer!r}"
                             " (or their channels-last flatten): not a chain (use gtap_jax.flax_masks)")
        rows = np.tile(k, width // channels)  # channels-last flatten: the channel is the fastest index
        dropped = inputs.reshape(-1, width)[:, ~rows]
        const = dropped[0] if len(dropped) else np.zeros(0)
        if not np.allclose(dropped, const, atol=atol):
            raise ValueError(f"the dropped features of {layer!r} reach {consumer.path!r} with values that vary"
                             " between examples: not a chain (use gtap_jax.flax_masks)")
        padding = getattr(consumer.module, "padding", "VALID")
        if np.any(np.abs(const) > atol) and width == channels and padding != "VALID" and \
                not _is(consumer.module, (nn.Dense, nnx.Linear)):
            raise ValueError(f"the dropped channels of {layer!r} feed the padded conv {consumer.path!r} a constant"
                             f" (up to {np.max(np.abs(const)):.3g}), which no bias can stand for at its borders:"
                             " name the layer after the normalisation (its BatchNorm) with masked_value='zero'"
                             " so they feed 0, or use gtap_jax.flax_masks")
        in_keep[consumer.path] = np.tile(kept, width // channels)
        bias_add[consumer.path] = (~rows, const, ~rows[in_keep[consumer.path]])
    return out_keep, in_keep, bias_add


def _resize(params: dict, stats: dict | None, path: str, out_keep, in_keep, bias_add) -> dict:
    """New arrays (by name) of one module's parameters and statistics."""
    new = {}
    if path in bias_add:
        dropped, const, dead = bias_add[path]
        kernel = np.asarray(params["kernel"], np.float64)
        added = np.einsum("i,...io->...o", const, kernel[..., dropped, :]).reshape(-1, kernel.shape[-1]).sum(0)
        if np.any(added != 0) and "bias" not in params:
            raise ValueError(f"{path!r} has no bias to absorb the constant its dropped inputs fed it")
        if "bias" in params:
            new["bias"] = np.asarray(params["bias"]) + added.astype(np.asarray(params["bias"]).dtype)
        new["kernel"] = np.asarray(params["kernel"])[..., in_keep[path], :].copy()
        new["kernel"][..., dead, :] = 0  # a dead unit kept so that no layer has zero units
    if path in out_keep:
        k = out_keep[path]
        for name, value in {**params, **(stats or {}), **new}.items():
            new[name] = np.asarray(value)[..., k]
    return new


def compact_flax(model, variables: Mapping | None, x, layout: PlayerLayout, mask, *,
                 masked_value: str = "zero", apply_kwargs: Mapping | None = None,
                 atol: float = 1e-4) -> CompactModel:
    """The smaller model of a chain whose players outside ``mask`` are dropped (module docstring).

    Args:
        model, variables, layout: as played by :func:`gtap_jax.network_game` (Linen with its
            variables, NNX with None; the layout it returned).
        x: evaluation inputs (the game's): the constants folded into biases are read and the
            result is checked on them.
        mask: ``bool[P]``, the players kept.
        masked_value: the game's ``"zero"`` or ``"mean"``.
        apply_kwargs: extra keyword arguments of every call (e.g. ``{"train": False}``).
        atol: tolerance of the constancy check and of the final check (relative to the output scale).

    Raises:
        ValueError: when the model is not such a chain around a named layer (naming the module that
            breaks it) or the smaller model does not reproduce the masked one.
    """
    kwargs = dict(apply_kwargs or {})
    x = jnp.asarray(x)
    layers = layout.names
    keep = {p: np.asarray(k, bool) for p, k in layout.split(np.asarray(mask, bool)).items()}
    if isinstance(model, nnx.Module) and variables is not None:
        raise ValueError("an NNX model carries its own state: pass variables=None")
    forward = masked_forward(model, variables, layers, kwargs)
    fills = None
    if masked_value == "mean":
        full: dict = {}
        _with(full, forward, x)
        fills = feature_means(full, layers)
    masks = {p: jnp.asarray(k) for p, k in keep.items()}
    reference = np.asarray(_with((masks, fills), forward, x))

    if isinstance(model, nnx.Module):
        calls = _nnx_calls(model, layers, masks, fills, x, kwargs)
    else:
        token = _ACTIVE.set((masks, fills))
        try:
            calls = _linen_calls(model, variables, forward, x)
        finally:
            _ACTIVE.reset(token)
    plan = _plan(calls, layout, keep, atol)
    touched = sorted(set(plan[0]) | set(plan[1]))
    features = {p: int(k.sum()) for p, k in plan[0].items() if _is(_module_of(calls, p), _PRODUCERS)}

    result = _smaller(model, variables, touched, plan, features, kwargs)
    try:
        out = np.asarray(result(x))
    except Exception as e:  # a shape error: something outside the chain still expects the old width
        raise ValueError(f"the smaller model fails ({type(e).__name__}: {str(e).splitlines()[0]}): the model is"
                         " not a chain of Dense / Conv / BatchNorm / elementwise layers as assumed; use"
                         " gtap_jax.flax_masks for the masked weights instead") from e
    error = float(np.max(np.abs(out - reference))) if out.shape == reference.shape else np.inf
    if not error <= atol * max(1.0, float(np.max(np.abs(reference)))):
        raise ValueError(f"the smaller model does not reproduce the masked model (largest difference {error:.3g}):"
                         " the model is not a chain of Dense / Conv / BatchNorm / elementwise layers as assumed;"
                         " use gtap_jax.flax_masks for the masked weights instead")
    result.max_error = error
    return result


def _smaller(model, variables, touched: list[str], plan: tuple, features: dict, kwargs: dict) -> CompactModel:
    """The model with every touched module resized as ``plan`` says (NNX: a clone; Linen: new variables)."""
    if isinstance(model, nnx.Module):
        small = nnx.clone(model)
        for path in touched:
            module = node_at(small, path)
            arrays = {n: v for n, v in vars(module).items() if isinstance(v, nnx.Variable)}
            params = {n: v[...] for n, v in arrays.items() if isinstance(v, nnx.Param)}
            stats = {n: v[...] for n, v in arrays.items() if not isinstance(v, nnx.Param)}
            for name, value in _resize(params, stats, path, *plan).items():
                arrays[name].set_value(jnp.asarray(value))
            _set_sizes(module, arrays)
        if hasattr(small, "eval"):
            small.eval()
        count = sum(int(np.size(v)) for v in jax.tree.leaves(nnx.state(small, nnx.Param)))
        return CompactModel(small, None, features, count, 0.0, kwargs)
    new = flax.core.unfreeze(variables)
    for path in touched:
        params = node_at(new["params"], path)
        stats = node_at(new.get("batch_stats", {}), path)
        for name, value in _resize(params, stats, path, *plan).items():
            target = params if name in params else stats
            target[name] = jnp.asarray(value)
    count = sum(int(np.size(v)) for v in jax.tree.leaves(new["params"]))
    return CompactModel(model, new, features, count, 0.0, kwargs)


def _module_of(calls: list[_Call], path: str):
    return next(c.module for c in calls if c.path == path)


def _set_sizes(module, arrays: dict) -> None:
    """Keeps an NNX module's size attributes true to its new arrays (Conv checks ``in_features``)."""
    if "kernel" in arrays:
        shape = arrays["kernel"][...].shape
        for name, size in (("in_features", shape[-2]), ("out_features", shape[-1])):
            if isinstance(getattr(module, name, None), int):
                setattr(module, name, int(size))
    elif isinstance(getattr(module, "num_features", None), int) and "scale" in arrays:
        module.num_features = int(arrays["scale"][...].shape[-1])


__all__ = ["CompactModel", "compact_flax"]
