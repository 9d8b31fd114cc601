"""What a Monte Carlo estimate is: its result (:class:`Attribution`) and the state that continues it."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
from jaxtyping import Array, Float


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["draws"], meta_fields=["index", "estimator", "d", "num_players"]
)
@dataclasses.dataclass(frozen=True)
class EstimateState:
    """Where a Monte Carlo run stands: what it estimates (static) and its estimator's state (arrays).

    Attributes:
        index, estimator, d, num_players: what is estimated and how; a continued run must agree.
        draws: the estimator's own state (running moments; ``num_draws`` first).
    """

    index: str
    estimator: str
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
        index, estimator, d: what was estimated and how.
        state: pass it back to :func:`gtap_jax.estimate` with the same key to continue the same run.
    """

    values: Float[Array, " P"]
    stderr: Float[Array, " P"]
    num_draws: int
    num_evaluations: int
    index: str
    estimator: str
    d: float | None
    state: EstimateState


__all__ = ["Attribution", "EstimateState"]
