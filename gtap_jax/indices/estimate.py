"""The Monte Carlo driver: draw, evaluate in chunks on the mesh, update, finalize."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from gtap_jax import engine
from gtap_jax.indices.estimators import (
    Estimator,
    EstimatorState,
    MSRState,
    RegressionState,
    SampleState,
    msr_beta,
    paired_beta,
    permutation_shapley,
    regression_beta,
)
from gtap_jax.indices.exact import resolve_d
from gtap_jax.shapes import PRNGKey, ValueFn

METHODS = {
    "shapley": ("permutation", "antithetic"),
    "banzhaf": ("msr", "paired", "regression"),
    "beta": ("msr", "paired", "regression"),
}
# Chosen from the evaluations each needs to reach Kendall tau >= 0.9 against
# exact values (benchmarks/estimators.py; benchmarks/RESULTS.md). The default
# when the budget is not known; estimate() picks regression for Banzhaf and
# beta_d when it is large enough (default_method).
DEFAULT_METHODS = {"shapley": "permutation", "banzhaf": "msr", "beta": "msr"}
# Regression is the Banzhaf / beta_d default from this many draws per player:
# within noise of MSR at 5 draws per player on the 400-player game, ahead at 20
# and 80, and needing half of MSR's evaluations on the 20-player games.
REGRESSION_MIN_DRAWS_PER_PLAYER = 5
# ... and up to this many players: its state is P x P and its finish a P x P solve.
REGRESSION_MAX_PLAYERS = 4096


class Attribution(NamedTuple):
    """Estimated power indices of P players.

    Attributes:
        values: ``float32[P]``, the estimate.
        stderr: ``float32[P]``, its standard error per player.
        num_samples: draws folded in so far (all calls on this state).
        num_evaluations: coalition values computed for them.
        index, method, d: what was estimated and how.
        state: the estimator state; pass it back to :func:`estimate` with the
            same key to continue the same run.
    """

    values: Float[Array, P]
    stderr: Float[Array, P]
    num_samples: int
    num_evaluations: int
    index: str
    method: str
    d: float | None
    state: EstimatorState


def make_estimator(num_players: int, index: str, *, d: float | None = None, method: str | None = None) -> Estimator:
    """The estimator for ``index`` by ``method`` (default: ``DEFAULT_METHODS``).

    Raises:
        ValueError: for an unknown index or method, a bad d, or num_players < 1.
    """
    d = resolve_d(index, d)
    if num_players < 1:
        raise ValueError(f"num_players must be at least 1, got {num_players}")
    method = DEFAULT_METHODS[index] if method is None else method
    if method not in METHODS[index]:
        raise ValueError(f"unknown method {method!r} for index {index!r}; expected one of {METHODS[index]}")
    if index == "shapley":
        return permutation_shapley(num_players, antithetic=method == "antithetic")
    return {"msr": msr_beta, "paired": paired_beta, "regression": regression_beta}[method](num_players, d)


def default_method(index: str, num_players: int, num_samples: int, state: EstimatorState | None = None) -> str:
    """The estimator :func:`estimate` uses for ``index`` when no method is given.

    Shapley: permutation sampling. Banzhaf and beta_d: the method of ``state``
    when continuing one; else regression when there are at least
    ``REGRESSION_MIN_DRAWS_PER_PLAYER`` draws per player (so the fit is well
    determined) and at most ``REGRESSION_MAX_PLAYERS`` players, MSR otherwise.
    """
    if index == "shapley":
        return DEFAULT_METHODS[index]
    if isinstance(state, RegressionState):
        return "regression"
    if isinstance(state, SampleState):
        return "paired"
    if isinstance(state, MSRState):
        return "msr"
    enough = num_samples >= REGRESSION_MIN_DRAWS_PER_PLAYER * (num_players + 1)
    return "regression" if enough and num_players <= REGRESSION_MAX_PLAYERS else DEFAULT_METHODS[index]


@functools.lru_cache(maxsize=128)
def _compiled(estimator: Estimator, draws_per_chunk: int):
    def draw(key, start):
        idx = start + jnp.arange(draws_per_chunk)
        return jax.vmap(estimator.draw, in_axes=(None, 0))(key, idx)

    def update(state, masks, values, num_valid):
        return estimator.update(state, masks, values, jnp.arange(draws_per_chunk) < num_valid)

    return jax.jit(draw), jax.jit(update), jax.jit(estimator.finalize)


def draws_per_chunk(
    estimator: Estimator,
    num_samples: int,
    chunk_size: int | None,
    mesh: Mesh | None,
    limit: int = engine.DEFAULT_CHUNK_SIZE,
) -> int:
    """Draws per compiled call: about ``chunk_size`` coalitions, a multiple of the mesh size."""
    k = estimator.draw_size
    coalitions = engine.chunk_size_for(num_samples * k, chunk_size, mesh, limit)
    b = max(1, coalitions // k)
    n = engine.num_shards(mesh)
    step = n // math.gcd(k, n)  # b * k must split evenly over the mesh
    return -(-b // step) * step


def estimate(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    index: str,
    *,
    num_samples: int,
    d: float | None = None,
    method: str | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    state: EstimatorState | None = None,
    progress: bool = False,
) -> Attribution:
    """Monte Carlo estimate of a power index with per-player standard errors.

    Draw ``i`` uses ``fold_in(key, i)``: the estimate does not depend on the
    chunk size or the number of devices (up to float rounding of the sums).

    Args:
        key: a ``jax.random.key``.
        value_fn: value of one coalition, ``bool[P] -> scalar``.
        num_players: P.
        index: ``"shapley"``, ``"banzhaf"`` (beta_0.5) or ``"beta"`` (beta_d).
        num_samples: draws to add; each costs ``estimator.draw_size`` evaluations
            (P + 1 for permutation and paired, 2P + 2 antithetic, 1 for MSR and regression).
        d: the Bernoulli parameter of ``"beta"``, in (0, 1).
        method: ``"permutation"`` or ``"antithetic"`` for Shapley; ``"msr"``,
            ``"paired"`` or ``"regression"`` for Banzhaf and beta_d. Default:
            :func:`default_method` (regression for Banzhaf and beta_d when
            ``num_samples`` is at least 5 (P + 1), else MSR).
        chunk_size: coalitions per compiled call (see ``evaluate_coalitions``).
        mesh: shard each chunk's coalitions over this mesh's devices
            (default: :func:`gtap_jax.engine.default_mesh`).
        state: a previous :attr:`Attribution.state` to continue (same key).
        progress: show a progress bar.

    Returns:
        An :class:`Attribution`.

    Raises:
        ValueError: for bad arguments (see :func:`make_estimator`), or
            ``num_samples < 0``.
    """
    if method is None and index in METHODS:
        method = default_method(index, num_players, num_samples, state)
    est = make_estimator(num_players, index, d=d, method=method)
    if num_samples < 0:
        raise ValueError(f"num_samples must be non-negative, got {num_samples}")
    mesh = engine.resolve_mesh(mesh)
    limit = engine.DEFAULT_CHUNK_SIZE
    if chunk_size is None and num_samples * est.draw_size > 16:
        limit = engine.max_chunk_size(value_fn, num_players, mesh)
    b = draws_per_chunk(est, max(num_samples, 1), chunk_size, mesh, limit)
    draw, update, finalize = _compiled(est, b)
    evaluate = engine.batched_value_fn(value_fn, mesh)
    state = est.init() if state is None else state
    first = int(state.num_draws)
    k = est.draw_size
    with tqdm(total=num_samples, desc=f"{index}/{est.name}", unit="draw", disable=not progress) as bar:
        for start in range(first, first + num_samples, b):
            masks = draw(key, start)
            values = evaluate(engine.place(masks.reshape(b * k, num_players), mesh))
            values = jax.device_put(engine.local_copy(values), masks.sharding).reshape(b, k)
            valid = min(b, first + num_samples - start)
            state = update(state, masks, values, valid)
            bar.update(valid)
    values, stderr = finalize(state)
    total = int(state.num_draws)
    return Attribution(values, stderr, total, total * k, index, est.name, resolve_d(index, d), state)


__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "REGRESSION_MAX_PLAYERS",
    "REGRESSION_MIN_DRAWS_PER_PLAYER",
    "Attribution",
    "default_method",
    "draws_per_chunk",
    "estimate",
    "make_estimator",
]
