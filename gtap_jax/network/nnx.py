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

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.layout import PlayerLayout, as_mask, layout_of
from gtap_jax.network import chain, chains, coupling, grouped, train
from gtap_jax.network import nnx_graph as graph
from gtap_jax.network.adapter import cast_floats, count_params, xla_flops
from gtap_jax.network.masking import (
    GROUP,
    HEADS,
    Grouping,
    check_names,
    expand,
    grouping,
    kernel_of,
    node_at,
    not_for_groups,
    silenced_params,
    sizes_of,
    with_active,
)
from gtap_jax.network.nnx_graph import Mask


class NNXNetwork:
    """An NNX module as a :class:`~gtap_jax.network.adapter.Network` (it carries its own state)."""

    trainable = False

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
        paths, _ = self._wrapped(list(layers), jnp.asarray(example)[:2])
        with_active(outputs, self._forward(paths), jnp.asarray(example)[:2])
        return layout_of(sizes_of(outputs, layers), layers, ordered=False)

    def _wrapped(self, layers, x) -> tuple[list[str], Grouping | None]:
        """The module paths to wrap for ``layers`` (a coupled group's members and consumers for ``"path:group"``),
        and the groups (traced once on ``x`` where a layer names one)."""
        if not any(layer.endswith(GROUP) for layer in layers):
            return list(layers), None
        if tuple(layers) not in self._groups:
            self._groups[tuple(layers)] = grouping(layers, self.coupled(x))
        grouped = self._groups[tuple(layers)]
        plain = [layer for layer in layers if not layer.endswith(GROUP)]
        return list(dict.fromkeys([*plain, *grouped.members, *grouped.consumers])), grouped

    def masked_logits(self, layout, x, *, dtype="float32", cache_prefix=True):
        paths, grouped = self._wrapped(layout.names, jnp.asarray(x))
        forward, x = self._forward(paths, dtype), cast_floats(jnp.asarray(x), dtype)
        return lambda masks, fills: with_active((expand(masks, grouped), fills), forward, x)

    def chain_fn(self, layout, x, reduce, *, dtype="float32"):
        paths, grouped = self._wrapped(layout.names, jnp.asarray(x))

        def forward(consumer):
            run = self._forward(tuple(dict.fromkeys((*paths, consumer))))  # the consumer wrapped too
            return lambda x, masks, fills: with_active((expand(masks, grouped), fills), run, x)

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
        return [kernel_of(tree, path, size, self._groups.get(tuple(layout.names))) for path, size in layout.layers]

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

    def smaller(self, layout, mask, *, x=None, fills=None) -> NNXNetwork:
        return self.smaller_checked(layout, mask, x=x, fills=fills)[0]

    def smaller_checked(self, layout, mask, *, x, fills=None, atol: float = 1e-4):
        """``(smaller network, largest difference from the masked one on x)`` (:func:`chain.checked_smaller`)."""
        x = jnp.asarray(x)
        if any(layer.endswith((GROUP, HEADS)) for layer in layout.names):
            return self._grouped_smaller(layout, mask, x, atol)
        return chain.checked_smaller(layout, mask, x, fills, forward=self.masked_logits(layout, x),
                                     record=lambda m, f: self._leaf_calls(layout, x, m, f), rebuild=self._rebuilt,
                                     atol=atol)

    def _grouped_smaller(self, layout, mask, x, atol):
        """The smaller network of coupled groups and heads (:mod:`gtap_jax.network.grouped`), checked on ``x``."""
        groups = self._wrapped(layout.names, x)[1]
        kinds = {c.path: c.kind for c in self._leaf_calls(layout, x[:2], {}, None)}

        def variable(path, name):
            node = node_at(self.model, path)
            return f"{path}/{name}" if isinstance(getattr(node, name, None), nnx.Variable) else None

        kept = grouped.plan(layout, mask, groups, variable, kinds)
        graphdef, state = nnx.split(nnx.clone(self.model))
        small = nnx.merge(graphdef, grouped.sliced(state, kept.cuts))
        # the size attributes of each module whose arrays changed and of the modules above it, each once, inner first
        touched = {"/".join(parts[:depth]) for parts in (name.split("/")[:-1] for name in kept.cuts)
                   for depth in range(1, len(parts) + 1)}
        for path in sorted(touched, key=lambda p: -p.count("/")):
            graph.resize_attrs(node_at(small, path), kept.widths)
        for attn, heads in kept.heads.items():
            module = node_at(small, attn)
            module.num_heads, module.qkv_features = heads, heads * module.head_dim
        reference = np.asarray(self.masked_logits(layout, x)(layout.split(as_mask(mask, layout.num_players)), None))
        return grouped.checked(NNXNetwork(graph.eval_mode(small), self.apply_kwargs), reference, x, atol)

    def _recording_clone(self) -> nnx.Module:
        """A clone with every leaf module wrapped to report its calls."""
        clone = nnx.clone(self.model)
        paths = graph.modules(clone)
        for path in [p for p in paths if not any(q.startswith(p + "/") for q in paths)]:
            graph.replace(clone, path, lambda m, path=path: graph.Recorded(m, path))
        return clone

    def _leaf_calls(self, layout, x, masks, fills):
        """Leaf module calls (no module inside) of one masked pass, in order, with their inputs."""
        calls: list = []
        token = graph.RECORDING.set(calls)
        try:
            paths = self._wrapped(layout.names, x)[0]
            with_active((masks, fills), self._forward(paths, clone=self._recording_clone()), x)
        finally:
            graph.RECORDING.reset(token)
        return calls

    def coupled(self, example) -> list[coupling.Group]:
        """The groups of leaf modules whose output features are coupled (:mod:`gtap_jax.network.coupling`)."""
        graphdef, state = self._split((), clone=self._recording_clone())
        names = [coupling.key_path(k).replace("/gtap_inner", "")
                 for k, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
        token = graph.RECORDING.set("mark")
        try:
            jaxpr = jax.make_jaxpr(lambda state, x: nnx.merge(graphdef, state)(x, **self.apply_kwargs))(
                state, jnp.asarray(example)[:2])
        finally:
            graph.RECORDING.reset(token)
        return coupling.coupled_groups(jaxpr, names)

    def _rebuilt(self, plan: chain.ChainPlan, calls) -> NNXNetwork:
        small = nnx.clone(self.model)
        for path in plan.touched:
            module = node_at(small, path)
            arrays = {n: v for n, v in vars(module).items() if isinstance(v, nnx.Variable)}
            params = {n: v[...] for n, v in arrays.items() if isinstance(v, nnx.Param)}
            stats = {n: v[...] for n, v in arrays.items() if not isinstance(v, nnx.Param)}
            for name, value in chain.resized_arrays(params, stats, path, plan).items():
                arrays[name].set_value(jnp.asarray(value))
            graph.set_sizes(module, arrays)
        return NNXNetwork(graph.eval_mode(small), self.apply_kwargs, {**self.widths, **plan.features(calls)})

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


__all__ = ["Mask", "NNXNetwork", "masked_clone", "masked_model", "unmasked"]
