"""The Monte Carlo driver: draw, evaluate in chunks on the mesh, update, finalize.

Budgets are counted in coalition evaluations, whatever one draw of an estimator
costs (its registry entry's ``draw_size``: 1 for MSR and regression, P + 1 for
permutation and paired, 2P + 2 for antithetic, 8P + 8 for owen, 32 for kernel), as shapiq's
``approximate(budget, game)`` counts them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

from gtap_jax.engine import (
    ChainValueFn,
    Plan,
    batched_chain_fn,
    batched_flip_fn,
    batched_value_fn,
    check_players,
    local_copy,
    make_plan,
    non_finite_error,
    place,
)
from gtap_jax.indices.base import INDICES, resolve_d
from gtap_jax.indices.estimators import ESTIMATORS, Estimator, estimators_for
from gtap_jax.indices.result import Attribution, EstimateState
from gtap_jax.registry import renamed
from gtap_jax.shapes import PRNGKey, ValueFn

# Regression is the Banzhaf / beta_d default from this many evaluations per player
# (one draw is one evaluation): within noise of MSR at 5 per player on the
# 400-player game, ahead at 20 and 80, and needing half of MSR's evaluations on the
# 20-player games (benchmarks/estimators.py; benchmarks/RESULTS.md).
REGRESSION_MIN_DRAWS_PER_PLAYER = 5
# ... and up to this many players: its state is P x P and its finish a P x P solve.
REGRESSION_MAX_PLAYERS = 4096
# Paired draws are the Banzhaf / beta_d default on games that value them incrementally from this many
# draws: each gives every player one sample, and at 5-20 draws (2,048-8,192 values on LeNet-300-100)
# iterated pruning with them kept networks 0.05-0.2 less accurate than with regression's.
PAIRED_MIN_DRAWS = 64
# A star estimator's draws are valued as bases and known flips (``evaluate_flips``) from this many players: on MLPs
# (500 images) within 10% of the stars' masks at 400 players, 1.4x their values per second at 768, 1.8x at
# 2,048 and 2.0x at 8,192; below, compiling the flips' paths (a switch over the layers) costs more than it saves.
STAR_FLIPS_MIN_PLAYERS = 512


def default_estimator(index: str, num_players: int, evaluations: int, value_fn: ValueFn | None = None) -> str:
    """The estimator :func:`estimate` uses for a new run of ``index`` when none is given.

    Stars where ``value_fn`` values them incrementally (a :class:`~gtap_jax.engine.ChainValueFn`: about 20x
    the values per second of whole coalitions on LeNet-300-100) and the budget buys ``PAIRED_MIN_DRAWS``
    paired draws: for Shapley Owen sampling (complementary stars with stratified shares, 1.24-4.90x
    smaller variance per second than permutations or antithetic orders on four trained networks), for
    Banzhaf complementary stars (a coalition and its complement, 1.2-4.5x the precision per
    value of paired stars on four trained networks), for beta_d paired stars (at about the
    precision per value of regression; ``benchmarks/RESULTS.md``); else a regression with at least
    ``REGRESSION_MIN_DRAWS_PER_PLAYER`` evaluations per player (so the fit is well determined) and
    at most ``REGRESSION_MAX_PLAYERS`` players: for Banzhaf on complementary pairs (Kernel Banzhaf,
    1.4-5.9x the precision per value of the unpaired fit on four trained networks), for beta_d on
    single coalitions; MSR otherwise. Shapley otherwise: permutation sampling. A continued run keeps its
    state's estimator.
    """
    if isinstance(value_fn, ChainValueFn) and evaluations >= PAIRED_MIN_DRAWS * (num_players + 1):
        return {"shapley": "owen", "banzhaf": "complementary"}.get(index, "paired")
    if not INDICES[index].takes_d:
        return "permutation"
    if evaluations < REGRESSION_MIN_DRAWS_PER_PLAYER * (num_players + 1) or num_players > REGRESSION_MAX_PLAYERS:
        return "msr"
    return "kernel_banzhaf" if index == "banzhaf" else "regression"


@renamed(method="estimator=")
def make_estimator(num_players: int, index: str, *, d: float | None = None, estimator: str | None = None) -> Estimator:
    """The estimator of ``index`` named ``estimator`` (default: :func:`default_estimator` for a small budget).

    Raises:
        ValueError: for an unknown index or estimator (listing the registered
            ones), an estimator that does not serve the index, a bad d, or
            num_players < 1.
    """
    d = resolve_d(index, d)
    if num_players < 1:
        raise ValueError(f"num_players must be at least 1, got {num_players}")
    estimator = default_estimator(index, num_players, 0) if estimator is None else estimator
    entry = ESTIMATORS[estimator]
    if index not in entry.indices:
        raise ValueError(f"estimator {estimator!r} does not serve index {index!r}; expected one of"
                         f" {estimators_for(index)}")
    return entry.factory(num_players, d)


def draw_size(estimator: str, num_players: int) -> int:
    """Coalitions one draw of ``estimator`` evaluates for ``num_players`` players (its registry entry says)."""
    return ESTIMATORS[estimator].draw_size(num_players)


@functools.lru_cache(maxsize=128)
def _compiled(estimator: Estimator, draws_per_chunk: int, bases: bool = False):
    """Jitted ``draw``, ``update``, ``replay`` (init and update, or None) and ``finalize`` for chunks of draws
    (``bases``: ``draw`` gives a star estimator's bases, not its masks)."""

    def draw(key, start):
        idx = start + jnp.arange(draws_per_chunk)
        return jax.vmap(estimator.star_bases if bases else estimator.draw, in_axes=(None, 0))(key, idx)

    def valid_of(start, total):
        return start + jnp.arange(draws_per_chunk) < total

    def update(state, masks, values, num_valid):
        # values as evaluated, one row per draw here; the count of NaN or infinite ones among the valid draws is
        # returned, read once at the end (no sync, and no eager operation compiled per chunk shape)
        values = values.reshape(draws_per_chunk, estimator.draw_size)
        valid = jnp.arange(draws_per_chunk) < num_valid
        bad = jnp.sum(~jnp.isfinite(values) & valid[:, None])
        return estimator.update(state, masks, values, valid), bad

    replay = None
    if estimator.replay is not None:
        def replay_update(acc, masks, start, total):
            return estimator.replay.update(acc, masks, valid_of(start, total))

        replay = (jax.jit(estimator.replay.init), jax.jit(replay_update))
    return jax.jit(draw), jax.jit(update), replay, jax.jit(estimator.finalize)


def _flips(estimator: Estimator, value_fn, num_players: int) -> bool:
    """Whether ``value_fn`` values ``estimator``'s stars from their bases and known flips."""
    return (estimator.star_bases is not None and hasattr(value_fn, "flip_values")
            and num_players >= STAR_FLIPS_MIN_PLAYERS)


def _evaluator(value_fn, entry, mesh, size: int, num_players: int, stars: Estimator | None = None):
    """``masks[B, K, P] -> values``: whole coalitions in one batch, or (an ``entry`` with chains) the draws' chains
    or stars incrementally; with ``stars`` (an estimator whose stars the game values from known flips,
    :func:`_flips`), ``bases[B, S, P] -> values[B, K]``: every player flipped in turn, a base and its complement
    together where the game can."""
    if stars is not None:
        players = jnp.arange(num_players, dtype=jnp.int32)
        if stars.complements and hasattr(value_fn, "flip_pair_values"):
            pair_fn = batched_flip_fn(value_fn, mesh, pairs=True)
            return lambda bases: pair_fn(place(bases[:, 0::2].reshape(-1, num_players), mesh), players)
        fn = batched_flip_fn(value_fn, mesh)
        return lambda bases: fn(place(bases.reshape(-1, num_players), mesh), players)
    if entry is not None:
        fn = batched_chain_fn(value_fn, entry.chains, mesh, star=entry.star)
        return lambda masks: fn(place(masks, mesh))
    fn = batched_value_fn(value_fn, mesh)
    return lambda masks: fn(place(masks.reshape(size, num_players), mesh))


def _finalize(estimator: Estimator, key, state, draws_per_chunk: int):
    """``(values, stderr)`` of a state, after the estimator's replay of its draws if it has one."""
    draw, _, replay, finalize = _compiled(estimator, draws_per_chunk)
    if replay is None:
        return finalize(state)
    replay_init, replay_update = replay
    total = int(state.num_draws)
    acc = replay_init(state)
    for start in range(0, total, draws_per_chunk):
        acc = replay_update(acc, draw(key, start), start, total)
    return finalize(state, acc)


def draws_per_chunk(estimator: Estimator, num_draws: int, plan: Plan, *, whole_draws: bool = False) -> int:
    """Draws per compiled call: about one chunk of coalitions, their count a multiple of the mesh size (with
    ``whole_draws``, the draws' count: the mesh splits draws, as when chains are valued incrementally)."""
    return plan.draws_per_call(num_draws, estimator.draw_size, whole_draws=whole_draws)


def new_state(num_players: int, index: str, d: float | None, estimator: str) -> EstimateState:
    """A fresh state of ``estimator`` estimating ``index``: no draws yet (the template a saved one restores into)."""
    d = resolve_d(index, d)
    est = make_estimator(num_players, index, d=d, estimator=estimator)
    return EstimateState(index, estimator, d, num_players, est.init())


def _start(num_players, index, d, estimator, evaluations, state, value_fn) -> EstimateState:
    """The state to continue: ``state`` (checked against the arguments) or a new one."""
    d = resolve_d(index, d)
    if state is None:
        estimator = default_estimator(index, num_players, evaluations, value_fn) if estimator is None else estimator
        return new_state(num_players, index, d, estimator)
    if isinstance(state, Attribution):
        state = state.state
    asked = (index, d, num_players) + ((estimator,) if estimator is not None else ())
    has = (state.index, state.d, state.num_players) + ((state.estimator,) if estimator is not None else ())
    if asked != has:
        raise ValueError(
            f"the state continues {state.estimator} estimation of {state.index} (d={state.d}) over"
            f" {state.num_players} players; this call asks for {estimator or state.estimator} estimation of"
            f" {index} (d={d}) over {num_players} players"
        )
    return state


def attribution_of(key: PRNGKey, state: EstimateState) -> Attribution:
    """The :class:`Attribution` a saved state of a run with ``key`` stands for (finalized again; no evaluation)."""
    est = make_estimator(state.num_players, state.index, d=state.d, estimator=state.estimator)
    values, stderr = _finalize(est, key, state.draws, max(1, 4096 // est.draw_size))
    n = state.num_draws
    return Attribution(values, stderr, n, n * est.draw_size, state.index, state.estimator, state.d, state)


@renamed(method="estimator=", chunk_size="plan=make_plan(chunk_size=...)", mesh="plan=make_plan(mesh=...)")
def estimate(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    index: str,
    *,
    evaluations: int,
    d: float | None = None,
    estimator: str | None = None,
    plan: Plan | None = None,
    state: EstimateState | Attribution | None = None,
    progress: bool = False,
) -> Attribution:
    """Monte Carlo estimate of a power index with per-player standard errors.

    Draw ``i`` uses ``fold_in(key, i)``: the estimate does not depend on the
    chunk size or the number of devices (up to float rounding of the sums).

    Args:
        key: a ``jax.random.key``.
        value_fn: value of one coalition, ``bool[P] -> scalar``.
        num_players: P.
        index: a name in ``INDICES``: ``"shapley"``, ``"banzhaf"`` (beta_0.5) or ``"beta"`` (beta_d).
        evaluations: the budget of this call in coalition values; it buys
            ``evaluations // draw_size`` draws (a permutation costs P + 1). 0
            only continues a ``state`` (re-finalizing it).
        d: the Bernoulli parameter of ``"beta"``, in (0, 1).
        estimator: a name in ``ESTIMATORS`` serving ``index`` (``"permutation"``,
            ``"antithetic"``, ``"owen"``, ``"kernel"`` for Shapley; ``"msr"``, ``"paired"``,
            ``"regression"`` for Banzhaf and beta_d, ``"complementary"``, ``"kernel_banzhaf"`` for Banzhaf).
            Default: the state's when continuing, else :func:`default_estimator`.
        plan: where and in what chunks to evaluate (:func:`gtap_jax.engine.make_plan`).
        state: an earlier :class:`Attribution` (or its ``state``) to continue (same key).
        progress: show a progress bar.

    Returns:
        An :class:`Attribution`.

    Raises:
        ValueError: for bad arguments (see :func:`make_estimator`), a budget
            that buys no draw for a new run, a state of another index, d,
            estimator or number of players, a value function that does not
            take ``bool[P]``, or coalition values that are NaN or infinite.
    """
    run = _start(num_players, index, d, estimator, evaluations, state, value_fn)
    est = make_estimator(num_players, index, d=run.d, estimator=run.estimator)
    k = est.draw_size
    if evaluations < 0 or 0 < evaluations < k or (evaluations == 0 and state is None):
        raise ValueError(f"evaluations must buy at least one {run.estimator} draw ({k} coalitions), or be 0 to"
                         f" re-finalize a state; got {evaluations}")
    num_draws = evaluations // k
    check_players(value_fn, num_players)
    plan = plan or make_plan(value_fn, num_players, num_coalitions=num_draws * k)
    entry = ESTIMATORS[run.estimator]
    chained = entry if entry.incremental_on(value_fn) else None
    b = draws_per_chunk(est, max(num_draws, 1), plan, whole_draws=chained is not None)
    flips = _flips(est, value_fn, num_players)
    draw, update, _, _ = _compiled(est, b, flips)
    evaluate = _evaluator(value_fn, chained, plan.mesh, b * k, num_players, est if flips else None)
    draws, not_finite = run.draws, []
    first = int(draws.num_draws)
    with tqdm(total=num_draws * k, desc=f"{index}/{run.estimator}", unit="eval", disable=not progress) as bar:
        for start in range(first, first + num_draws, b):
            masks = draw(key, start)
            values = jax.device_put(local_copy(evaluate(masks)), masks.sharding)
            valid = min(b, first + num_draws - start)
            draws, bad = update(draws, masks, values, valid)
            not_finite.append(bad)
            bar.update(valid * k)
    bad = int(sum(int(n) for n in not_finite))
    if bad:
        raise non_finite_error(bad, num_draws * k)
    values, stderr = _finalize(est, key, draws, b)
    total = int(draws.num_draws)
    run = dataclasses.replace(run, draws=draws)
    return Attribution(values, stderr, total, total * k, index, run.estimator, run.d, run)


__all__ = [
    "PAIRED_MIN_DRAWS",
    "REGRESSION_MAX_PLAYERS",
    "REGRESSION_MIN_DRAWS_PER_PLAYER",
    "STAR_FLIPS_MIN_PLAYERS",
    "attribution_of",
    "default_estimator",
    "draw_size",
    "draws_per_chunk",
    "estimate",
    "make_estimator",
    "new_state",
]
