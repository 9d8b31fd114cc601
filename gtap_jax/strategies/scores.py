"""What a strategy asks of an attribute function, and the one type every attribute function returns."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from gtap_jax.layout import strongest_first
from gtap_jax.shapes import PRNGKey, ValueFn


class Scores(NamedTuple):
    """The scores of one round's players: what every attribute function returns.

    Attributes:
        values, stderr: ``float64[P]`` (stderr 0 when exact).
        num_evaluations: coalition values spent on them.
        settled: whether every player's side of the round's decision was certain.
        settled_share: the share of players whose side was (1.0 when exact).
        ranking: the players strongest first as the round's decision ranks them, where that is not the
            order of ``values`` (settled mode with focused draws: the values are the uniform estimate,
            unbiased, and the decision also uses the focused samples); None: by ``values``.
    """

    values: np.ndarray
    stderr: np.ndarray
    num_evaluations: int
    settled: bool = True
    settled_share: float = 1.0
    ranking: np.ndarray | None = None

    def order(self) -> np.ndarray:
        """The players strongest first: ``ranking``, or the values' order (:func:`order_of`)."""
        if self.ranking is not None:
            return np.asarray(self.ranking)
        return order_of(self.values)


def order_of(values) -> np.ndarray:
    """Positions strongest first: by decreasing value, NaN last, ties by position."""
    values = np.asarray(values, np.float64)
    return strongest_first(np.where(np.isnan(values), -np.inf, values))


class AttributeFn(Protocol):
    """Scores the players of a (sub-)game for the decision a strategy will take from them.

    ``cutoffs`` is that decision: for each r in it, the r strongest players against the
    rest (top_n: every size of the grid; an iterated round: the players it keeps against
    those it drops or adds). :func:`~gtap_jax.strategies.by_estimate` and
    :func:`~gtap_jax.strategies.by_exact` make one.
    """

    def __call__(self, key: PRNGKey, value_fn: ValueFn, num_players: int,
                 cutoffs: tuple[int, ...] = ()) -> Scores: ...


def checked(scores, num_players: int) -> Scores:
    """``scores`` if it is :class:`Scores` of ``num_players`` players.

    Raises:
        TypeError: for anything else (an ``Attribution`` or a bare array: wrap it in ``Scores``).
    """
    if not isinstance(scores, Scores):
        raise TypeError(f"an attribute function returns gtap_jax.strategies.Scores (as by_estimate and by_exact do),"
                        f" got {type(scores).__name__}")
    if np.shape(scores.values) != (num_players,):
        raise TypeError(f"an attribute function scores every player: expected {num_players} values, got"
                        f" shape {np.shape(scores.values)}")
    if scores.ranking is not None and sorted(np.asarray(scores.ranking).tolist()) != list(range(num_players)):
        raise TypeError(f"Scores.ranking must order all {num_players} players")
    return scores


__all__ = ["AttributeFn", "Scores", "checked", "order_of"]
