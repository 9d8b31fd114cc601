"""Uncertainty bands over keep fractions, and the choice of d for beta_d.

For each keep fraction q, random coalitions keep every player independently
with probability q (dropout without rescaling); the spread of v over them is
the band. Our default rule picks the d whose band is widest (the most uncertain keep
fraction), which is where marginal contributions are most informative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.engine import Plan, evaluate_coalitions
from gtap_jax.registry import renamed
from gtap_jax.shapes import PRNGKey, ValueFn

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class Bands(NamedTuple):
    """Statistics of v over Bernoulli(q) coalitions, one row per keep fraction (numpy).

    Attributes:
        keep_fractions: ``float[Q]``.
        mean, std, stderr: ``float[Q]``; stderr is the standard error of the mean.
        quantile_levels: ``float[L]``.
        quantiles: ``float[Q, L]``.
        num_samples: coalitions per keep fraction.
        full_value, empty_value: v(all players), v(no player).
    """

    keep_fractions: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    stderr: np.ndarray
    quantile_levels: np.ndarray
    quantiles: np.ndarray
    num_samples: int
    full_value: float
    empty_value: float

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self._asdict().items()}


def _draw_masks(key, q, num_samples, num_players):
    idx = jnp.arange(num_samples)
    return jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(key, i), q, (num_players,)))(idx)


_draw = jax.jit(_draw_masks, static_argnums=(2, 3))


@renamed(chunk_size="plan=make_plan(chunk_size=...)", mesh="plan=make_plan(mesh=...)")
def uncertainty_bands(
    key: PRNGKey,
    value_fn: ValueFn,
    num_players: int,
    *,
    keep_fractions: Sequence[float],
    num_samples: int,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
    plan: Plan | None = None,
) -> Bands:
    """Mean, spread and quantiles of v over random Bernoulli(q) coalitions, per q.

    Keep fraction number j draws coalition i from ``fold_in(fold_in(key, j), i)``.

    Args:
        key: a ``jax.random.key``.
        value_fn: value of one coalition.
        num_players: P.
        keep_fractions: the grid of q, each in (0, 1].
        num_samples: coalitions per q (at least 2): the budget is
            ``len(keep_fractions) * num_samples + 2`` evaluations.
        quantile_levels: levels in [0, 1] of the reported quantiles.
        plan: where and in what chunks to evaluate (:func:`gtap_jax.engine.make_plan`).

    Returns:
        :class:`Bands`.

    Raises:
        ValueError: for an empty grid, a q outside (0, 1], or fewer than 2 samples.
    """
    qs = np.asarray(keep_fractions, np.float64)
    if qs.ndim != 1 or qs.size == 0:
        raise ValueError("keep_fractions must be a non-empty sequence")
    if np.any((qs <= 0) | (qs > 1)):
        raise ValueError(f"keep fractions must lie in (0, 1], got {qs.tolist()}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    levels = np.asarray(quantile_levels, np.float64)
    masks = np.concatenate(
        [np.asarray(_draw(jax.random.fold_in(key, j), q, num_samples, num_players)) for j, q in enumerate(qs)]
        + [np.ones((1, num_players), bool), np.zeros((1, num_players), bool)]
    )
    values = evaluate_coalitions(value_fn, masks, plan=plan)
    values = np.asarray(values, np.float64)
    full, empty = values[-2], values[-1]
    v = values[:-2].reshape(qs.size, num_samples)
    std = v.std(axis=1, ddof=1)
    return Bands(
        keep_fractions=qs,
        mean=v.mean(axis=1),
        std=std,
        stderr=std / np.sqrt(num_samples),
        quantile_levels=levels,
        quantiles=np.quantile(v, levels, axis=1).T,
        num_samples=num_samples,
        full_value=float(full),
        empty_value=float(empty),
    )


D_RULES = ("max_std", "min_keep_within")


def choose_d(bands: Bands, rule: str = "max_std", *, tolerance: float = 0.01) -> float:
    """Picks d for beta_d from uncertainty bands.

    Rules:
        ``"max_std"`` (our reading of the paper's bands; the text we can reach does
        not state the rule): the keep fraction whose v has the largest (finite)
        standard deviation, i.e. where the network is most uncertain.
        ``"min_keep_within"``: the smallest keep fraction whose mean v is within
        ``tolerance`` of v(all players); a conservative d that keeps the game
        near the intact network (falls back to the largest q if none is).

    The result is clipped into (0, 1): q = 1 is not a valid d.

    Raises:
        ValueError: for an unknown rule, or ``max_std`` on bands without a finite std.
    """
    if rule == "max_std":
        std = np.asarray(bands.std, np.float64)
        if not np.any(np.isfinite(std)):
            raise ValueError("no finite spread in the bands: every std is NaN (too few samples per keep fraction?)")
        q = bands.keep_fractions[int(np.nanargmax(np.where(np.isfinite(std), std, np.nan)))]
    elif rule == "min_keep_within":
        ok = np.flatnonzero(np.abs(bands.mean - bands.full_value) <= tolerance)
        qs = bands.keep_fractions
        q = qs[ok].min() if ok.size else qs.max()
    else:
        raise ValueError(f"unknown rule {rule!r}; expected one of {D_RULES}")
    return float(np.clip(q, 1e-3, 1 - 1e-3))


__all__ = ["D_RULES", "Bands", "choose_d", "uncertainty_bands"]
