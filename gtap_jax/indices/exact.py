"""Exact power indices by enumerating all 2^P coalitions (the test oracle)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.engine import Plan, batched_value_fn, check_finite, check_players, make_plan, place
from gtap_jax.indices.base import index_weights, resolve_d
from gtap_jax.registry import renamed
from gtap_jax.shapes import ValueFn

MAX_EXACT_PLAYERS = 30


def _masks_from_codes(start, count: int, num_players: int):
    codes = start + jnp.arange(count, dtype=jnp.int32)
    return ((codes[:, None] >> jnp.arange(num_players, dtype=jnp.int32)[None, :]) & 1).astype(bool)


_make_masks = jax.jit(_masks_from_codes, static_argnums=(1, 2))


@renamed(chunk_size="plan=make_plan(chunk_size=...)", mesh="plan=make_plan(mesh=...)")
def coalition_values(value_fn: ValueFn, num_players: int, *, plan: Plan | None = None) -> np.ndarray:
    """The value of every coalition, ``float32[2^P]``, indexed by code (bit j = player j).

    Raises:
        ValueError: if ``num_players`` exceeds ``MAX_EXACT_PLAYERS``.
    """
    if not 1 <= num_players <= MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact enumeration needs 1 <= num_players <= {MAX_EXACT_PLAYERS}, got {num_players};"
            " use gtap_jax.estimate for larger games"
        )
    check_players(value_fn, num_players)
    total = 1 << num_players
    plan = plan or make_plan(value_fn, num_players, num_coalitions=total)
    chunk = plan.chunk(min(total, 1 << 16))
    fn = batched_value_fn(value_fn, plan.mesh)
    outs = []
    for start in range(0, total, chunk):
        # Codes past 2^P in the padded last chunk are harmless: their values are dropped.
        outs.append(fn(place(_make_masks(start, chunk, num_players), plan.mesh)))
    table = np.concatenate([np.asarray(o) for o in outs])[:total]
    check_finite(table)
    return table


def indices_from_table(table: np.ndarray, index: str, *, d: float | None = None) -> np.ndarray:
    """Exact index from a table of all 2^P coalition values, in float64.

    phi_i = sum over S not containing i of w(|S|) [v(S + i) - v(S)], so each
    coalition c contributes +v(c) w(|c| - 1) to its members and -v(c) w(|c|) to
    the others.
    """
    num_players = int(round(math.log2(table.shape[0])))
    if table.shape[0] != 1 << num_players:
        raise ValueError(f"table must have 2^P entries, got {table.shape[0]}")
    w = index_weights(index, num_players, d)
    w_in = np.concatenate([[0.0], w])  # by coalition size |c|: weight w(|c| - 1)
    w_out = np.concatenate([w, [0.0]])  # weight w(|c|)
    phi = np.zeros(num_players)
    step = 1 << 16
    bits = np.arange(num_players)
    for start in range(0, table.shape[0], step):
        codes = np.arange(start, min(start + step, table.shape[0]))
        members = ((codes[:, None] >> bits) & 1).astype(bool)
        size = members.sum(1)
        v = table[codes].astype(np.float64)
        phi += members.T @ (v * w_in[size]) - (~members).T @ (v * w_out[size])
    return phi


@renamed(chunk_size="plan=make_plan(chunk_size=...)", mesh="plan=make_plan(mesh=...)")
def exact(value_fn: ValueFn, num_players: int, index: str, *, d: float | None = None,
          plan: Plan | None = None) -> np.ndarray:
    """Exact Shapley, Banzhaf or beta_d values by enumerating all 2^P coalitions.

    Coalition values are computed on device in chunks; the weighted sums are
    accumulated on the host in float64.

    Args:
        value_fn: value of one coalition, ``bool[P] -> scalar``.
        num_players: P, at most ``MAX_EXACT_PLAYERS`` (P = 20 takes well under a
            second for a cheap game on a CPU; the cost doubles with each player).
        index: a name in ``INDICES`` (``"shapley"``, ``"banzhaf"``, ``"beta"``).
        d: the Bernoulli parameter of ``"beta"``.
        plan: where and in what chunks to evaluate (:func:`gtap_jax.engine.make_plan`).

    Returns:
        ``float64[P]`` (numpy).
    """
    resolve_d(index, d)
    table = coalition_values(value_fn, num_players, plan=plan)
    return indices_from_table(table, index, d=d)


__all__ = ["MAX_EXACT_PLAYERS", "coalition_values", "exact", "indices_from_table"]
