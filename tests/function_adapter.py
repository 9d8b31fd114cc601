"""A model adapter written outside gtap_jax, as a new framework's would be: a model given as a pure function.

``FunctionModel(fn)`` holds ``fn(params, x, tap) -> logits``, which passes every named intermediate output
through ``tap(name, h)``; the players are the features (last axis) of the tapped outputs. This file and one
registry line (``ADAPTERS["function"] = ADAPTER``, in tests/test_adapters.py) are all it takes: it touches no
file of gtap_jax. It implements :class:`~gtap_jax.network.Network` only (it cannot make a function smaller,
and gtap_jax does not train it), so the contract tests check what a ``Network`` promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gtap_jax.layout import layout_of
from gtap_jax.network import Adapter, count_params, load_params, save_params
from gtap_jax.network.contract import cast_floats, xla_flops


class FunctionModel(NamedTuple):
    """``fn(params, x, tap) -> logits`` (module docstring)."""

    fn: Callable


def _tap(masks, fills):
    """``tap(name, h)``: ``h`` with the features outside ``masks[name]`` set to their fill (0 by default)."""

    def tap(name, h):
        if masks is None or name not in masks:
            return h
        lead = tuple(range(h.ndim - 1))  # the feature axis is the last
        fill = 0.0 if fills is None else jnp.expand_dims(fills[name], lead)
        return jnp.where(jnp.expand_dims(masks[name], lead), h, fill)

    return tap


class FunctionNetwork:
    """A :class:`FunctionModel` and its params as a :class:`~gtap_jax.network.Network`."""

    def __init__(self, model: FunctionModel, variables, apply_kwargs=None):
        if apply_kwargs:
            raise ValueError("a function model takes no apply_kwargs")
        self.model, self.variables = model, variables
        self._predict = jax.jit(lambda p, x, m, f: model.fn(p, x, _tap(m, f)))

    def _outputs(self, x) -> dict:
        outputs = {}

        def record(name, h):
            outputs[name] = h
            return h

        self.model.fn(self.variables, jnp.asarray(x), record)
        return outputs

    def layout(self, layers, example):
        sizes = {name: h.shape[-1] for name, h in self._outputs(jnp.asarray(example)[:2]).items()}
        return layout_of(sizes, layers, ordered=layers is None)

    def masked_logits(self, layout, x, *, dtype="float32", cache_prefix=True):
        params, x = cast_floats(self.variables, dtype), cast_floats(jnp.asarray(x), dtype)
        return lambda masks, fills: self.model.fn(params, x, _tap(masks, fills))

    def chain_fn(self, layout, x, reduce, *, dtype="float32"):
        return None  # every coalition is evaluated whole

    def layer_outputs(self, x, layout):
        outputs = self._outputs(x)
        return {name: outputs[name] for name in layout.names}

    def player_kernels(self, layout, tree=None):
        raise ValueError("a function model names no kernels: its players' incoming weights are unknown")

    @property
    def params(self):
        return self.variables

    def apply_params(self, params, x):
        return self.model.fn(params, x, _tap(None, None))

    def predict(self, x, masks=None, fills=None):
        return self._predict(self.variables, jnp.asarray(x), masks, fills)

    def num_params(self) -> int:
        return count_params(self.variables)

    def flops(self, input_shape) -> float:
        return xla_flops(lambda x: self.apply_params(self.variables, x), input_shape)

    def save(self, directory) -> None:
        save_params(directory, self.variables)

    def restored(self, directory) -> FunctionNetwork:
        return FunctionNetwork(self.model, load_params(directory, self.variables))

    def train_masked(self, layout, mask, train_fn) -> FunctionNetwork:
        """``train_fn(apply_fn, params) -> params``, with ``apply_fn(params, x)`` the masked model."""
        masks = layout.split(jnp.asarray(mask))
        return FunctionNetwork(self.model, train_fn(lambda p, x: self.model.fn(p, x, _tap(masks, None)),
                                                    self.variables))


ADAPTER = Adapter(FunctionModel, FunctionNetwork)
