"""The Linen adapter: any ``flax.linen`` module with its variables, masked by method interception.

``layers`` are module paths as Flax names them (``"Dense_0"``, ``"block1/Conv_0"``;
``"attn:heads"`` for the heads of the attention module at ``attn``). The masks
are applied by :func:`flax.linen.intercept_methods` around each named module's
``__call__``; the user's code is not changed. A module called more than once
(shared weights) is masked at every call. The game is played in inference mode:
pass ``apply_kwargs`` (e.g. ``{"train": False}``).

A smaller Linen network keeps the user's module: a module's width is fixed in
its code (``nn.Dense(300)``), so the smaller producers run through an
interceptor that clones them narrower (``widths``); consumers and BatchNorms
take their sizes from their inputs.

``train_masked``'s ``train_fn`` is ``(apply_fn, variables) -> variables``, where
``apply_fn`` is ``model.apply`` with the dropped features' outputs multiplied by 0
(so they get no gradient) and ``variables`` are this network's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout, layout_of
from gtap_jax.network import train
from gtap_jax.network.contract import cast_floats, xla_flops
from gtap_jax.network.linen import interceptors as graph
from gtap_jax.network.modules import coupling, shrink_chain, shrink_groups
from gtap_jax.network.modules.base import ModuleNetwork
from gtap_jax.network.modules.masking import (
    NORMS,
    check_logits,
    check_names,
    expand,
    node_at,
    with_active,
)
from gtap_jax.network.modules.weights import dense_like, norm_like
from gtap_jax.shapes import example_batch, zeros


class LinenNetwork(ModuleNetwork):
    """A Linen module and its variables (every collection) as a :class:`~gtap_jax.network.contract.Network`
    that can be made smaller (``Shrinkable``)."""

    def __init__(self, model: nn.Module, variables: Mapping, apply_kwargs: Mapping | None = None,
                 widths: Mapping[str, int] | None = None):
        self.model, self.variables = model, variables
        self.apply_kwargs, self.widths = dict(apply_kwargs or {}), dict(widths or {})
        self._jitted = None
        self._groups: dict = {}  # layers -> their Grouping, found by layout()
        self._dense_like: dict = {}  # {module path: kernel transposed, or None}: modules of other classes than Dense
        self._decided = False  # whether an unmasked pass filled _dense_like
        self._norm_like: dict = {}  # {module path: NormSpec}: modules of other classes that compute a norm

    def _like(self, variables, widths=None) -> LinenNetwork:
        """This network with other variables (and producer widths), of the same adapter class."""
        return type(self)(self.model, variables, self.apply_kwargs, self.widths if widths is None else widths)

    @contextlib.contextmanager
    def resized(self):
        """The context under which ``model.apply(variables, ...)`` runs this network's narrower producers."""
        with nn.intercept_methods(graph.resizing(self.widths)):
            yield

    def _apply(self, variables, x, **kwargs):
        token = NORMS.set(self._norm_like)
        try:
            with self.resized(), nn.intercept_methods(graph.masking):
                return self.model.apply(variables, x, **{**self.apply_kwargs, **kwargs})
        finally:
            NORMS.reset(token)

    @property
    def params(self):
        return self.variables["params"]

    def layout(self, layers=None, example=None) -> PlayerLayout:
        if layers is None:
            raise ValueError("name the player layers of a Flax model: layers=[module path, ...]")
        outputs: dict = {}
        x = jnp.asarray(example)[:2]  # shapes are learnt on two examples
        check_logits(with_active(outputs, self._apply, self.variables, x), len(x))
        grouped = self._grouping(layers, example)  # a group of no leaf module, or overlapping layers, fail here
        traced = list(grouped.attentions) if grouped else []
        check_names(list(layers), self._names(outputs, example) + traced)
        self._warn_if_grouped(layers, example)
        return layout_of(self._sizes(layers, outputs, example), layers, ordered=False)

    def _runner(self, layers, x, *, dtype="float32", also=()):
        variables = cast_floats(self.variables, dtype)
        return lambda x: self._apply(variables, x)

    def _param_dict(self, tree=None):
        return self.params if tree is None else tree

    def _variable(self, path, name):
        node = node_at(self.params, path)
        return f"params/{path}/{name}" if node is not None and name in node else None

    def _trace(self, example):
        x = jnp.asarray(example)[:2]
        leaves = {c.path for c in self._leaf_calls((), x, {}, None)}

        def marking(next_fun, args, kwargs, context):
            path = graph.path_of(context.module)
            if context.method_name != "__call__" or path not in leaves:
                return next_fun(*args, **kwargs)
            args = (coupling.marked(path, args[0], "in"), *args[1:]) if args else args
            return coupling.marked(path, next_fun(*args, **kwargs))

        def run(variables, x):
            with nn.intercept_methods(marking):
                return self._apply(variables, x)

        names = [coupling.key_path(k) for k, _ in jax.tree_util.tree_flatten_with_path(self.variables)[0]]
        return jax.make_jaxpr(run)(self.variables, x), names

    def apply_params(self, params, x):
        return self._apply({**self.variables, "params": params}, x)

    def predict(self, x, masks=None, fills=None):
        if masks is not None:
            masks = expand(masks, self._grouping(list(masks), x))
        if self._jitted is None:
            self._jitted = jax.jit(lambda v, x, m, f: with_active(None if m is None else (m, f), self._apply, v, x))
        return self._jitted(self.variables, jnp.asarray(x), masks, fills)

    def _sliced(self, cuts):
        widths = {p: after for p, (_, after) in cuts.widths.items()}
        for attn, heads in cuts.heads.items():
            head_dim = np.shape(node_at(self.params, f"{attn}/query")["kernel"])[-1]
            widths[attn] = {"num_heads": heads, "qkv_features": heads * head_dim}
        widths.update({holder: {graph.NARROWED: sizes} for holder, sizes in cuts.holders.items()
                       if holder not in widths})
        for owner, (attention, kept) in cuts.traced.items():
            widths[owner] = {graph.TRACED: (attention, kept)}
            widths.update(self._pinned(owner, attention, widths))
        variables = shrink_groups.sliced(flax.core.unfreeze(self.variables), cuts.cuts)
        return self._like(variables, {**self.widths, **widths})

    def _transposed(self) -> set[str]:
        return {path for path, transposed in self._dense_like.items() if transposed}

    def _pinned(self, owner: str, attention, widths) -> dict[str, int]:
        """``{module: its output features}`` for each module with a 2-D kernel inside a traced attention that is not
        one of its projections (GPT-2's ``c_proj``): its width may come from an attribute that :func:`fewer_heads`
        changes."""
        sources, out = {m for m, _ in attention.sources}, {}

        def visit(node, path):
            if not isinstance(node, Mapping):
                return
            if np.ndim(node.get("kernel")) == 2 and path not in sources and path not in widths:
                out[path] = int(np.shape(node["kernel"])[0 if self._dense_like.get(path) else -1])
            for name, child in node.items():
                visit(child, f"{path}/{name}")

        visit(node_at(self.params, owner), owner)
        return out

    def _leaf_calls(self, layers, x, masks, fills):
        unmasked = not masks and fills is None
        if not unmasked and not self._decided:
            self._leaf_calls((), x[:2], {}, None)  # which modules compute a Dense, decided unmasked
        self._decided |= unmasked
        calls, stack = [], []

        def record(next_fun, args, kwargs, context):
            if context.method_name != "__call__" or not context.module.path:
                return next_fun(*args, **kwargs)
            path = graph.path_of(context.module)
            if stack:
                stack[-1][1] = False  # the caller is not a leaf
            entry = [path, True]
            stack.append(entry)
            out = None
            try:
                out = next_fun(*args, **kwargs)
                return out
            finally:
                stack.pop()
                if entry[1]:
                    calls.append(self._call(path, context.module, args[0] if args else None, out, unmasked))

        with nn.intercept_methods(record):
            with_active((masks, fills), self._apply, self.variables, x)
        return calls

    def _call(self, path, module, x, out, unmasked: bool) -> shrink_chain.Call:
        """The :class:`~gtap_jax.network.modules.shrink_chain.Call`; a module of another class than ``nn.Dense`` that
        computes one (:func:`~gtap_jax.network.modules.weights.dense_like`) is a Dense, decided on an unmasked
        pass (a masked output is not the module's own)."""
        params = node_at(self.params, path)
        kind = graph.kind(module)
        if kind == "other" and unmasked and path not in self._dense_like:
            self._dense_like[path] = dense_like(params, x, out)
            if self._dense_like[path] is None and (norm := norm_like(params, x, out)) is not None:
                self._norm_like[path] = norm  # a norm of the model's own class: grouped members normalise the kept
        transposed = self._dense_like.get(path) if kind == "other" else None
        return shrink_chain.Call(path, kind if transposed is None else "dense", type(module).__name__, x,
                                 params is not None, getattr(module, "padding", "VALID"), bool(transposed))

    def _rebuilt(self, cuts, calls):
        new = flax.core.unfreeze(self.variables)
        transposed = {c.path for c in calls if c.transposed}
        for path in cuts.touched:
            params = node_at(new["params"], path)
            stats = node_at(new.get("batch_stats", {}), path)
            for name, value in shrink_chain.resized_arrays(params, stats, path, cuts, path in transposed).items():
                (params if name in params else stats)[name] = jnp.asarray(value)
        return self._like(new, {**self.widths, **cuts.features(calls)})

    def masked_weights(self, layout, mask, fills=None) -> LinenNetwork:
        """The same model with the players outside ``mask`` silenced in their modules' parameters."""
        self._single_modules(layout, "masked weights")
        return self._like(graph.masked_variables(self.variables, layout, mask, fills, self._transposed()))

    def flops(self, input_shape) -> float:
        return xla_flops(lambda x: self._apply(self.variables, x), input_shape)

    def train_masked(self, layout, mask, train_fn) -> LinenNetwork:
        self._single_modules(layout, "masked training")
        return self._like(train_fn(graph.masked_apply(self.model, layout, mask), self.variables))

    def save(self, directory: str | os.PathLike) -> None:
        train.save_params(directory, self.variables)

    def restored(self, directory: str | os.PathLike) -> LinenNetwork:
        return self._like(train.load_params(directory, self.variables))


def variables_like(model: nn.Module, example, apply_kwargs=None):
    """Abstract variables of ``model`` on ``example`` (shapes and dtypes, for restoring a checkpoint into)."""
    kwargs = dict(apply_kwargs or {})
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.asarray(example), **kwargs))


class TrainedModule(nn.Module):
    """Base class of the built-in Linen models, which gtap_jax trains: ``__call__(x, train=False)``, where
    ``train=True`` updates the collections other than ``params`` (BatchNorm's ``batch_stats``)."""


class TrainedLinenNetwork(LinenNetwork):
    """A built-in Linen model (:class:`TrainedModule`), which gtap_jax trains (``Trainable``)."""

    def initialized(self, key, input_shape) -> TrainedLinenNetwork:
        with self.resized():
            variables = jax.jit(lambda k, x: self.model.init(k, x, train=False))(
                key, zeros(example_batch(input_shape)))
        return type(self)(self.model, variables, {**self.apply_kwargs, "train": False}, self.widths)

    def fit(self, key, x, y, *, epochs, batch_size=128, learning_rate=1e-3, masks=None, checkpoint_dir=None,
            progress=False) -> TrainedLinenNetwork:
        """Trained with Adam (BatchNorm's statistics updated as it trains); unmasked only: a smaller network is
        trained as it is, and the lottery ticket's masked training is the staged models' (a ``ValueError``)."""
        if masks is not None:
            raise ValueError("the built-in Linen models train without masks: retrain the smaller network"
                                      " (retrain modes scratch / finetune), the lottery ticket is for staged models")
        state = {k: v for k, v in self.variables.items() if k != "params"}
        with self.resized():
            result = train.train(key, self.model, np.asarray(x), np.asarray(y), epochs=epochs, batch_size=batch_size,
                                 learning_rate=learning_rate, params=self.params, state=state,
                                 checkpoint_dir=checkpoint_dir, progress=progress)
        return self._like({"params": result.params, **result.state})


__all__ = ["LinenNetwork", "TrainedLinenNetwork", "TrainedModule", "variables_like"]
