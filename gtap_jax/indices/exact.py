"""Exact power indices by enumerating all 2^P coalitions (the test oracle)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gtap_jax import engine
from gtap_jax.shapes import ValueFn

MAX_EXACT_PLAYERS = 30
INDEX_NAMES = ("shapley", "banzhaf", "beta")


def resolve_d(index: str, d: float | None) -> float | None:
    """The Bernoulli parameter of an index: None for Shapley, 0.5 for Banzhaf.

    Raises:
        ValueError: for an unknown index, a missing d for ``"beta"``, a d that
            contradicts ``"banzhaf"``, or d outside (0, 1).
    """
    if index not in INDEX_NAMES:
        raise ValueError(f"unknown index {index!r}; expected one of {INDEX_NAMES}")
    if index == "shapley":
        if d is not None:
            raise ValueError("the Shapley value takes no d")
        return None
    if index == "banzhaf":
        if d is not None and d != 0.5:
            raise ValueError(f"the Banzhaf index is beta_d with d = 0.5, got d={d}; use index='beta'")
        return 0.5
    if d is None:
        raise ValueError("index='beta' needs d in (0, 1)")
    if not 0.0 < d < 1.0:
        raise ValueError(f"d must lie strictly between 0 and 1, got {d}")
    return float(d)


def _masks_from_codes(start, count: int, num_players: int):
    codes = start + jnp.arange(count, dtype=jnp.int32)
    return ((codes[:, None] >> jnp.arange(num_players, dtype=jnp.int32)[None, :]) & 1).astype(bool)


_make_masks = jax.jit(_masks_from_codes, static_argnums=(1, 2))


def coalition_values(
    value_fn: ValueFn,
    num_players: int,
    *,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """The value of every coalition, ``float32[2^P]``, indexed by code (bit j = player j).

    Raises:
        ValueError: if ``num_players`` exceeds ``MAX_EXACT_PLAYERS``.
    """
    if not 1 <= num_players <= MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact enumeration needs 1 <= num_players <= {MAX_EXACT_PLAYERS}, got {num_players};"
            " use gtap_jax.estimate for larger games"
        )
    total = 1 << num_players
    mesh = engine.resolve_mesh(mesh)
    limit = engine.max_chunk_size(value_fn, num_players, mesh) if chunk_size is None else engine.DEFAULT_CHUNK_SIZE
    chunk = engine.chunk_size_for(min(total, 1 << 16), chunk_size, mesh, limit)
    fn = engine.batched_value_fn(value_fn, mesh)
    outs = []
    for start in range(0, total, chunk):
        # Codes past 2^P in the padded last chunk are harmless: their values are dropped.
        outs.append(fn(engine.place(_make_masks(start, chunk, num_players), mesh)))
    return np.concatenate([np.asarray(o) for o in outs])[:total]


def _weights(index: str, num_players: int, d: float | None) -> np.ndarray:
    """w[s]: weight of the marginal contribution to a coalition of size s (of the others)."""
    s = np.arange(num_players)
    if index == "shapley":
        return np.array(
            [math.factorial(k) * math.factorial(num_players - 1 - k) / math.factorial(num_players) for k in s]
        )
    return d**s * (1.0 - d) ** (num_players - 1 - s)


def indices_from_table(table: np.ndarray, index: str, *, d: float | None = None) -> np.ndarray:
    """Exact index from a table of all 2^P coalition values, in float64.

    phi_i = sum over S not containing i of w(|S|) [v(S + i) - v(S)], so each
    coalition c contributes +v(c) w(|c| - 1) to its members and -v(c) w(|c|) to
    the others.
    """
    d = resolve_d(index, d)
    num_players = int(round(math.log2(table.shape[0])))
    if table.shape[0] != 1 << num_players:
        raise ValueError(f"table must have 2^P entries, got {table.shape[0]}")
    w = _weights(index, num_players, d)
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


def exact(
    value_fn: ValueFn,
    num_players: int,
    index: str,
    *,
    d: float | None = None,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Exact Shapley, Banzhaf or beta_d values by enumerating all 2^P coalitions.

    Coalition values are computed on device in chunks; the weighted sums are
    accumulated on the host in float64.

    Args:
        value_fn: value of one coalition, ``bool[P] -> scalar``.
        num_players: P, at most ``MAX_EXACT_PLAYERS`` (20 takes seconds on a CPU).
        index: ``"shapley"``, ``"banzhaf"`` or ``"beta"``.
        d: the Bernoulli parameter of ``"beta"``.
        chunk_size, mesh: as in :func:`gtap_jax.evaluate_coalitions`.

    Returns:
        ``float64[P]`` (numpy).
    """
    resolve_d(index, d)
    table = coalition_values(value_fn, num_players, chunk_size=chunk_size, mesh=mesh)
    return indices_from_table(table, index, d=d)


__all__ = ["INDEX_NAMES", "coalition_values", "exact", "indices_from_table", "resolve_d"]
