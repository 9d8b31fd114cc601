"""Draws aimed at the players whose side of a decision is still unsure.

Once a uniform estimate has settled most players, the rest need more precision
than the others: a *focused* draw gives one sample of each unsure player's
index alone, through one-player flips, so its cost grows with the number of
unsure players U, not with P. Each estimator's registry entry names the kind of
focused draw that samples the index it estimates:

* ``"flip"`` (beta_d; Banzhaf at d = 0.5): a coalition T ~ Bernoulli(d)^P and its
  flip of each unsure player u, ``v(T + u) - v(T - u)``: 1 + U evaluations per draw.
* ``"owen"`` (Shapley): the same with d drawn from Uniform(0, 1) for each draw. The
  Shapley value is the integral over d of beta_d's marginals (Owen's multilinear
  extension): T minus u is distributed as u's predecessors in a uniformly random
  order, so the sample is distributed as a permutation's marginal of u, at 1 + U
  evaluations per draw where an order's two coalitions per player cost 2U.

A *sample* is the mean of a few draws made together, and the error bars come
from the spread of samples, which are independent. A round fixes its draws per
sample at its first focused check (:func:`sample_draws`): the most that still buy
``FOCUS_MIN_SAMPLES`` samples with that check's values, so that its samples count
at once (on 8,192 players with 3,500 unsure, a sample of 8 draws costs 28,000
values, and a round that waited for 16 of them never used its focus).

* Where the complement of a draw's coalition has the draw's distribution (Banzhaf;
  Shapley, whose d is symmetric about 1/2), each coalition comes with its complement
  N \\ T. A pairwise term b_uk of the game enters u's marginal at exactly one of the
  two, so their mean carries b_uk / 2 every time (the pairing trick of complementary
  stars, ``gtap_jax.indices.estimators.complementary``).
* For the Shapley value, the d of a sample's pairs are stratified: the k-th of
  its S pairs draws d uniformly from ``[k, k + 1) / (2 S)`` and its complement has
  ``1 - d``, so every sample covers small and large coalitions alike; a marginal's
  mean varies with the coalition's size, and that part of its variance leaves the
  sample. (One draw alone takes d from Uniform(0, 1).)

On the 64 players nearest a trained network's top-20% cutoff (neg_loss), a
Shapley sample of 4 stratified pairs has 0.32-0.83x an independent draw's
variance per evaluation, a Banzhaf pair 0.25-0.83x (``benchmarks/RESULTS.md``,
"Focused samples").

Either sample is unbiased for the player's index, and independent of the
uniform estimate (its own key), so the two combine by inverse-variance
weighting (:func:`combine`). Focusing pays when U is small against P: E
evaluations buy an unsure player E / (P + 1) permutation samples but E / (U + 1)
focused ones (``by_estimate`` focuses while 2U <= P); a regression draw's precision
per evaluation is about a paired draw's (``benchmarks/RESULTS.md``), so a focused
beta_d draw gains about P / (U + 1) too. A draw is a star (each coalition one player
away from the first) whose flipped players every draw shares: a game that values
such stars incrementally (``gtap_jax.engine.evaluate_flips``) does, a network game
each flip by the path of its layer, and a pair's two coalitions from one product.
The coalitions are drawn on the device in
blocks but evaluated from the host: on a GPU, where the evaluations themselves are
fast, that costs more than it saves (measured in ``benchmarks/RESULTS.md``).

References:
    Owen, Multilinear extensions of games, Management Science 18(5), 1972.
    Okhrati and Lipani, A multilinear sampling algorithm to estimate Shapley values, ICPR 2020.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from gtap_jax.engine import ChainValueFn, Plan, evaluate_flips

# The kinds of focused draw (the module's docstring): each estimator's registry entry names one.
FOCUS_KINDS = ("flip", "owen")

# Draws in one focused sample, most first (the module docstring): for Shapley up to 4 pairs of a coalition and its
# complement, each pair's d from its own stratum; for Banzhaf a pair; for beta_d (d != 1/2) one draw.
OWEN_SIZES = (8, 4, 2, 1)

# A player's focused samples enter its estimate from this many on (the normal approximation
# of their mean, and their variance, need a few).
FOCUS_MIN_SAMPLES = 16


class FocusMoments(NamedTuple):
    """Running count, mean and sum of squared deviations of each player's focused samples (float64), and the
    draws in each sample (0 before any)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    draws: int = 0

    @classmethod
    def zeros(cls, num_players: int) -> FocusMoments:
        z = np.zeros(num_players)
        return cls(z, z.copy(), z.copy())

    def add(self, players: np.ndarray, samples: np.ndarray, draws: int) -> FocusMoments:
        """Folds ``samples[n, U]`` of ``players[U]``, each the mean of ``draws`` draws, in (Chan et al.'s merge).

        Raises:
            ValueError: for samples of another size than those already folded in (their spread differs).
        """
        if self.draws not in (0, draws):
            raise ValueError(f"focused samples of {draws} draws cannot join samples of {self.draws}")
        count, mean, m2 = self.count.copy(), self.mean.copy(), self.m2.copy()
        n = samples.shape[0]
        mb, m2b = samples.mean(axis=0), ((samples - samples.mean(axis=0)) ** 2).sum(axis=0)
        na = count[players]
        total = na + n
        delta = mb - mean[players]
        mean[players] += delta * n / total
        m2[players] += m2b + delta**2 * na * n / total
        count[players] = total
        return FocusMoments(count, mean, m2, draws)


def sample_sizes(kind: str, d: float | None) -> tuple[int, ...]:
    """The draws a focused sample of ``kind`` may hold, most first: ``OWEN_SIZES`` for ``"owen"``; a coalition and
    its complement, or one, for ``"flip"`` at d = 1/2; else one."""
    return OWEN_SIZES if kind == "owen" else (2, 1) if d == 0.5 else (1,)


def sample_draws(kind: str, d: float | None, num_unsure: int, evaluations: int) -> int:
    """Draws per focused sample of ``kind`` over ``num_unsure`` players: the most of :func:`sample_sizes` whose
    ``FOCUS_MIN_SAMPLES`` samples cost at most ``evaluations``, or the fewest."""
    sizes = sample_sizes(kind, d)
    return next((m for m in sizes if FOCUS_MIN_SAMPLES * sample_cost(m, num_unsure) <= evaluations), sizes[-1])


def sample_cost(draws: int, num_unsure: int) -> int:
    """Evaluations of one focused sample of ``draws`` draws over ``num_unsure`` players: a coalition and its flips
    per draw."""
    return draws * (1 + num_unsure)


def _padded(n: int, least: int = 8) -> int:
    """The least of ``least`` and ``2^k (1 + j / 4)`` (j = 0..3) that is at least ``n``: at most 4 compiled shapes a
    doubling of U, under 25% of the flips padding."""
    if n <= least:
        return least
    top = 1 << (n - 1).bit_length()
    return next(size for size in (top * 5 // 8, top * 3 // 4, top * 7 // 8, top) if size >= n)


# Focused samples are made and evaluated in blocks of at most this many draws (one compiled shape per padded U),
# and of at most BLOCK_CELLS mask entries: a draw valued as masks over U of P players is about U x P of them.
BLOCK = 256
BLOCK_CELLS = 1 << 24


def sample_coalitions(key, num_players: int, d: float | None, draws: int) -> Bool[Array, "D P"]:
    """``bool[draws, P]``: one sample's coalitions, each player in one with probability ``d``; ``d`` None: with a
    probability drawn for each pair of draws from the pair's stratum (module docstring). With two or more draws,
    every other coalition is its predecessor's complement."""
    pairs = max(1, draws // 2)
    if d is None:  # each pair's stratum of [0, 1/2), its complement's of (1/2, 1]; one draw: [0, 1)
        offset = jax.random.uniform(jax.random.fold_in(key, 1), (pairs,))
        q = (jnp.arange(pairs) + offset) / (2 * pairs if draws > 1 else 1)
    else:
        q = jnp.full((pairs,), d)
    t = jax.random.uniform(key, (pairs, num_players)) < q[:, None]
    if draws > 1:
        t = jnp.stack([t, ~t], axis=1)
    return t.reshape(draws, num_players)


@functools.partial(jax.jit, static_argnames=("num_players", "d", "draws", "block"))
def _focused_bases(key, start, *, num_players: int, d: float | None, draws: int, block: int):
    """``bool[block * draws, P]``: the coalitions of ``block`` samples of ``draws`` draws, sample i from
    ``fold_in(key, start + i)`` (:func:`sample_coalitions`)."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(block))
    t = jax.vmap(lambda k: sample_coalitions(k, num_players, d, draws))(keys)
    return t.reshape(block * draws, num_players)


def focused_samples(key, value_fn, num_players: int, kind: str, d: float | None, players: np.ndarray,
                    num_samples: int, plan: Plan, draws: int) -> np.ndarray:
    """``float64[num_samples, U]``: one unbiased sample of each of ``players``' index per focused sample of
    ``kind``, the mean of ``draws`` draws (one of :func:`sample_sizes`).

    Raises:
        ValueError: for an unknown kind, ``"flip"`` without a d, or a sample size the kind does not make.
    """
    if kind not in FOCUS_KINDS or (kind == "flip" and d is None):
        raise ValueError(f"focused draws are one of {FOCUS_KINDS} ('flip' with a d), got {kind!r} with d={d}")
    u = players.size
    d = float(d) if kind == "flip" else None
    if draws not in sample_sizes(kind, d):
        raise ValueError(f"a focused sample of kind {kind!r} with d={d} cannot be {draws} draws")
    # A star valued incrementally flips the padding too, so that its length (and the compiled shape) is one of a few.
    flipped = players
    if isinstance(value_fn, ChainValueFn):
        flipped = np.concatenate([players, np.full(_padded(u) - u, players[0])]).astype(np.int32)
    # Stars of known flips hold only their bases; others are valued as masks, 1 + U of them a base.
    cells = num_players * draws * (1 if hasattr(value_fn, "flip_values") else 1 + flipped.size)
    fits = max(1, BLOCK_CELLS // cells)
    block = min(max(1, BLOCK // draws), 1 << (fits.bit_length() - 1))  # a power of two: few shapes compile
    out = []
    for start in range(0, num_samples, block):
        bases = np.asarray(_focused_bases(key, start, num_players=num_players, d=d, draws=draws,
                                          block=block))[: (num_samples - start) * draws]
        values = np.asarray(evaluate_flips(value_fn, bases, flipped, plan=plan, pairs=draws > 1),
                            np.float64)[:, : 1 + u]
        marginal = np.where(bases[:, players], values[:, :1] - values[:, 1:], values[:, 1:] - values[:, :1])
        out.append(marginal.reshape(-1, draws, u).mean(axis=1))
    return np.concatenate(out)


def combine(values, stderr, focus: FocusMoments) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted values and standard errors of the uniform and focused estimates.

    A player with fewer than ``FOCUS_MIN_SAMPLES`` focused samples keeps its
    uniform estimate. Equal samples say little about a player's variance when
    values move in steps (accuracy on n examples moves by 1/n): a player whose
    samples are all equal takes the median per-sample variance of the players
    whose samples are not, and only when every focused player's samples are
    equal (an additive game) is its error zero.
    """
    values, stderr = np.array(values, np.float64), np.array(stderr, np.float64)
    enough = focus.count >= FOCUS_MIN_SAMPLES
    per_sample = focus.m2 / np.maximum(focus.count - 1, 1)
    spread = per_sample[enough & (per_sample > 0)]
    per_sample = np.where(per_sample > 0, per_sample, np.median(spread) if spread.size else 0.0)
    var_f = per_sample / np.maximum(focus.count, 1)
    var_u = np.where(np.isfinite(values), np.square(stderr), np.inf)
    use = enough & (var_u > 0)
    exact = use & (var_f == 0)
    mix = use & ~exact
    w_u = np.where(mix & np.isfinite(var_u), 1.0 / np.where(var_u > 0, var_u, 1.0), 0.0)
    w_f = np.where(mix, 1.0 / np.where(mix, var_f, 1.0), 0.0)
    total = np.where(mix, w_u + w_f, 1.0)
    values[mix] = ((w_u * np.nan_to_num(values) + w_f * focus.mean) / total)[mix]
    stderr[mix] = (1.0 / np.sqrt(total))[mix]
    values[exact], stderr[exact] = focus.mean[exact], 0.0
    return values, stderr


__all__ = ["FOCUS_KINDS", "FOCUS_MIN_SAMPLES", "FocusMoments", "OWEN_SIZES", "combine", "focused_samples",
           "sample_cost", "sample_draws",
           "sample_sizes"]
