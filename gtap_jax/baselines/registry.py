"""The baselines behind one signature: ``baseline(inputs, sizes) -> {size: bool[P]}``.

Score-based baselines (weight magnitude, weight x gradient, a gate's gradient, leave-one-out, random) keep the
highest-scoring neurons under an allocation (:mod:`gtap_jax.strategies.allocation`): by default each layer
keeps its proportional share (:func:`gtap_jax.layout.keep_per_layer`); ``global`` ranks every player at
once and ``cost`` by score per unit of parameters or FLOPs, as GTAP may. The lottery ticket prunes
iteratively (per layer) and retrains. Adding a baseline: one function (or one scorer wrapped by
:func:`by_scores`) and one line in ``BASELINES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from gtap_jax.baselines.lottery import lottery_ticket
from gtap_jax.baselines.scores import (
    gate_scores,
    leave_one_out_scores,
    magnitude_scores,
    random_scores,
    taylor_scores,
)
from gtap_jax.layout import PlayerLayout
from gtap_jax.network import Network
from gtap_jax.registry import Registry
from gtap_jax.shapes import PRNGKey
from gtap_jax.strategies.allocation import Cost, comparable, keep


class BaselineInputs(NamedTuple):
    """Everything a baseline may use.

    Attributes:
        key: randomness (random scores).
        network: the trained network (any adapter).
        layout: the players.
        x, y: the data the game is played on (gradients of weight x gradient).
        init: the network at its initial weights (the lottery ticket rewinds to them), or None.
        train_fn: the training of one lottery level, as ``init.train_masked`` takes it, or None.
    """

    key: PRNGKey
    network: Network
    layout: PlayerLayout
    x: np.ndarray
    y: np.ndarray
    init: Network | None = None
    train_fn: Callable | None = None


BaselineFn = Callable[[BaselineInputs, Sequence[int]], dict[int, np.ndarray]]


class ScoreBaseline(NamedTuple):
    """A baseline that scores players; an allocation keeps the strongest.

    Attributes:
        score_fn: ``inputs -> float[P]``.
        same_units: whether a score means the same in every group (a change of the loss); scores that do
            not (a weight's magnitude) are divided by their group's L2 norm before a ``global`` or ``cost``
            ranking (:func:`gtap_jax.strategies.allocation.comparable`).
    """

    score_fn: Callable[[BaselineInputs], np.ndarray]
    same_units: bool = True

    def scores(self, inputs: BaselineInputs, allocation: str = "proportional") -> np.ndarray:
        """``float[P]``, made comparable across groups where ``allocation`` ranks them together."""
        return self.for_allocation(self.score_fn(inputs), inputs.layout, allocation)

    def for_allocation(self, scores, layout: PlayerLayout, allocation: str) -> np.ndarray:
        """Raw ``scores`` as ``allocation`` ranks them: per group as they are, across groups comparable."""
        scores = np.asarray(scores, np.float64)
        if allocation != "proportional" and not self.same_units:
            return comparable(scores, layout)
        return scores

    def __call__(self, inputs: BaselineInputs, sizes: Sequence[int], *, allocation: str = "proportional",
                 cost: Cost | None = None) -> dict[int, np.ndarray]:
        scores = self.scores(inputs, allocation)
        return {int(s): keep(scores, inputs.layout, allocation, players=int(s), cost=cost) for s in sizes}


def by_scores(score_fn: Callable[[BaselineInputs], np.ndarray], *, same_units: bool = True) -> ScoreBaseline:
    """A baseline keeping, for every size, the highest ``score_fn`` neurons (each layer its share by default)."""
    return ScoreBaseline(score_fn, same_units)


def lottery(inputs: BaselineInputs, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """Lottery tickets down the grid of sizes (needs ``inputs.init`` and ``inputs.train_fn``).

    Raises:
        ValueError: without the initial network or a training function.
    """
    if inputs.init is None or inputs.train_fn is None:
        raise ValueError("the lottery-ticket baseline needs the initial network and a training function"
                         " (BaselineInputs.init, BaselineInputs.train_fn)")
    return lottery_ticket(None, inputs.init, inputs.network, inputs.layout, sizes, inputs.train_fn)


BASELINES = Registry(
    "baseline",
    {
        "wmp": by_scores(lambda i: magnitude_scores(i.network, None, i.layout), same_units=False),
        "wgmp": by_scores(lambda i: taylor_scores(i.network, None, i.x, i.y, i.layout)),
        "gate": by_scores(lambda i: gate_scores(i.network, None, i.x, i.y, i.layout)),
        "loo": by_scores(lambda i: leave_one_out_scores(i.network, None, i.x, i.y, i.layout)),
        "random": by_scores(lambda i: random_scores(i.key, i.layout)),
        "lottery": lottery,
    },
)

__all__ = ["BASELINES", "BaselineFn", "BaselineInputs", "ScoreBaseline", "by_scores", "lottery"]
