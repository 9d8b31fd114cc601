"""The Monte Carlo driver: draw, evaluate in chunks on the mesh, update, finalize.

Budgets are counted in coalition evaluations, whatever one draw of an estimator
costs (1 for MSR and regression, P + 1 for permutation and paired, 2P + 2 for
antithetic, 32 for kernel), as shapiq's ``approximate(budget, game)`` counts them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Float
from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

from gtap_jax import engine
from gtap_jax.indices.base import INDICES, resolve_d
from gtap_jax.indices.estimators import Estimator, antithetic_shapley, msr_beta, paired_beta, permutation_shapley
from gtap_jax.indices.kernel import kernel_shapley
from gtap_jax.indices.regression import regression_beta
from gtap_jax.registry import Registry
from gtap_jax.shapes import PRNGKey, ValueFn


class EstimatorEntry(NamedTuple):
    """A registered estimator: ``factory(num_players, d) -> Estimator`` and the indices it serves."""

    factory: Callable[[int, float | None], Estimator]
    indices: tuple[str, ...]


# Adding an estimator: one factory and one line here.
ESTIMATORS = Registry(
    "estimator",
    {
        "permutation": EstimatorEntry(permutation_shapley, ("shapley",)),
        "antithetic": EstimatorEntry(antithetic_shapley, ("shapley",)),
        "kernel": EstimatorEntry(kernel_shapley, ("shapley",)),
        "msr": EstimatorEntry(msr_beta, ("banzhaf", "beta")),
        "paired": EstimatorEntry(paired_beta, ("banzhaf", "beta")),
        "regression": EstimatorEntry(regression_beta, ("banzhaf", "beta")),
    },
)

# Regression is the Banzhaf / beta_d default from this many evaluations per player
# (one draw is one evaluation): within noise of MSR at 5 per player on the
# 400-player game, ahead at 20 and 80, and needing half of MSR's evaluations on the
# 20-player games (benchmarks/estimators.py; benchmarks/RESULTS.md).
REGRESSION_MIN_DRAWS_PER_PLAYER = 5
# ... and up to this many players: its state is P x P and its finish a P x P solve.
REGRESSION_MAX_PLAYERS = 4096


def methods_for(index: str) -> tuple[str, ...]:
    """Names of the registered estimators that serve ``index``."""
    INDICES.check(index)
    return tuple(name for name, entry in ESTIMATORS.items() if index in entry.indices)


def default_method(index: str, num_players: int, evaluations: int) -> str:
    """The estimator :func:`estimate` uses for a new run of ``index`` when no method is given.

    Shapley: permutation sampling. Banzhaf and beta_d: regression with at least
    ``REGRESSION_MIN_DRAWS_PER_PLAYER`` evaluations per player (so the fit is
    well determined) and at most ``REGRESSION_MAX_PLAYERS`` players, MSR
    otherwise. A continued run keeps its state's method.
    """
    if not INDICES[index].takes_d:
        return "permutation"
    enough = evaluations >= REGRESSION_MIN_DRAWS_PER_PLAYER * (num_players + 1)
    return "regression" if enough and num_players <= REGRESSION_MAX_PLAYERS else "msr"


def make_estimator(num_players: int, index: str, *, d: float | None = None, method: str | None = None) -> Estimator:
    """The estimator for ``index`` by ``method`` (default: ``default_method`` for a small budget).

    Raises:
        ValueError: for an unknown index or method (listing the registered
            ones), a method that does not serve the index, a bad d, or
            num_players < 1.
    """
    d = resolve_d(index, d)
    if num_players < 1:
        raise ValueError(f"num_players must be at least 1, got {num_players}")
    method = default_method(index, num_players, 0) if method is None else method
    entry = ESTIMATORS[method]
    if index not in entry.indices:
        raise ValueError(f"unknown method {method!r} for index {index!r}; expected one of {methods_for(index)}")
    return entry.factory(num_players, d)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["draws"], meta_fields=["index", "method", "d", "num_players"]
)
@dataclasses.dataclass(frozen=True)
class EstimateState:
    """Where a Monte Carlo run stands: what it estimates (static) and its estimator's state (arrays).

    Attributes:
        index, method, d, num_players: what is estimated and how; a continued
            run must agree.
        draws: the estimator's own state (running moments; ``num_draws`` first).
    """

    index: str
    method: str
    d: float | None
    num_players: int
    draws: Any

    @property
    def num_draws(self) -> int:
        return int(self.draws.num_draws)


class Attribution(NamedTuple):
    """Estimated power indices of P players.

    Attributes:
        values: ``float32[P]``, the estimate.
        stderr: ``float32[P]``, its standard error per player.
        num_draws: draws folded in so far (all calls on this state).
        num_evaluations: coalition values computed for them.
        index, method, d: what was estimated and how.
        state: pass it back to :func:`estimate` with the same key to continue the same run.
    """

    values: Float[Array, P]
    stderr: Float[Array, P]
    num_draws: int
    num_evaluations: int
    index: str
    method: str
    d: float | None
    state: EstimateState


@functools.lru_cache(maxsize=128)
def _compiled(estimator: Estimator, draws_per_chunk: int):
    def draw(key, start):
        idx = start + jnp.arange(draws_per_chunk)
        return jax.vmap(estimator.draw, in_axes=(None, 0))(key, idx)

    def update(state, masks, values, num_valid):
        return estimator.update(state, masks, values, jnp.arange(draws_per_chunk) < num_valid)

    return jax.jit(draw), jax.jit(update), jax.jit(estimator.finalize)


def draws_per_chunk(estimator: Estimator, num_draws: int, plan: engine.Plan) -> int:
    """Draws per compiled call: about one chunk of coalitions, their count a multiple of the mesh size."""
    k = estimator.draw_size
    b = max(1, plan.chunk(num_draws * k) // k)
    step = plan.shards // math.gcd(k, plan.shards)  # b * k must split evenly over the mesh
    return -(-b // step) * step


def _start(num_players, index, d, method, evaluations, state) -> EstimateState:
    """The state to continue: ``state`` (checked against the arguments) or a new one."""
    d = resolve_d(index, d)
    if state is None:
        method = default_method(index, num_players, evaluations) if method is None else method
        est = make_estimator(num_players, index, d=d, method=method)
        return EstimateState(index, method, d, num_players, est.init())
    if isinstance(state, Attribution):
        state = state.state
    asked = (index, d, num_players) + ((method,) if method is not None else ())
    has = (state.index, state.d, state.num_players) + ((state.method,) if method is not None else ())
    if asked != has:
        raise ValueError(
            f"the state continues {state.method} estimation of {state.index} (d={state.d}) over"
            f" {state.num_players} players; this call asks for {method or state.method} estimation of"
            f" {index} (d={d}) over {num_players} players"
        )
    return state


def attribution_of(state: EstimateState) -> Attribution:
    """The :class:`Attribution` a saved state stands for (finalized again; no evaluation)."""
    est = make_estimator(state.num_players, state.index, d=state.d, method=state.method)
    values, stderr = _compiled(est, 1)[2](state.draws)
    n = state.num_draws
    return Attribution(values, stderr, n, n * est.draw_size, state.index, state.method, state.d, state)


def estimate(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    index: str,
    *,
    evaluations: int,
    d: float | None = None,
    method: str | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    plan: engine.Plan | None = None,
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
            ``evaluations // draw_size`` draws (a permutation costs P + 1).
        d: the Bernoulli parameter of ``"beta"``, in (0, 1).
        method: a name in ``ESTIMATORS`` serving ``index`` (``"permutation"``,
            ``"antithetic"`` for Shapley; ``"msr"``, ``"paired"``,
            ``"regression"`` for Banzhaf and beta_d). Default: the state's when
            continuing, else :func:`default_method`.
        chunk_size, mesh, plan: as in :func:`gtap_jax.evaluate_coalitions`.
        state: an earlier :class:`Attribution` (or its ``state``) to continue (same key).
        progress: show a progress bar.

    Returns:
        An :class:`Attribution`.

    Raises:
        ValueError: for bad arguments (see :func:`make_estimator`), a negative
            budget or one smaller than a draw, a state of another index,
            d, method or number of players, a value function that does not
            take ``bool[P]``, or coalition values that are NaN or infinite.
    """
    run = _start(num_players, index, d, method, evaluations, state)
    est = make_estimator(num_players, index, d=run.d, method=run.method)
    k = est.draw_size
    if evaluations < 0 or 0 < evaluations < k:
        raise ValueError(f"evaluations must be 0 or at least one {run.method} draw ({k} coalitions), got {evaluations}")
    num_draws = evaluations // k
    engine.check_players(value_fn, num_players)
    plan = engine.make_plan(value_fn, num_players, num_coalitions=num_draws * k, chunk_size=chunk_size, mesh=mesh,
                            plan=plan)
    b = draws_per_chunk(est, max(num_draws, 1), plan)
    draw, update, finalize = _compiled(est, b)
    evaluate = engine.batched_value_fn(value_fn, plan.mesh)
    draws, not_finite = run.draws, []
    first = int(draws.num_draws)
    with tqdm(total=num_draws * k, desc=f"{index}/{run.method}", unit="eval", disable=not progress) as bar:
        for start in range(first, first + num_draws, b):
            masks = draw(key, start)
            values = evaluate(engine.place(masks.reshape(b * k, num_players), plan.mesh))
            values = jax.device_put(engine.local_copy(values), masks.sharding).reshape(b, k)
            valid = min(b, first + num_draws - start)
            not_finite.append(jnp.sum(~jnp.isfinite(values[:valid])))  # read once at the end: no sync per chunk
            draws = update(draws, masks, values, valid)
            bar.update(valid * k)
    bad = int(sum(int(n) for n in not_finite))
    if bad:
        raise engine.non_finite_error(bad, num_draws * k)
    values, stderr = finalize(draws)
    total = int(draws.num_draws)
    run = dataclasses.replace(run, draws=draws)
    return Attribution(values, stderr, total, total * k, index, run.method, run.d, run)


__all__ = [
    "ESTIMATORS",
    "REGRESSION_MAX_PLAYERS",
    "REGRESSION_MIN_DRAWS_PER_PLAYER",
    "Attribution",
    "EstimateState",
    "attribution_of",
    "EstimatorEntry",
    "default_method",
    "draws_per_chunk",
    "estimate",
    "make_estimator",
    "methods_for",
]
