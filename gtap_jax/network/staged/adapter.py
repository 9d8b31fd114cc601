"""The staged adapter: the built-in models (:class:`~gtap_jax.network.staged.model.StagedModel`) as a network.

What it offers beyond the other adapters: running stages ``[start, stop)`` lets a game compute the
mask-independent prefix once (prefix caching), every layer compacts exactly
(:mod:`gtap_jax.network.staged.slicing`), and gtap_jax trains it (:mod:`gtap_jax.network.train`): it is
``Shrinkable`` and ``Trainable``.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout, masks_dict
from gtap_jax.network import train
from gtap_jax.network.contract import cast_floats, count_params
from gtap_jax.network.modules import incremental
from gtap_jax.network.modules.masking import called
from gtap_jax.network.staged import slicing
from gtap_jax.network.staged.model import StagedModel, apply_site, layout_for
from gtap_jax.shapes import PyTree


def _overridable(next_fun, args, kwargs, context):
    """A Linen interceptor: a stage's layer (a module at the top of the model) answers to
    :data:`~gtap_jax.network.modules.masking.OVERRIDE`."""
    if context.method_name != "__call__" or len(context.module.path) != 1:
        return next_fun(*args, **kwargs)
    return called(str(context.module.path[0]), next_fun, *args, **kwargs)


class StagedNetwork:
    """A :class:`StagedModel` and its ``"params"`` as a :class:`~gtap_jax.network.contract.Network`.

    ``train_masked``'s ``train_fn`` is ``(network, masks) -> network``: it trains this network
    (e.g. with :meth:`fit`) with the players outside ``masks`` (``{site: bool[units]}``) silenced.
    """

    def __init__(self, model: StagedModel, params: PyTree | None = None):
        self.model, self._params = model, params
        self._last_prefix = None  # (x, stop, activations): a game's masked pass and its chains share one prefix

    @property
    def params(self) -> PyTree:
        return self._params

    @property
    def variables(self) -> PyTree:
        """What :func:`~gtap_jax.network.adapt` takes with a built-in model: its ``"params"``."""
        return self._params

    def layout(self, layers=None, example=None) -> PlayerLayout:
        return layout_for(self.model, layers)

    def masked_logits(self, layout, x, *, dtype="float32", cache_prefix=True):
        model, variables, x = self.model, {"params": self._params}, jnp.asarray(x)
        suffix_variables = cast_floats(variables, dtype)
        names = model.stage_names()
        first = min(names.index(n) for n in layout.names)
        if not cache_prefix:
            x = cast_floats(x, dtype)

            def forward(masks, fills):
                # Without the barrier XLA would constant-fold the mask-independent prefix
                # of the closed-over data at compile time: prefix caching in disguise.
                return model.apply(suffix_variables, jax.lax.optimization_barrier(x), masks=masks, fills=fills)

            return forward
        prefix = cast_floats(self._prefix(x, first + 1), dtype)

        def forward(masks, fills):
            masks = dict(masks)
            h = apply_site(prefix, masks.pop(names[first]), None if fills is None else fills[names[first]])
            return model.apply(suffix_variables, h, masks=masks, fills=fills, start=first + 1)

        return forward

    def _prefix(self, x: jax.Array, stop: int) -> jax.Array:
        """The float32 activations of the stages before ``stop`` on ``x``, computed once for the last ``x`` asked."""
        last = self._last_prefix
        if last is None or last[0] is not x or last[1] != stop:
            out = jax.jit(lambda v, x: self.model.apply(v, x, stop=stop))({"params": self._params}, x)
            self._last_prefix = last = (x, stop, out)
        return last[2]

    def chain_fn(self, layout, x, reduce, *, dtype="float32"):
        """Values of chains of coalitions, each one player away from the one before (or stars), or None.

        The first player layer's consumer (its site's, :class:`~gtap_jax.network.staged.model.SiteSpec`) is
        affine between per-channel operations (pooling, flattening, an activation), so its output is kept along
        the chain and a flip of a first-layer player moves it by that player's contribution
        (:mod:`gtap_jax.network.modules.incremental`): rank-1 for a Dense on the layer's units (every hidden
        layer of an MLP), stored for a Conv or a Dense over a flattened map (LeNet5's and AlexNet's conv
        layers); the rest of the network runs per coalition. Returns ``chain(masks[K, P], fills, star=False) ->
        values[K]`` with ``reduce(logits)`` the value (``star``: each coalition one player away from the first),
        or None in bfloat16 or where the contributions would not fit (then every coalition is evaluated whole).
        """
        if dtype != "float32":
            return None
        model, variables = self.model, {"params": self._params}
        names = model.stage_names()
        first = layout.names[0]
        spec = next(s for s in model.site_specs() if s.name == first)
        if spec.consumer not in names:
            return None
        start = names.index(first)
        prefix = self._prefix(jnp.asarray(x), start + 1)

        def run(h, masks, fills):
            masks = dict(masks)
            if first in masks:
                h = apply_site(h, masks.pop(first), None if fills is None else fills[first])
            with nn.intercept_methods(_overridable):
                return model.apply(variables, h, masks=masks, fills=fills, start=start + 1)

        node = self._params[spec.consumer]
        kernel = node["kernel"] if spec.consumer_spatial is None else None  # a flattened map: not the units
        spec2 = next((s for s in model.site_specs() if len(layout.names) > 1 and s.name == layout.names[1]), None)
        second = None  # the second player layer's Dense consumer: its flips are rank-1 too
        if spec2 is not None and spec2.consumer in names and spec2.consumer_spatial is None:
            node2 = self._params[spec2.consumer]
            second = (spec2.consumer, node2["kernel"], node2.get("bias"))
        return incremental.consumer_chain_fn(layout, prefix, reduce, consumer=spec.consumer, run=run, kernel=kernel,
                                             bias=node.get("bias"), check=False, second=second)

    def layer_outputs(self, x, layout):
        _, acts = jax.jit(lambda p, x: self.model.apply({"params": p}, x, capture=True))(self._params, jnp.asarray(x))
        return {n: a for n, a in acts.items() if n in layout.names}

    def player_kernels(self, layout, tree=None):
        tree = self._params if tree is None else tree
        producers = {s.name: s.producer for s in self.model.site_specs()}
        return [np.asarray(tree[producers[name]]["kernel"]) for name in layout.names]

    def apply_params(self, params, x):
        return self.model.apply({"params": params}, x)

    def predict(self, x, masks=None, fills=None):
        return train.predict(self.model, self._params, x, masks, fills)

    def smaller(self, layout, mask, *, x=None, fills=None, atol=1e-4, check=True) -> StagedNetwork:
        """Exact slicing of every site (``x``, ``atol`` and ``check`` unused: nothing is checked on inputs)."""
        masks = masks_dict(layout, mask)
        model, params = slicing.slice_sites(self.model, self._params, masks, fills=fills)
        return StagedNetwork(model, params)

    def masked_weights(self, layout, mask, fills=None) -> StagedNetwork:
        """The same model with each silenced unit's incoming weights 0 and its bias its fill: through the
        built-in models' ReLU it outputs the fill (a mean of ReLU outputs, so not negative) or 0."""
        producers = {s.name: s.producer for s in self.model.site_specs()}
        params = {k: dict(v) for k, v in self._params.items()}
        for name, keep in masks_dict(layout, mask).items():
            node = params[producers[name]]
            fill = 0.0 if fills is None else np.asarray(fills[name])
            node["kernel"] = jnp.where(keep, node["kernel"], 0.0)
            node["bias"] = jnp.where(keep, node["bias"], fill).astype(node["bias"].dtype)
        return StagedNetwork(self.model, params)

    def num_params(self) -> int:
        return count_params(self._params)

    def flops(self, input_shape) -> float:
        return slicing.flops_per_example(self.model, self._params, input_shape)

    def train_masked(self, layout, mask, train_fn) -> StagedNetwork:
        return train_fn(self, masks_dict(layout, mask))

    def save(self, directory: str | os.PathLike) -> None:
        train.save_params(directory, self._params)

    def restored(self, directory: str | os.PathLike) -> StagedNetwork:
        return StagedNetwork(self.model, train.load_params(directory, self._params))

    def initialized(self, key, input_shape) -> StagedNetwork:
        return StagedNetwork(self.model, train.init_params(key, self.model, input_shape))

    def fit(self, key, x, y, *, epochs, batch_size=128, learning_rate=1e-3, masks=None, checkpoint_dir=None,
            progress=False) -> StagedNetwork:
        result = train.train(key, self.model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             params=self._params, masks=masks, checkpoint_dir=checkpoint_dir, progress=progress)
        return StagedNetwork(self.model, result.params)


__all__ = ["StagedNetwork"]
