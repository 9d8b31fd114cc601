"""The NNX adapter: any ``flax.nnx`` module, masked by graph surgery on a clone.

``layers`` are attribute paths (``"fc1"``, ``"blocks/0/mlp"``; ``"attn:heads"`` for the
heads of the ``nnx.MultiHeadAttention`` at ``attn``). A clone of the model has each
named module wrapped by one that masks its output (the user's model is not
changed), is put in eval mode when it has one, split once into a graph and a
state, and merged inside the value function. A smaller network is a plain,
smaller ``nnx.Module`` of the user's own class.

``train_masked``'s ``train_fn`` is ``(model) -> model``, given a clone whose named
modules' outputs are multiplied by fixed masks (held in :class:`~gtap_jax.network.nnx.surgery.Mask` variables
that an ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` leaves alone); the wrappers
are taken out afterwards.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.layout import PlayerLayout, as_mask, layout_of
from gtap_jax.network import train
from gtap_jax.network.contract import cast_floats, xla_flops
from gtap_jax.network.modules import coupling, shrink_chain, shrink_groups
from gtap_jax.network.modules.base import ModuleNetwork
from gtap_jax.network.modules.masking import (
    GROUP,
    HEADS,
    Grouping,
    check_logits,
    check_names,
    expand,
    node_at,
    with_active,
)
from gtap_jax.network.modules.weights import einsum_axes, silenced_params
from gtap_jax.network.nnx import surgery as graph


class NNXNetwork(ModuleNetwork):
    """An NNX module as a :class:`~gtap_jax.network.contract.Network` that can be made smaller (``Shrinkable``; it
    carries its own state, so ``variables`` is None)."""

    variables = None

    def __init__(self, model: nnx.Module, apply_kwargs=None, widths=None):
        self.model, self.apply_kwargs = model, dict(apply_kwargs or {})
        self.widths = dict(widths or {})  # {producer path: output features} of a smaller network
        self._predict: dict = {}
        self._groups: dict = {}  # layers -> their Grouping

    def _split(self, layers, dtype="float32", clone=None):
        """``(graphdef, state)`` of an eval-mode clone with the named modules wrapped to mask their outputs."""
        clone = graph.eval_mode(nnx.clone(self.model if clone is None else clone))
        if layers:
            modules = graph.modules(clone)
            heads = [p[: -len("/out")] + HEADS for p in modules
                     if p.endswith("/out") and isinstance(node_at(clone, p[: -len("/out")]), nnx.MultiHeadAttention)]
            check_names(list(layers), modules + heads)
        for path in layers:
            graph.wrap(clone, path)
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
        x = jnp.asarray(example)[:2]  # shapes are learnt on two examples
        paths, _ = self._wrapped(list(layers), x)
        check_logits(with_active(outputs, self._forward(paths), x), len(x))
        self._warn_if_grouped(layers, x)
        return layout_of(self._sizes(layers, outputs, x), layers, ordered=False)

    def _wrapped(self, layers, x) -> tuple[list[str], Grouping | None]:
        """The module paths to wrap for ``layers`` (a coupled group's members and consumers for ``"path:group"``),
        and the groups (traced once on ``x`` where a layer names one)."""
        grouped = self._grouping(layers, x)
        if grouped is None:
            return list(layers), None
        plain = [layer for layer in layers if not layer.endswith(GROUP) and layer not in grouped.attentions]
        return list(dict.fromkeys([*plain, *grouped.members, *grouped.consumers])), grouped

    def _runner(self, layers, x, *, dtype="float32", also=()):
        paths = self._wrapped(layers, x)[0]
        return self._forward(tuple(dict.fromkeys((*paths, *also))), dtype)

    def _kernel_axes(self):
        return {path: einsum_axes(node.einsum_str) for path in graph.modules(self.model)
                if isinstance(node := node_at(self.model, path), nnx.Einsum)}

    def _param_dict(self, tree=None):
        return nnx.to_pure_dict(self.params if tree is None else tree)

    def _variable(self, path, name):
        node = node_at(self.model, path)
        return f"{path}/{name}" if isinstance(getattr(node, name, None), nnx.Variable) else None

    def apply_params(self, params, x):
        graphdef, _, rest = nnx.split(self.model, nnx.Param, ...)
        return nnx.merge(graphdef, params, rest)(x, **self.apply_kwargs)

    def predict(self, x, masks=None, fills=None):
        layers = tuple(sorted(masks or ()))
        if layers not in self._predict:
            paths, grouped = self._wrapped(layers, jnp.asarray(x))
            graphdef, state = self._split(paths)

            def fn(state, x, masks, fills, grouped=grouped):
                run = lambda x: nnx.merge(graphdef, state)(x, **self.apply_kwargs)  # noqa: E731
                return with_active(None if masks is None else (expand(masks, grouped), fills), run, x)

            self._predict[layers] = (jax.jit(fn), state)
        fn, state = self._predict[layers]
        return fn(state, jnp.asarray(x), masks, fills)

    def _sliced(self, cuts):
        graphdef, state = nnx.split(nnx.clone(self.model))
        small = nnx.merge(graphdef, shrink_groups.sliced(state, cuts.cuts))
        # the size attributes of each module whose arrays changed and of the modules above it, each once, inner first
        touched = {"/".join(parts[:depth]) for parts in (name.split("/")[:-1] for name in cuts.cuts)
                   for depth in range(1, len(parts) + 1)}
        for path in sorted(touched, key=lambda p: -p.count("/")):
            graph.resize_attrs(node_at(small, path), cuts.widths)
        for attn, heads in cuts.heads.items():
            module = node_at(small, attn)
            module.num_heads, module.qkv_features = heads, heads * module.head_dim
        for owner, (attention, kept) in cuts.traced.items():
            module = node_at(small, owner)
            try:
                changes = shrink_groups.fewer_heads(module, attention, kept)
            except ValueError:
                if not attention.split:
                    raise
                changes = {}  # the heads are the kernels' own axis: nothing else may hold their count
            for name, value in changes.items():
                setattr(module, name, value)
        return NNXNetwork(graph.eval_mode(small), self.apply_kwargs)

    def _recording_clone(self) -> nnx.Module:
        """A clone with every leaf module wrapped to report its calls."""
        clone = nnx.clone(self.model)
        paths = graph.modules(clone)
        for path in [p for p in paths if not any(q.startswith(p + "/") for q in paths)]:
            graph.replace(clone, path, lambda m, path=path: graph.Recorded(m, path))
        return clone

    def _leaf_calls(self, layers, x, masks, fills):
        calls: list = []
        token = graph.RECORDING.set(calls)
        try:
            paths = self._wrapped(layers, x)[0]
            with_active((masks, fills), self._forward(paths, clone=self._recording_clone()), x)
        finally:
            graph.RECORDING.reset(token)
        return calls

    def _trace(self, example):
        graphdef, state = self._split((), clone=self._recording_clone())
        names = [coupling.key_path(k).replace("/gtap_inner", "")
                 for k, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
        token = graph.RECORDING.set("mark")
        try:
            jaxpr = jax.make_jaxpr(lambda state, x: nnx.merge(graphdef, state)(x, **self.apply_kwargs))(
                state, jnp.asarray(example)[:2])
        finally:
            graph.RECORDING.reset(token)
        return jaxpr, names

    def _rebuilt(self, cuts, calls):
        small = nnx.clone(self.model)
        for path in cuts.touched:
            module = node_at(small, path)
            arrays = {n: v for n, v in vars(module).items() if isinstance(v, nnx.Variable)}
            params = {n: v[...] for n, v in arrays.items() if isinstance(v, nnx.Param)}
            stats = {n: v[...] for n, v in arrays.items() if not isinstance(v, nnx.Param)}
            for name, value in shrink_chain.resized_arrays(params, stats, path, cuts).items():
                arrays[name].set_value(jnp.asarray(value))
            graph.set_sizes(module, arrays)
        return NNXNetwork(graph.eval_mode(small), self.apply_kwargs, {**self.widths, **cuts.features(calls)})

    def masked_weights(self, layout, mask, fills=None) -> NNXNetwork:
        """The same model with the players outside ``mask`` silenced in their modules' parameters."""
        self._single_modules(layout, "masked weights")
        return NNXNetwork(masked_model(self.model, layout, mask, fills), self.apply_kwargs)

    def flops(self, input_shape) -> float:
        return xla_flops(self._forward(()), input_shape)

    def train_masked(self, layout, mask, train_fn) -> NNXNetwork:
        self._single_modules(layout, "masked training")
        return NNXNetwork(unmasked(train_fn(masked_clone(self.model, layout, mask)), layout), self.apply_kwargs)

    def save(self, directory: str | os.PathLike) -> None:
        train.save_params(directory, nnx.state(self.model))

    def restored(self, directory: str | os.PathLike) -> NNXNetwork:
        graphdef, state = nnx.split(self.model)
        return NNXNetwork(nnx.merge(graphdef, train.load_params(directory, jax.tree.map(np.asarray, state))),
                          self.apply_kwargs)


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
    check_names(layout.names, graph.modules(clone))
    for path, keep in layout.split(as_mask(mask, layout.num_players)).items():
        graph.replace(clone, path, lambda node, keep=keep: graph.Masked(node, keep))
    return clone


def unmasked(model: nnx.Module, layout: PlayerLayout) -> nnx.Module:
    """A clone of a :func:`masked_clone` (trained or not) with the mask wrappers taken out."""
    clone = nnx.clone(model)
    for path in layout.names:
        graph.replace(clone, path, lambda node: node.inner if isinstance(node, graph.Masked) else node)
    return clone


__all__ = ["NNXNetwork", "masked_clone", "masked_model", "unmasked"]
