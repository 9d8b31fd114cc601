"""Incremental evaluation along chains of coalitions, each one player away from the one before, and of
stars, each one player away from the first.

A permutation draw's P + 1 prefixes (or an antithetic draw's two chains) differ step by step by one
player; a paired draw's coalition and its P one-player flips, or a focused draw's flips, form a
star. Where the first player layer's features reach one affine layer (a Dense or a Conv, the
*consumer*) through per-feature operations only (an activation, a per-channel norm, pooling), the
consumer's output ``z`` moves by one term per step: flipping player j adds or removes that player's
contribution. The rest of the network (the activation, later player layers, the output layer) runs
per coalition from ``z``; what fed only the consumer is dead code then, and XLA drops it.

* A Dense consumer of the players' own features: the contribution is rank-1, ``(h_j - fill_j) W_j``
  (player j's output column on the evaluation set times its weight row), n x width operations
  instead of the n x width_in x width product of the whole layer; nothing is stored.
* Any other affine consumer (a Conv, a Dense over a flattened feature map): each player's
  contribution, ``z`` with only that player kept less ``z`` with none, is computed once per batch
  of chains and stored (``width x`` the size of ``z``, at most :data:`MAX_CONTRIBUTION_BYTES`),
  and a step is one add.

The chain is a ``lax.scan`` over steps (a star a ``lax.map`` over flips); the engine vmaps it over
chains and shards those over the mesh, as it does coalitions. The consumer's output is replaced,
and its input or output recorded, through :data:`~gtap_jax.network.modules.masking.OVERRIDE`: a
Linen or NNX model's consumer is found in one recorded pass (``modules.base.intercepted_chain_fn``), a
built-in model declares it (its site's consumer). A Flax model's evaluator must first reproduce
the masked pass on a few coalitions (a LayerNorm, a residual link or a second use in between fails
that, and the game is evaluated whole); a built-in model's structure guarantees it.

Updates accumulate float32 rounding along a chain of thousands of steps: each chain restarts from a
whole product every ``RESTART`` steps, which bounds the drift (``tests/test_chains.py`` checks the
values against the batched pass). A star has no drift: every flip starts from the first coalition's
``z``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout
from gtap_jax.network.modules.masking import Recorded, with_override

# Steps between whole recomputations of the kept pre-activation along a chain.
RESTART = 256
# The largest store of per-player contributions to an affine consumer's output; beyond it the game is
# evaluated whole.
MAX_CONTRIBUTION_BYTES = 1 << 29
# Players whose contributions one pass computes (the passes run one after another).
CONTRIBUTION_BATCH = 16


def consumer_chain_fn(layout: PlayerLayout, x, reduce, *, consumer: str, run, kernel=None, bias=None,
                      check: bool = True, second=None):
    """``chain(masks[K, P], fills, star=False) -> values[K]`` through the affine module at ``consumer``, or None;
    ``chain.flips(base[P], players[U], fills) -> values[1 + U]`` values a star of known flips (:func:`chains`).

    Args:
        layout, x, reduce: as :meth:`gtap_jax.network.contract.Network.chain_fn`.
        consumer: the path of the module that the first player layer's features reach first.
        run: ``(x, masks, fills) -> logits``, the masked model with ``consumer`` (and ``second``'s) open to the
            override.
        kernel, bias: the consumer's parameters; a 2-D kernel on the layer's ``width`` features makes the
            contributions rank-1 (nothing stored).
        check: whether the evaluator must first reproduce ``run`` on a few coalitions (else None).
        second: ``(path, kernel, bias)`` of the second player layer's consumer, or None: a Dense on that layer's
            features (a 2-D kernel) values a flip there rank-1 too, from the star's first coalition.
    """
    width = layout.layers[0][1]
    dense = _dense(kernel, bias, width)
    if dense:
        parts = _rank1(layout, consumer, run, *dense)
    else:
        parts = _stored(layout, consumer, run)
        out = jax.eval_shape(lambda x: _recorded(Recorded(), consumer, run, x, {}, None), jnp.asarray(x))
        if width * math.prod(out.shape) * 4 > MAX_CONTRIBUTION_BYTES:
            return None

    def logits_of(x):
        return lambda z, masks, fills: with_override({consumer: z}, run, jax.lax.optimization_barrier(x), masks,
                                                     fills)

    dense2 = None if second is None or len(layout.layers) < 2 else _dense(*second[1:], layout.layers[1][1])
    level2 = dense2 and _second(layout, consumer, second[0], run, *dense2)

    x = jnp.asarray(x)
    if check:
        few = x[:16]
        if not _reproduces(layout, few, run, chains(layout, parts(few), logits_of(few), lambda logits: logits)):
            return None
        if level2 is not None and not _reproduces(layout, few, run, chains(
                layout, parts(few), logits_of(few), lambda logits: logits, level2(few)), flips=True):
            level2 = None
    return chains(layout, parts(x), logits_of(x), reduce, None if level2 is None else level2(x))


def _dense(kernel, bias, width: int):
    """A Dense's float32 ``(kernel, bias)`` (no bias: zeros) where its kernel is 2-D on ``width`` features, or None."""
    if kernel is None or np.ndim(kernel) != 2 or np.shape(kernel)[0] != width:
        return None
    kernel = jnp.asarray(kernel, jnp.float32)
    return kernel, jnp.zeros(kernel.shape[1], jnp.float32) if bias is None else jnp.asarray(bias, jnp.float32)


def _lead(a, ndim):
    """``a``'s last axis as the last of ``ndim`` axes (the rank promotion that numpy would do)."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def _dense_parts(kept, dropped, kernel, bias, width: int):
    """``(whole, step)`` of a Dense on ``width`` input features, each ``kept`` where its player is and ``dropped``
    where not: ``whole(mask)``, its output for a coalition; ``step(z, j, sign)``, output ``z`` with player j kept
    (``sign`` 1) or dropped (-1), one rank-1 term."""
    column = kept - dropped  # what keeping player j adds to input feature j, per example

    def whole(mask):
        return jnp.where(_lead(mask[:width], kept.ndim), kept, dropped) @ kernel + _lead(bias, kept.ndim)

    def step(z, j, sign):
        return z + sign * column[..., j][..., None] * _lead(kernel[j], z.ndim)

    return whole, step


def _second(layout: PlayerLayout, consumer: str, second: str, run, kernel, bias):
    """``x -> fills -> (start, logits)`` for a Dense at ``second`` on the second player layer's features:
    ``start(z, masks) -> (y, step)``, its output for a coalition whose first consumer's output is ``z`` and
    ``step(y, k, sign)``, ``y`` with the layer's player k kept (``sign`` 1) or dropped (-1); ``logits(y, z,
    masks)``, the rest of the network from ``y``."""
    name, width = layout.layers[1]

    def parts(x):
        def setup(fills):
            def recorded(z, masks, keep):
                got = []
                with_override({consumer: z, second: got}, run, jax.lax.optimization_barrier(x), {**masks, name: keep},
                              fills)
                return got[0]

            def start(z, masks):
                kept, dropped = recorded(z, masks, jnp.ones(width, bool)), recorded(z, masks, jnp.zeros(width, bool))
                whole, step = _dense_parts(kept, dropped, kernel, bias, width)
                return whole(masks[name]), step

            def logits(y, z, masks):
                return with_override({consumer: z, second: y}, run, jax.lax.optimization_barrier(x), masks, fills)

            return start, logits

        return setup

    return parts


def _recorded(got: list, consumer: str, run, x, masks, fills):
    """The consumer's input in a pass of ``run`` (``got`` a plain list), or its output (a :class:`Recorded`)."""
    with_override({consumer: got}, run, jax.lax.optimization_barrier(x), masks, fills)
    return got[0]


def _rank1(layout: PlayerLayout, consumer: str, run, kernel, bias):
    """``x -> fills -> (whole, step)`` for a Dense consumer of the first layer's features: a step adds player j's
    output column times its weight row."""
    first, width = layout.layers[0]

    def parts(x):
        def setup(fills):
            kept = _recorded([], consumer, run, x, {first: jnp.ones(width, bool)}, fills)
            dropped = _recorded([], consumer, run, x, {first: jnp.zeros(width, bool)}, fills)
            return _dense_parts(kept, dropped, kernel, bias, width)

        return setup

    return parts


def _stored(layout: PlayerLayout, consumer: str, run):
    """``x -> fills -> (whole, step)`` for any affine consumer: each player's contribution to its output, stored."""
    first, width = layout.layers[0]

    def parts(x):
        def setup(fills):
            def output(keep):
                return _recorded(Recorded(), consumer, run, x, {first: keep}, fills)

            # (constant masks behind a barrier: XLA would fold the coalition without players at compile time)
            base = output(jax.lax.optimization_barrier(jnp.zeros(width, bool)))
            alone = jax.lax.map(output, jax.lax.optimization_barrier(jnp.eye(width, dtype=bool)),
                                batch_size=CONTRIBUTION_BATCH)
            contribution = alone - base[None]

            def whole(mask):
                return base + jnp.tensordot(mask[:width].astype(base.dtype), contribution, axes=1)

            def step(z, j, sign):
                return z + sign * contribution[j]

            return whole, step

        return setup

    return parts


def _reproduces(layout: PlayerLayout, x, run, star, flips: bool = False) -> bool:
    """Whether ``star`` (logits by updates of the consumer's output) equals the masked pass on a coalition and a
    few of its flips (``flips``: ``star.flips`` on them, a player of each layer among them)."""
    p, width = layout.num_players, layout.layers[0][1]
    base = np.random.default_rng(0).random(p) < 0.5
    flipped = sorted({0, 1, width // 2, width - 1, p - 1, *(a + (b - a) // 2 for a, b in layout.offsets().values())})
    masks = np.repeat(base[None], 1 + len(flipped), axis=0)
    masks[np.arange(1, 1 + len(flipped)), flipped] ^= True
    # jitted, both: op by op, a pass of a network runs each of its operations alone
    got = np.asarray(jax.jit(star.flips, static_argnums=2)(jnp.asarray(base), jnp.asarray(flipped), None) if flips
                     else jax.jit(star, static_argnums=(1, 2))(jnp.asarray(masks), None, True))
    want = np.asarray(jax.jit(lambda ms: jax.lax.map(lambda m: run(x, layout.split(m), None), ms))(masks))
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


def chains(layout: PlayerLayout, setup, logits_of, reduce, second=None):
    """``chain(masks[K, P], fills, star=False) -> values[K]`` by updates of a consumer's output, and
    ``chain.flips(base[P], players[U], fills) -> values[1 + U]``: the star of ``base`` and its flip of each of
    ``players``, which are known when compiling (not batched), so each flip takes the path of its layer: the first
    layer's moves the consumer's output, the second's (with ``second``) the second consumer's, and any other's
    runs the rest of the network from the first consumer's output.

    Args:
        layout: the game's players; the first layer's are the ones whose flips move the consumer.
        setup: ``fills -> (whole, step)``: ``whole(mask) -> z``, the consumer's output for a coalition, and
            ``step(z, j, sign) -> z`` with player j of the first layer kept (``sign`` 1) or dropped (-1).
        logits_of: ``(z, masks, fills) -> logits`` from the consumer's output ``z`` and the layers' masks.
        reduce: ``logits -> value``.
        second: ``fills -> (start, logits)`` of the second player layer's Dense consumer (:func:`_second`),
            or None.
    """
    width = layout.layers[0][1]
    width2 = layout.layers[1][1] if second is not None else 0

    def chain(masks, fills, star=False):
        whole, step = setup(fills)

        def moved(z, prev, cur):
            """``z`` of ``prev`` moved to ``cur``, one player away (or none) in the first player layer."""
            diff = cur ^ prev
            j = jnp.argmax(diff)
            sign = jnp.where(cur[j], 1.0, -1.0) * ((j < width) & diff[j])
            return step(z, jnp.minimum(j, width - 1), sign)

        z0 = whole(masks[0])
        first_value = reduce(logits_of(z0, layout.split(masks[0]), fills))[None]
        if star:
            values = jax.lax.map(lambda cur: reduce(logits_of(moved(z0, masks[0], cur), layout.split(cur), fills)),
                                 masks[1:])
            return jnp.concatenate([first_value, values])

        def advance(z, pair):
            prev, cur, restart = pair
            z = moved(z, prev, cur)
            z = jax.lax.cond(restart, lambda: whole(cur), lambda: z)
            return z, reduce(logits_of(z, layout.split(cur), fills))

        restarts = (jnp.arange(1, masks.shape[0]) % RESTART) == 0
        _, values = jax.lax.scan(advance, z0, (masks[:-1], masks[1:], restarts))
        return jnp.concatenate([first_value, values])

    def star_of(base, z0, players, fills, step):
        """The values of ``base`` (the consumer's output ``z0``) and of its flip of each of ``players``."""
        masks0 = layout.split(base)
        paths = [lambda cur, j, sign: logits_of(step(z0, jnp.minimum(j, width - 1), sign), layout.split(cur), fills),
                 lambda cur, j, sign: logits_of(z0, layout.split(cur), fills)]
        if second is not None:
            start, logits2 = second(fills)
            y0, step2 = start(z0, masks0)
            paths.append(lambda cur, j, sign: logits2(step2(y0, jnp.clip(j - width, 0, width2 - 1), sign), z0,
                                                      layout.split(cur)))

        def flipped(j):
            cur = base.at[j].set(~base[j])
            path = jnp.where(j < width, 0, jnp.where(j < width + width2, 2, 1))
            return reduce(jax.lax.switch(path, paths, cur, j, jnp.where(cur[j], 1.0, -1.0)))

        first_value = reduce(logits_of(z0, masks0, fills))[None]
        return jnp.concatenate([first_value, jax.lax.map(flipped, players)])

    def flips(base, players, fills):
        whole, step = setup(fills)
        return star_of(base, whole(base), players, fills, step)

    def flip_pairs(base, players, fills):
        """``values[2, 1 + U]``: the flips of ``base`` and of its complement. The consumer's output is affine in
        the mask, so the complement's is ``whole(all) + whole(none) - whole(base)`` (one product a pair)."""
        whole, step = setup(fills)
        z0 = whole(base)
        zc = whole(jnp.ones_like(base)) + whole(jnp.zeros_like(base)) - z0
        return jnp.stack([star_of(base, z0, players, fills, step), star_of(~base, zc, players, fills, step)])

    chain.flips, chain.flip_pairs = flips, flip_pairs
    return chain


__all__ = ["CONTRIBUTION_BATCH", "MAX_CONTRIBUTION_BYTES", "RESTART", "chains", "consumer_chain_fn"]
