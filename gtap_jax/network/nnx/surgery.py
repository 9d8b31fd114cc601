"""Graph surgery on NNX modules for the NNX adapter (:mod:`gtap_jax.network.nnx`): wrappers that mask a named
module's output (a group consumer's input, an attention projection's input heads), record leaf calls or hold a
fixed mask for training, and the helpers that find, replace and resize submodules.
"""

from __future__ import annotations

import contextvars

import jax.numpy as jnp
from flax import nnx

from gtap_jax.network.modules import coupling
from gtap_jax.network.modules import shrink_chain as chain
from gtap_jax.network.modules.masking import HEADS, called, grouped_norm, mask_input, mask_output, node_at

# a list while recording the leaf module calls of one pass; "mark" while tracing one for coupling.py
RECORDING: contextvars.ContextVar = contextvars.ContextVar("gtap_recording", default=None)


class _Wrapper(nnx.Module):
    """A module standing in for another (``_INNER`` names the attribute that holds it): what the model's code reads
    of the wrapped module (``self.proj.kernel.shape``) is read from it."""

    _INNER = "inner"

    def __getattr__(self, name):
        if name.startswith(("_", "gtap_")) or name == type(self)._INNER:
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, type(self)._INNER), name)


class MaskedModule(_Wrapper):
    """An NNX module whose output is masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, path: str):
        self.inner = inner
        self.gtap_path = path

    def __call__(self, *args, **kwargs):
        path = self.gtap_path
        if args:
            args = (mask_input(path, args[0]), *args[1:])
        out = grouped_norm_of(self.inner, path, args)
        return mask_output(path, called(path, self.inner, *args, **kwargs) if out is None else out)


def grouped_norm_of(module, path: str, args):
    """A LayerNorm or RMSNorm over the kept features of its coupled group (:func:`masking.grouped_norm`), or None."""
    if not args or not isinstance(module, nnx.LayerNorm | nnx.RMSNorm):
        return None
    center = isinstance(module, nnx.LayerNorm)
    scale, bias = getattr(module, "scale", None), getattr(module, "bias", None) if center else None
    return grouped_norm(path, args[0], None if scale is None else scale[...], None if bias is None else bias[...],
                        module.epsilon, center)


class MaskedHeads(_Wrapper):
    """An NNX attention output projection whose input heads are masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, layer: str):
        self.inner = inner
        self.gtap_heads = layer

    def __call__(self, x, *args, **kwargs):
        return self.inner(mask_output(self.gtap_heads, x, axis=-2), *args, **kwargs)


class Recorded(_Wrapper):
    """A leaf module that reports its calls while a pass is recorded."""

    _INNER = "gtap_inner"

    def __init__(self, inner: nnx.Module, path: str):
        self.gtap_inner = inner
        self.gtap_record = path

    def __call__(self, *args, **kwargs):
        calls = RECORDING.get()
        if calls == "mark":  # a traced pass that names each leaf's input and output (coupling.py)
            args = (coupling.marked(self.gtap_record, args[0], "in"), *args[1:]) if args else args
            return coupling.marked(self.gtap_record, self.gtap_inner(*args, **kwargs))
        inner = self.gtap_inner
        if calls is not None:
            has = any(isinstance(v, nnx.Param) for v in vars(inner).values())
            calls.append(chain.Call(self.gtap_record, kind(inner), type(inner).__name__, args[0] if args else None,
                                    has, getattr(inner, "padding", "VALID")))
        return inner(*args, **kwargs)


class Mask(nnx.Variable):
    """A fixed feature mask inside a :func:`masked_clone` (not an ``nnx.Param``: optimisers leave it)."""


class Masked(nnx.Module):
    def __init__(self, inner: nnx.Module, keep):
        self.inner = inner
        self.keep = Mask(jnp.asarray(keep))

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        return out * self.keep[...].reshape((1,) * (out.ndim - 1) + (-1,)).astype(out.dtype)


def kind(module) -> str:
    return chain.kind_of(module, nnx.Linear, nnx.Conv, nnx.BatchNorm)


def modules(model: nnx.Module) -> list[str]:
    """Attribute paths of every submodule (``"blocks/0/mlp"``), in graph order."""
    return ["/".join(str(p) for p in path) for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Module) and path]


def replace(root: nnx.Module, path: str, how) -> None:
    *parents, last = path.split("/")
    parent = node_at(root, "/".join(parents))
    if last.isdigit():
        parent[int(last)] = how(parent[int(last)])
    else:
        setattr(parent, last, how(getattr(parent, last)))


def wrap(model: nnx.Module, path: str) -> None:
    """Wraps the submodule at ``path`` in a masking module (for ``"attn:heads"``, the output projection
    ``attn/out`` in one that masks its input heads)."""
    if path.endswith(HEADS):
        replace(model, path[: -len(HEADS)] + "/out", lambda m: MaskedHeads(m, path))
    else:
        replace(model, path, lambda m: MaskedModule(m, path))


def set_sizes(module, arrays: dict) -> None:
    """Keeps an NNX module's size attributes true to its new arrays (Conv checks ``in_features``)."""
    if "kernel" in arrays:
        shape = arrays["kernel"][...].shape
        for name, size in (("in_features", shape[-2]), ("out_features", shape[-1])):
            if isinstance(getattr(module, name, None), int):
                setattr(module, name, int(size))
    elif isinstance(getattr(module, "num_features", None), int) and "scale" in arrays:
        module.num_features = int(arrays["scale"][...].shape[-1])


def resize_attrs(module, widths: dict) -> None:
    """Keeps an NNX module's size attributes true to its cut arrays: a Linear's or Conv's from its kernel, a norm's
    from its scale, a container's (an attention's ``in_features``) where it equals a width that changed."""
    arrays = {n: v for n, v in vars(module).items() if isinstance(v, nnx.Variable)}
    if isinstance(module, nnx.LinearGeneral):  # kernel [*in_features, *out_features]
        shape, n_in = arrays["kernel"][...].shape, len(module.in_features)
        module.in_features, module.out_features = tuple(shape[:n_in]), tuple(shape[n_in:])
        return
    if isinstance(module, nnx.Linear | nnx.Conv) or ("scale" in arrays and "kernel" not in arrays):
        set_sizes(module, arrays)
        return
    changed = {before: kept for before, kept in widths.values()}
    for name in ("in_features", "out_features"):
        size = getattr(module, name, None)
        if isinstance(size, int) and size in changed:
            setattr(module, name, changed[size])


def eval_mode(model: nnx.Module) -> nnx.Module:
    if hasattr(model, "eval"):
        model.eval()
    return model


__all__ = ["RECORDING", "Mask", "Masked", "MaskedHeads", "MaskedModule", "Recorded", "eval_mode", "kind", "modules",
           "replace", "resize_attrs", "set_sizes", "wrap"]
