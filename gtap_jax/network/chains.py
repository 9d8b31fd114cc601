"""Incremental evaluation along chains of coalitions, each one player away from the one before, and of
stars, each one player away from the first.

A permutation draw's P + 1 prefixes (or an antithetic draw's two chains) differ step by step by one
player; a paired draw's coalition and its P one-player flips, or a focused draw's flips, form a
star. Where the first player layer feeds a Dense layer directly, that layer's pre-activation ``z``
moves by one rank-1 term per step: flipping player j adds or removes ``(h_j - fill_j) W_j`` (its
output column on the evaluation set times its weight row), n x width operations instead of the
n x width_in x width product of a whole layer. The rest of the network (the activation, later
player layers, the output layer) runs per coalition. The chain is a ``lax.scan`` over steps (a star
a ``lax.map`` over flips); the engine vmaps it over chains and shards those over the mesh, as it does
coalitions.

Rank-1 updates accumulate float32 rounding along a chain of thousands of steps: each chain restarts
from a whole product every ``RESTART`` steps, which bounds the drift (``tests/test_chains.py``
checks the values against the batched pass). A star has no drift: every flip starts from the first
coalition's product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout

# Steps between whole recomputations of the kept pre-activation along a chain.
RESTART = 256


def _activation(model, variables, h, kernel, bias, stage: int):
    """``relu`` or the identity, whichever the Dense stage ``stage`` applies to ``h @ kernel + bias``; else None."""
    z = h @ kernel + bias[None, :]
    out = model.apply(variables, h, start=stage, stop=stage + 1)
    if out.shape != z.shape:
        return None
    for act in (jax.nn.relu, lambda a: a):
        if np.allclose(np.asarray(act(z)), np.asarray(out), rtol=1e-5, atol=1e-5):
            return act
    return None


def staged_chain_fn(model, params, layout: PlayerLayout, x, reduce, *, dtype: str = "float32"):
    """The chain evaluator of a staged network's game, or None where it does not apply (module docstring)."""
    if dtype != "float32":
        return None
    names = model.stage_names()
    first = layout.names[0]
    spec = next(s for s in model.site_specs() if s.name == first)
    if spec.consumer_spatial is not None or spec.consumer not in names:
        return None
    kernel, bias = params[spec.consumer]["kernel"], params[spec.consumer]["bias"]
    stage = names.index(spec.consumer)
    variables = {"params": params}
    h = jax.jit(lambda v, x: model.apply(v, x, stop=names.index(first) + 1))(variables, jnp.asarray(x))
    if np.ndim(kernel) != 2 or h.ndim != 2 or h.shape[1] != kernel.shape[0]:
        return None
    act = _activation(model, variables, h[:4], kernel, bias, stage)
    if act is None:
        return None
    width = layout.layers[0][1]

    def logits_of(z, masks, fills):
        out = act(z)
        if spec.consumer in masks:
            fill = 0.0 if fills is None else fills[spec.consumer][None, :]
            out = jnp.where(masks[spec.consumer][None, :], out, fill)
        rest = {n: m for n, m in masks.items() if n not in (first, spec.consumer)}
        return model.apply(variables, out, masks=rest, fills=fills, start=stage + 1)

    def whole(mask, fill):
        return jnp.where(mask[:width][None, :], h, fill[None, :]) @ kernel + bias[None, :]

    def moved(z, prev, cur, column):
        """``z`` of ``prev`` moved to ``cur``, one player away (or none) in the first player layer."""
        diff = cur ^ prev
        j = jnp.argmax(diff)
        sign = jnp.where(cur[j], 1.0, -1.0) * ((j < width) & diff[j])
        jj = jnp.minimum(j, width - 1)
        return z + sign * column[:, jj][:, None] * kernel[jj][None, :]

    def chain(masks, fills, star=False):
        fill = jnp.zeros(width, h.dtype) if fills is None else fills[first]
        column = h - fill[None, :]  # what keeping player j adds to its output, per example
        z0 = whole(masks[0], fill)
        first_value = reduce(logits_of(z0, layout.split(masks[0]), fills))[None]
        if star:
            values = jax.lax.map(lambda cur: reduce(logits_of(moved(z0, masks[0], cur, column),
                                                                layout.split(cur), fills)), masks[1:])
            return jnp.concatenate([first_value, values])

        def step(z, pair):
            prev, cur, restart = pair
            z = moved(z, prev, cur, column)
            z = jax.lax.cond(restart, lambda: whole(cur, fill), lambda: z)
            return z, reduce(logits_of(z, layout.split(cur), fills))

        restarts = (jnp.arange(1, masks.shape[0]) % RESTART) == 0
        _, values = jax.lax.scan(step, z0, (masks[:-1], masks[1:], restarts))
        return jnp.concatenate([first_value, values])

    return chain


__all__ = ["RESTART", "staged_chain_fn"]
