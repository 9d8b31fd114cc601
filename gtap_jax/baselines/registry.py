"""The baselines behind one signature: ``baseline(inputs, sizes) -> {size: bool[P]}``.

Score-based baselines (weight magnitude, weight x gradient, a gate's gradient, leave-one-out, random) keep the
highest-scoring neurons of each layer in proportion to its size
(:func:`gtap_jax.layout.keep_per_layer`); the lottery ticket prunes
iteratively and retrains. Adding a baseline: one function (or one scorer
wrapped by :func:`by_scores`) and one line in ``BASELINES``.
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
from gtap_jax.layout import PlayerLayout, keep_per_layer
from gtap_jax.network import Network
from gtap_jax.registry import Registry
from gtap_jax.shapes import PRNGKey


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


def by_scores(score_fn: Callable[[BaselineInputs], np.ndarray]) -> BaselineFn:
    """A baseline keeping, for every size, the highest ``score_fn`` neurons of each layer in proportion."""

    def baseline(inputs: BaselineInputs, sizes: Sequence[int]) -> dict[int, np.ndarray]:
        scores = score_fn(inputs)
        return {int(s): keep_per_layer(scores, inputs.layout, int(s)) for s in sizes}

    return baseline


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
        "wmp": by_scores(lambda i: magnitude_scores(i.network, None, i.layout)),
        "wgmp": by_scores(lambda i: taylor_scores(i.network, None, i.x, i.y, i.layout)),
        "gate": by_scores(lambda i: gate_scores(i.network, None, i.x, i.y, i.layout)),
        "loo": by_scores(lambda i: leave_one_out_scores(i.network, None, i.x, i.y, i.layout)),
        "random": by_scores(lambda i: random_scores(i.key, i.layout)),
        "lottery": lottery,
    },
)

__all__ = ["BASELINES", "BaselineFn", "BaselineInputs", "by_scores", "lottery"]
