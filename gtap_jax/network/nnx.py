"""The NNX adapter: any ``flax.nnx`` module, masked by graph surgery on a clone.

``layers`` are attribute paths (``"fc1"``, ``"blocks/0/mlp"``; ``"attn:heads"`` for the
heads of the ``nnx.MultiHeadAttention`` at ``attn``). A clone of the model has each
named module wrapped by one that masks its output (the user's model is not
changed), is put in eval mode when it has one, split once into a graph and a
state, and merged inside the value function. A smaller network is a plain,
smaller ``nnx.Module`` of the user's own class.

``train_masked``'s ``train_fn`` is ``(model) -> model``, given a clone whose named
modules' outputs are multiplied by fixed masks (held in :class:`Mask` variables
that an ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` leaves alone); the wrappers
are taken out afterwards.
"""

from __future__ import annotations

import contextvars
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.layout import PlayerLayout, as_mask, layout_of
from gtap_jax.network import chain, chains, coupling, train
from gtap_jax.network.adapter import cast_floats, count_params, xla_flops
from gtap_jax.network.masking import (
    GROUP,
    HEADS,
    called,
    check_names,
    expand,
    group_members,
    kernel_of,
    mask_output,
    node_at,
    not_for_groups,
    silenced_params,
    sizes_of,
    with_active,
)

# a list while recording the leaf module calls of one pass
_RECORDING: contextvars.ContextVar = contextvars.ContextVar("gtap_recording", default=None)


class _MaskedModule(nnx.Module):
    """An NNX module whose output is masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, path: str):
        self.inner = inner
        self.gtap_path = path

    def __call__(self, *args, **kwargs):
        return mask_output(self.gtap_path, called(self.gtap_path, self.inner, *args, **kwargs))


class _MaskedHeads(nnx.Module):
    """An NNX attention output projection whose input heads are masked as the active coalition says."""

    def __init__(self, inner: nnx.Module, layer: str):
        self.inner = inner
        self.gtap_heads = layer

    def __call__(self, x, *args, **kwargs):
        return self.inner(mask_output(self.gtap_heads, x, axis=-2), *args, **kwargs)


class _Recorded(nnx.Module):
    """A leaf module that reports its calls while a pass is recorded."""

    def __init__(self, inner: nnx.Module, path: str):
        self.inner = inner
        self.gtap_record = path

    def __call__(self, *args, **kwargs):
        calls = _RECORDING.get()
        if calls == "mark":  # a traced pass that names each leaf's output (coupling.py)
            return coupling.marked(self.gtap_record, self.inner(*args, **kwargs))
        if calls is not None:
            inner = self.inner
            has = any(isinstance(v, nnx.Param) for v in vars(inner).values())
            calls.append(chain.Call(self.gtap_record, _kind(inner), type(inner).__name__, args[0] if args else None,
                                    has, getattr(inner, "padding", "VALID")))
        return self.inner(*args, **kwargs)


class Mask(nnx.Variable):
    """A fixed feature mask inside a :func:`masked_clone` (not an ``nnx.Param``: optimisers leave it)."""


class _Masked(nnx.Module):
    def __init__(self, inner: nnx.Module, keep):
        self.inner = inner
        self.keep = Mask(jnp.asarray(keep))

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        return out * self.keep[...].reshape((1,) * (out.ndim - 1) + (-1,)).astype(out.dtype)


def _kind(module) -> str:
    if isinstance(module, nnx.Linear):
        return "dense"
    if isinstance(module, nnx.Conv) and getattr(module, "feature_group_count", 1) == 1:
        return "conv"
    return "norm" if isinstance(module, nnx.BatchNorm) else "other"


def _modules(model: nnx.Module) -> list[str]:
    """Attribute paths of every submodule (``"blocks/0/mlp"``), in graph order."""
    return ["/".join(str(p) for p in path) for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Module) and path]


def _replace(root: nnx.Module, path: str, how) -> None:
    *parents, last = path.split("/")
    parent = node_at(root, "/".join(parents))
    if last.isdigit():
        parent[int(last)] = how(parent[int(last)])
    else:
        setattr(parent, last, how(getattr(parent, last)))


def _wrap(model: nnx.Module, path: str) -> None:
    """Wraps the submodule at ``path`` in a masking module (for ``"attn:heads"``, the output projection
    ``attn/out`` in one that masks its input heads)."""
    if path.endswith(HEADS):
        _replace(model, path[: -len(HEADS)] + "/out", lambda m: _MaskedHeads(m, path))
    else:
        _replace(model, path, lambda m: _MaskedModule(m, path))


def _set_sizes(module, arrays: dict) -> None:
    """Keeps an NNX module's size attributes true to its new arrays (Conv checks ``in_features``)."""
    if "kernel" in arrays:
        shape = arrays["kernel"][...].shape
        for name, size in (("in_features", shape[-2]), ("out_features", shape[-1])):
            if isinstance(getattr(module, name, None), int):
                setattr(module, name, int(size))
    elif isinstance(getattr(module, "num_features", None), int) and "scale" in arrays:
        module.num_features = int(arrays["scale"][...].shape[-1])


def _eval(model: nnx.Module) -> nnx.Module:
    if hasattr(model, "eval"):
        model.eval()
    return model


class NNXNetwork:
    """An NNX module as a :class:`~gtap_jax.network.adapter.Network` (it carries its own state)."""

    trainable = False

    def __init__(self, model: nnx.Module, apply_kwargs=None, widths=None):
        self.model, self.apply_kwargs = model, dict(apply_kwargs or {})
        self.widths = dict(widths or {})  # {producer path: output features} of a smaller network
        self._predict: dict = {}

    def _split(self, layers, dtype="float32", clone=None):
        """``(graphdef, state)`` of an eval-mode clone with the named modules wrapped to mask their outputs."""
        clone = _eval(nnx.clone(self.model if clone is None else clone))
        if layers:
            modules = _modules(clone)
            heads = [p[: -len("/out")] + HEADS for p in modules
                     if p.endswith("/out") and isinstance(node_at(clone, p[: -len("/out")]), nnx.MultiHeadAttention)]
            check_names(list(layers), modules + heads)
        for path in layers:
            _wrap(clone, path)
        graphdef, state = nnx.split(clone)
        return graphdef, cast_floats(state, dtype)

    def _forward(self, layers, dtype="float32", clone=None):
        graphdef, state = self._split(layers, dtype, clone)
        return lambda x: nnx.merge(graphdef, state)(x, **self.apply_kwargs)

    @property
    def params(self):
        return nnx.state(self.model, nnx.Param)

    def layout(self, layers=None, example=None) -> PlayerLayout:
        if layers is None:
            raise ValueError("name the player layers of a Flax model: layers=[module path, ...]")
        outputs: dict = {}
        paths, _ = self._wrapped(list(layers), jnp.asarray(example)[:2])
        with_active(outputs, self._forward(paths), jnp.asarray(example)[:2])
        return layout_of(sizes_of(outputs, layers), layers, ordered=False)

    def _wrapped(self, layers, x) -> tuple[list[str], dict[str, str]]:
        """The module paths to wrap for ``layers`` (a coupled group's members for ``"path:group"``), and
        ``{member: layer}`` (traced once on ``x`` where a layer names a group)."""
        if not any(layer.endswith(GROUP) for layer in layers):
            return list(layers), {}
        members = group_members(layers, self.coupled(x))
        return [layer for layer in layers if not layer.endswith(GROUP)] + list(members), members

    def masked_logits(self, layout, x, *, dtype="float32", cache_prefix=True):
        paths, members = self._wrapped(layout.names, jnp.asarray(x))
        forward, x = self._forward(paths, dtype), cast_floats(jnp.asarray(x), dtype)
        return lambda masks, fills: with_active((expand(masks, members), fills), forward, x)

    def chain_fn(self, layout, x, reduce, *, dtype="float32"):
        paths, members = self._wrapped(layout.names, jnp.asarray(x))

        def forward(consumer):
            run = self._forward(tuple(dict.fromkeys((*paths, consumer))))  # the consumer wrapped too
            return lambda x, masks, fills: with_active((expand(masks, members), fills), run, x)

        x = jnp.asarray(x)
        return chains.intercepted_chain_fn(
            layout, x, reduce, calls=self._leaf_calls(layout, x[:2], {}, None), dtype=dtype,
            params_at=lambda path: node_at(nnx.to_pure_dict(self.params), path), forward=forward)

    def layer_outputs(self, x, layout):
        outputs: dict = {}
        with_active(outputs, self._forward(layout.names), jnp.asarray(x))
        return {p: outputs[p] for p in layout.names}

    def player_kernels(self, layout, tree=None):
        tree = nnx.to_pure_dict(self.params if tree is None else tree)
        return [kernel_of(tree, path, size) for path, size in layout.layers]

    def apply_params(self, params, x):
        graphdef, _, rest = nnx.split(self.model, nnx.Param, ...)
        return nnx.merge(graphdef, params, rest)(x, **self.apply_kwargs)

    def predict(self, x, masks=None, fills=None):
        layers = tuple(sorted(masks or ()))
        if layers not in self._predict:
            paths, members = self._wrapped(layers, jnp.asarray(x))
            graphdef, state = self._split(paths)

            def fn(state, x, masks, fills, members=members):
                run = lambda x: nnx.merge(graphdef, state)(x, **self.apply_kwargs)  # noqa: E731
                return with_active(None if masks is None else (expand(masks, members), fills), run, x)

            self._predict[layers] = (jax.jit(fn), state)
        fn, state = self._predict[layers]
        return fn(state, jnp.asarray(x), masks, fills)

    def smaller(self, layout, mask, *, x=None, fills=None) -> NNXNetwork:
        return self.smaller_checked(layout, mask, x=x, fills=fills)[0]

    def smaller_checked(self, layout, mask, *, x, fills=None, atol: float = 1e-4):
        """``(smaller network, largest difference from the masked one on x)`` (:func:`chain.checked_smaller`)."""
        not_for_groups(layout.names, "a smaller network")
        x = jnp.asarray(x)
        return chain.checked_smaller(layout, mask, x, fills, forward=self.masked_logits(layout, x),
                                     record=lambda m, f: self._leaf_calls(layout, x, m, f), rebuild=self._rebuilt,
                                     atol=atol)

    def _leaf_calls(self, layout, x, masks, fills, how=None):
        """Leaf module calls (no module inside) of one masked pass, in order, with their inputs (``how="mark"``:
        the pass's jaxpr with each leaf's output named, :func:`coupling.marked`)."""
        clone = nnx.clone(self.model)
        paths = _modules(clone)
        for path in [p for p in paths if not any(q.startswith(p + "/") for q in paths)]:
            _replace(clone, path, lambda m, path=path: _Recorded(m, path))
        calls: list = []
        token = _RECORDING.set(how or calls)
        try:
            forward = self._forward(() if layout is None else self._wrapped(layout.names, x)[0], clone=clone)
            if how == "mark":
                return jax.make_jaxpr(forward)(x)
            with_active((masks, fills), forward, x)
        finally:
            _RECORDING.reset(token)
        return calls

    def coupled(self, example) -> list[tuple[str, ...]]:
        """The groups of leaf modules whose output features are coupled (:mod:`gtap_jax.network.coupling`)."""
        return coupling.coupled_groups(self._leaf_calls(None, jnp.asarray(example)[:2], {}, None, how="mark"))

    def _rebuilt(self, plan: chain.ChainPlan, calls) -> NNXNetwork:
        small = nnx.clone(self.model)
        for path in plan.touched:
            module = node_at(small, path)
            arrays = {n: v for n, v in vars(module).items() if isinstance(v, nnx.Variable)}
            params = {n: v[...] for n, v in arrays.items() if isinstance(v, nnx.Param)}
            stats = {n: v[...] for n, v in arrays.items() if not isinstance(v, nnx.Param)}
            for name, value in chain.resized_arrays(params, stats, path, plan).items():
                arrays[name].set_value(jnp.asarray(value))
            _set_sizes(module, arrays)
        return NNXNetwork(_eval(small), self.apply_kwargs, {**self.widths, **plan.features(calls)})

    def masked_weights(self, layout, mask, fills=None) -> NNXNetwork:
        """The same model with the players outside ``mask`` silenced in their modules' parameters."""
        not_for_groups(layout.names, "masked weights")
        return NNXNetwork(masked_model(self.model, layout, mask, fills), self.apply_kwargs)

    def num_params(self) -> int:
        return count_params(self.params)

    def flops(self, input_shape) -> float:
        return xla_flops(self._forward(()), input_shape)

    def train_masked(self, layout, mask, train_fn) -> NNXNetwork:
        return NNXNetwork(unmasked(train_fn(masked_clone(self.model, layout, mask)), layout), self.apply_kwargs)

    def save(self, directory: str | os.PathLike) -> None:
        train.save_params(directory, nnx.state(self.model))

    def restored(self, directory: str | os.PathLike) -> NNXNetwork:
        graphdef, state = nnx.split(self.model)
        return NNXNetwork(nnx.merge(graphdef, train.load_params(directory, jax.tree.map(np.asarray, state))),
                          self.apply_kwargs)

    def initialized(self, key, input_shape):
        raise NotImplementedError("gtap_jax trains only its built-in models; train this NNX model yourself")

    def fit(self, key, x, y, **kwargs):
        raise NotImplementedError("gtap_jax trains only its built-in models; train this NNX model yourself")


def masked_model(model: nnx.Module, layout: PlayerLayout, mask, fills=None) -> nnx.Module:
    """A clone of ``model`` with the players outside ``mask`` silenced in their modules' parameters (jaxpruner-style:
    the unchanged module computes the masked network; see :func:`gtap_jax.network.linen.masked_variables`)."""
    clone = nnx.clone(model)
    for path, keep in layout.split(as_mask(mask, layout.num_players)).items():
        node = node_at(clone, path)
        params = {n: getattr(node, n)[...] for n in ("kernel", "scale", "bias")
                  if isinstance(getattr(node, n, None), nnx.Variable)}
        for name, value in silenced_params(params, np.asarray(keep), None if fills is None else fills[path],
                                           path).items():
            getattr(node, name)[...] = value
    return clone


def masked_clone(model: nnx.Module, layout: PlayerLayout, mask) -> nnx.Module:
    """A clone of ``model`` whose named modules' outputs are multiplied by ``mask`` in every call."""
    clone = nnx.clone(model)
    check_names(layout.names, _modules(clone))
    for path, keep in layout.split(as_mask(mask, layout.num_players)).items():
        _replace(clone, path, lambda node, keep=keep: _Masked(node, keep))
    return clone


def unmasked(model: nnx.Module, layout: PlayerLayout) -> nnx.Module:
    """A clone of a :func:`masked_clone` (trained or not) with the mask wrappers taken out."""
    clone = nnx.clone(model)
    for path in layout.names:
        _replace(clone, path, lambda node: node.inner if isinstance(node, _Masked) else node)
    return clone


__all__ = ["Mask", "NNXNetwork", "masked_clone", "masked_model", "unmasked"]
