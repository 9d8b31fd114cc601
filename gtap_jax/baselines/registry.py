"""The baselines behind one signature: ``baseline(inputs, sizes) -> {size: bool[P]}``.

Score-based baselines (weight magnitude, weight x gradient, random) keep the
highest-scoring neurons of each layer in proportion to its size
(:func:`gtap_jax.layout.keep_per_layer`); the lottery ticket prunes
iteratively and retrains. Adding a baseline: one function (or one scorer
wrapped by :func:`by_scores`) and one line in ``BASELINES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from gtap_jax.baselines.flax_scores import flax_magnitude_scores, flax_taylor_scores
from gtap_jax.baselines.lottery import TrainFn, lottery_ticket
from gtap_jax.baselines.scores import magnitude_scores, random_scores, taylor_scores
from gtap_jax.games.flax_models import is_flax_model
from gtap_jax.layout import PlayerLayout, keep_per_layer
from gtap_jax.registry import Registry
from gtap_jax.shapes import PRNGKey, PyTree


class BaselineInputs(NamedTuple):
    """Everything a baseline may use.

    Attributes:
        key: randomness (random scores).
        model, init_params, params: the network, its initial and trained parameters.
        layout: the players.
        x, y: the data the game is played on (gradients of weight x gradient).
        train_fn: ``(params, masks) -> params``, retraining for the lottery ticket.
        apply_kwargs: keyword arguments of every call of a Flax model (weight x gradient).

    For a Linen or NNX model written outside the project (``is_flax_model``), ``params``
    are its variables (None for NNX) and the weight baselines score the named modules'
    kernels (:mod:`gtap_jax.baselines.flax_scores`).
    """

    key: PRNGKey
    model: object
    init_params: PyTree
    params: PyTree
    layout: PlayerLayout
    x: np.ndarray
    y: np.ndarray
    train_fn: TrainFn | None = None
    apply_kwargs: dict | None = None


BaselineFn = Callable[[BaselineInputs, Sequence[int]], dict[int, np.ndarray]]


def by_scores(score_fn: Callable[[BaselineInputs], np.ndarray]) -> BaselineFn:
    """A baseline keeping, for every size, the highest ``score_fn`` neurons of each layer in proportion."""

    def baseline(inputs: BaselineInputs, sizes: Sequence[int]) -> dict[int, np.ndarray]:
        scores = score_fn(inputs)
        return {int(s): keep_per_layer(scores, inputs.layout, int(s)) for s in sizes}

    return baseline


def lottery(inputs: BaselineInputs, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """Lottery tickets down the grid of sizes (needs ``inputs.train_fn``).

    Raises:
        ValueError: without a training function.
    """
    if inputs.train_fn is None:
        raise ValueError("the lottery-ticket baseline needs a training function (BaselineInputs.train_fn)")
    return lottery_ticket(inputs.model, inputs.init_params, inputs.params, inputs.layout, sizes, inputs.train_fn)


BASELINES = Registry(
    "baseline",
    {
        "wmp": by_scores(lambda i: flax_magnitude_scores(i.model, i.params, i.layout) if is_flax_model(i.model)
                         else magnitude_scores(i.model, i.params, i.layout)),
        "wgmp": by_scores(lambda i: flax_taylor_scores(i.model, i.params, i.x, i.y, i.layout,
                                                       apply_kwargs=i.apply_kwargs) if is_flax_model(i.model)
                          else taylor_scores(i.model, i.params, i.x, i.y, i.layout)),
        "random": by_scores(lambda i: random_scores(i.key, i.layout)),
        "lottery": lottery,
    },
)

__all__ = ["BASELINES", "BaselineFn", "BaselineInputs", "by_scores", "lottery"]
