"""Your own trained Flax model in the CLI: ``model.factory`` and ``model.checkpoint``.

A config with ``model.factory = "package.module:function"`` plays the game on the Linen or
NNX model that ``function(**model.options)`` returns, with the trained weights restored
from ``model.checkpoint`` (an orbax checkpoint: the Linen variables, every collection, or
the NNX model's state; :func:`save_checkpoint` writes one). ``game.layers`` are module
paths (:mod:`gtap_jax.games.flax_models`) and ``model.apply_kwargs`` the keyword arguments
of every call (e.g. ``{"train": False}``).

gtap_jax does not know how to train such a model, so it is evaluated as trained (retrain
mode ``none``) and the lottery ticket (which retrains) is left to
:func:`gtap_jax.baselines.flax_lottery_ticket` with your training function. Pruned sizes
come from :func:`gtap_jax.compact_flax` (parameters) and XLA's cost analysis of the smaller
model (FLOPs per example); where the model is not a chain they are NaN and the masked
model's accuracy is reported.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gtap_jax.games.flax_models import _with, feature_means, masked_forward

log = logging.getLogger("gtap_jax")


def save_checkpoint(directory: str | os.PathLike, model, variables=None) -> None:
    """Writes what ``model.checkpoint`` reads: a Linen model's ``variables`` or an NNX model's state."""
    from gtap_jax.train import save_params

    save_params(directory, nnx.state(model) if isinstance(model, nnx.Module) else variables)


def load(config, example) -> tuple:
    """``(model, variables)``: the factory's model with its checkpoint restored (variables None for NNX).

    Raises:
        ValueError: naming what is wrong with ``model.factory`` or ``model.checkpoint``.
    """
    spec = config.model.factory
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model.factory={spec!r}: cannot import it ({e})") from None
    try:
        model = factory(**dict(config.model.options))
    except TypeError as e:  # model.options that the factory does not take
        raise ValueError(f"model.factory={spec!r} with model.options {dict(config.model.options)}: {e}") from None
    path = Path(config.model.checkpoint).resolve()
    from gtap_jax.train import load_params

    if isinstance(model, nnx.Module):
        graphdef, state = nnx.split(model)
        try:
            restored = load_params(path, jax.tree.map(np.asarray, state))
        except Exception as e:
            raise ValueError(f"model.checkpoint={str(path)!r} does not hold this NNX model's state ({e})") from None
        return nnx.merge(graphdef, restored), None
    import flax.linen as nn

    if not isinstance(model, nn.Module):
        raise ValueError(f"model.factory={spec!r} returned a {type(model).__name__}, not a Linen or NNX module")
    like = jax.eval_shape(lambda: model.init(jax.random.key(0), example, **dict(config.model.apply_kwargs)))
    try:
        return model, load_params(path, like)
    except Exception as e:
        raise ValueError(f"model.checkpoint={str(path)!r} does not hold this Linen model's variables ({e})") from None


def count_params(model, variables) -> int:
    params = nnx.state(model, nnx.Param) if isinstance(model, nnx.Module) else variables["params"]
    return int(sum(np.size(a) for a in jax.tree.leaves(params)))


def flops_per_example(fn, example) -> float:
    """XLA's FLOP count of one example's forward pass (NaN where the backend gives none)."""
    try:
        cost = jax.jit(fn).lower(example).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        return float(cost.get("flops", np.nan))
    except Exception:  # a backend without cost analysis
        return float("nan")


@dataclasses.dataclass
class Report:
    """The size fields of a result row (as :class:`gtap_jax.compaction.Compacted` reports them)."""

    params_after: float
    params_before: int
    flops_after: float
    flops_before: float


@dataclasses.dataclass
class Pruned:
    """One pruned user model: its accuracy function and sizes."""

    report: Report
    predict: object  # x -> logits

    def accuracy(self, x, y, batch_size: int = 1000) -> float:
        correct = sum(int(jnp.sum(jnp.argmax(self.predict(jnp.asarray(x[s:s + batch_size])), -1)
                                  == jnp.asarray(y[s:s + batch_size]))) for s in range(0, len(y), batch_size))
        return correct / max(len(y), 1)


def _pure(model, variables, kwargs):
    """``x -> logits`` as a function of ``x`` alone, to jit (NNX: split once, merged per call)."""
    if isinstance(model, nnx.Module):
        graphdef, state = nnx.split(model)
        return lambda x: nnx.merge(graphdef, state)(x, **kwargs)
    return lambda x: model.apply(variables, x, **kwargs)


def full_model(ctx) -> Pruned:
    """The unpruned model as a :class:`Pruned` (for the trained accuracy and the totals)."""
    fn = _pure(ctx.model, ctx.params, dict(ctx.config.model.apply_kwargs))
    total = count_params(ctx.model, ctx.params)
    flops = flops_per_example(fn, jnp.asarray(ctx.ds.x_test[:1]))
    return Pruned(Report(total, total, flops, flops), jax.jit(fn))


def pruned(ctx, mask: np.ndarray, full: Pruned) -> Pruned:
    """The model with the players outside ``mask`` dropped: compacted if it is a chain, else masked."""
    from gtap_jax.flax_compact import compact_flax

    kwargs = dict(ctx.config.model.apply_kwargs)
    x_game = jnp.asarray(ctx.game_data[0])
    masked_value = ctx.config.game.masked_value
    try:
        small = compact_flax(ctx.model, ctx.params, x_game, ctx.layout, mask, masked_value=masked_value,
                             apply_kwargs=kwargs)
    except ValueError as e:
        log.warning("sizes of the pruned model are NaN: %s", e)
        forward = masked_forward(ctx.model, ctx.params, ctx.layout.names, kwargs)
        masks = {p: jnp.asarray(k) for p, k in ctx.layout.split(np.asarray(mask, bool)).items()}
        fills = None if ctx.fills is None else {p: jnp.asarray(v) for p, v in ctx.fills.items()}
        report = Report(float("nan"), full.report.params_before, float("nan"), full.report.flops_before)
        return Pruned(report, lambda x: _with((masks, fills), forward, x))
    fn = _pure(small.model, None, kwargs) if small.variables is None else lambda x: small(x)  # Linen: resized
    flops = flops_per_example(fn, jnp.asarray(ctx.ds.x_test[:1]))
    return Pruned(Report(small.params, full.report.params_before, flops, full.report.flops_before), jax.jit(fn))


def mean_fills(ctx) -> dict:
    """Each named module's mean output feature on the game's examples (``masked_value="mean"``)."""
    forward = masked_forward(ctx.model, ctx.params, ctx.layout.names, dict(ctx.config.model.apply_kwargs))
    outputs: dict = {}
    _with(outputs, forward, jnp.asarray(ctx.game_data[0]))
    return {p: np.asarray(v) for p, v in feature_means(outputs, ctx.layout.names).items()}


__all__ = ["Pruned", "full_model", "load", "mean_fills", "pruned", "save_checkpoint"]
