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

The built-in models know their stages (:func:`staged_chain_fn`); for a Linen or NNX model the Dense
consumer is found in one recorded pass and its output replaced through
:data:`~gtap_jax.network.modules.masking.OVERRIDE` (:func:`intercepted_chain_fn`). Both share the update
itself (:func:`rank1_chains`), over any leading axes (tokens too).

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
from gtap_jax.network.modules.masking import HEADS, with_override

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
    kernel, bias = jnp.asarray(params[spec.consumer]["kernel"]), jnp.asarray(params[spec.consumer]["bias"])
    stage = names.index(spec.consumer)
    variables = {"params": params}
    h = jax.jit(lambda v, x: model.apply(v, x, stop=names.index(first) + 1))(variables, jnp.asarray(x))
    if np.ndim(kernel) != 2 or h.ndim != 2 or h.shape[1] != kernel.shape[0]:
        return None
    act = _activation(model, variables, h[:4], kernel, bias, stage)
    if act is None:
        return None

    def inputs(fills):
        return h, (jnp.zeros((1, h.shape[1]), h.dtype) if fills is None else fills[first][None, :])

    def logits_of(z, masks, fills):
        out = act(z)
        if spec.consumer in masks:
            fill = 0.0 if fills is None else fills[spec.consumer][None, :]
            out = jnp.where(masks[spec.consumer][None, :], out, fill)
        rest = {n: m for n, m in masks.items() if n not in (first, spec.consumer)}
        return model.apply(variables, out, masks=rest, fills=fills, start=stage + 1)

    return rank1_chains(layout, inputs, logits_of, kernel, bias, reduce)


def intercepted_chain_fn(layout: PlayerLayout, x, reduce, *, calls, params_at, forward, dtype: str = "float32"):
    """The chain evaluator of a Linen or NNX model's game, or None where it does not apply.

    The consumer is the first Dense called after the first player layer, taking its features. Its input with
    every player of that layer kept and with every one dropped is recorded, its output replaced by the
    rank-1-updated ``z`` (:data:`~gtap_jax.network.modules.masking.OVERRIDE`); everything that fed only the consumer is
    dead code then, and XLA drops it. Before it is offered, the evaluator must reproduce the masked pass on a
    few coalitions (a LayerNorm, a residual link or a second use in between fails that, and the game is
    evaluated whole).

    Args:
        layout, x, reduce, dtype: as :meth:`gtap_jax.network.contract.Network.chain_fn`.
        calls: the leaf module calls of one pass, in order (:class:`gtap_jax.network.modules.shrink_chain.Call`).
        params_at: ``path -> {name: array}``, the parameters of the module at ``path`` (None if none).
        forward: ``consumer -> ((x, masks, fills) -> logits)``, the masked model (it sets the coalition) with the
            module at ``consumer`` open to the override.
    """
    first, width = layout.layers[0]
    consumer = _consumer(calls, first, width)
    node = params_at(consumer) if consumer is not None and dtype == "float32" else None
    kernel = None if node is None else node.get("kernel")
    if kernel is None or np.ndim(kernel) != 2 or np.shape(kernel)[0] != width:
        return None
    kernel = jnp.asarray(kernel, jnp.float32)
    bias = jnp.asarray(node["bias"] if node.get("bias") is not None else np.zeros(kernel.shape[1]), jnp.float32)
    run = forward(consumer)

    def parts(x):
        def consumer_input(keep, fills):
            got: list = []
            with_override({consumer: got}, run, jax.lax.optimization_barrier(x), {first: keep}, fills)
            return got[0]

        def inputs(fills):
            return consumer_input(jnp.ones(width, bool), fills), consumer_input(jnp.zeros(width, bool), fills)

        def logits_of(z, masks, fills):
            return with_override({consumer: z}, run, jax.lax.optimization_barrier(x), masks, fills)

        return inputs, logits_of

    few = x[:16]
    if not _reproduces(layout, few, run, rank1_chains(layout, *parts(few), kernel, bias, lambda logits: logits)):
        return None
    return rank1_chains(layout, *parts(x), kernel, bias, reduce)


def _consumer(calls, first: str, width: int) -> str | None:
    """The path of the Dense called once, first after the layer ``first`` (called once), on ``width`` features."""
    paths = [c.path for c in calls]
    if first.endswith(HEADS) or paths.count(first) != 1:
        return None
    for call in calls[paths.index(first) + 1 :]:
        if call.kind == "conv":
            return None
        if call.kind == "dense":
            ok = paths.count(call.path) == 1 and np.shape(call.inputs)[-1:] == (width,)
            return call.path if ok else None
    return None


def _reproduces(layout: PlayerLayout, x, run, star) -> bool:
    """Whether ``star`` (logits by rank-1 updates) equals the masked pass on a coalition and a few of its flips."""
    p, width = layout.num_players, layout.layers[0][1]
    base = np.random.default_rng(0).random(p) < 0.5
    masks = np.repeat(base[None], 6, axis=0)
    for row, j in enumerate(sorted({0, 1, width // 2, width - 1, p - 1}), start=1):
        masks[row, j] = ~masks[row, j]
    got = np.asarray(star(jnp.asarray(masks), None, True))
    want = np.stack([np.asarray(run(x, layout.split(m), None)) for m in masks])
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


def rank1_chains(layout: PlayerLayout, inputs, logits_of, kernel, bias, reduce):
    """``chain(masks[K, P], fills, star=False) -> values[K]`` by rank-1 updates of a Dense consumer's output.

    Args:
        layout: the game's players; the first layer's are the ones whose flips move the consumer.
        inputs: ``fills -> (kept, dropped)``, the consumer's input ``[..., width]`` with every player of the first
            layer kept, and with every one dropped; a coalition's input takes each feature from one of them.
        logits_of: ``(z, masks, fills) -> logits`` from the consumer's output ``z`` and the layers' masks.
        kernel, bias: the consumer's ``[width, out]`` and ``[out]``.
        reduce: ``logits -> value``.
    """
    width = layout.layers[0][1]

    def lead(a, ndim):  # a's last axis as the last of ndim axes (the rank promotion that numpy would do)
        return a.reshape((1,) * (ndim - a.ndim) + a.shape)

    def whole(mask, kept, dropped):
        return jnp.where(lead(mask[:width], kept.ndim), kept, dropped) @ kernel + lead(bias, kept.ndim)

    def moved(z, prev, cur, column):
        """``z`` of ``prev`` moved to ``cur``, one player away (or none) in the first player layer."""
        diff = cur ^ prev
        j = jnp.argmax(diff)
        sign = jnp.where(cur[j], 1.0, -1.0) * ((j < width) & diff[j])
        jj = jnp.minimum(j, width - 1)
        return z + sign * column[..., jj][..., None] * lead(kernel[jj], z.ndim)

    def chain(masks, fills, star=False):
        kept, dropped = inputs(fills)
        column = kept - dropped  # what keeping player j adds to the consumer's input feature j, per example
        z0 = whole(masks[0], kept, dropped)
        first_value = reduce(logits_of(z0, layout.split(masks[0]), fills))[None]
        if star:
            values = jax.lax.map(lambda cur: reduce(logits_of(moved(z0, masks[0], cur, column),
                                                                layout.split(cur), fills)), masks[1:])
            return jnp.concatenate([first_value, values])

        def step(z, pair):
            prev, cur, restart = pair
            z = moved(z, prev, cur, column)
            z = jax.lax.cond(restart, lambda: whole(cur, kept, dropped), lambda: z)
            return z, reduce(logits_of(z, layout.split(cur), fills))

        restarts = (jnp.arange(1, masks.shape[0]) % RESTART) == 0
        _, values = jax.lax.scan(step, z0, (masks[:-1], masks[1:], restarts))
        return jnp.concatenate([first_value, values])

    return chain


__all__ = ["RESTART", "intercepted_chain_fn", "rank1_chains", "staged_chain_fn"]
