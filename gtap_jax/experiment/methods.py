"""The kept neurons of every method at every target size: GTAP strategy x index, and the baselines.

A method's record is ``{size: {"kept": [...], "evaluations": int, "seconds": float}}``, and for
GTAP methods also ``"settled_share"`` (the least settled round on the way to that size).
Nothing here names a particular strategy, index or baseline: each is looked up
in its registry, so a registered newcomer runs like the built-in ones.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from gtap_jax.baselines import BASELINES, BaselineInputs
from gtap_jax.experiment.context import Context, method_key
from gtap_jax.experiment.progress import checkpointed_attribute
from gtap_jax.layout import allocate
from gtap_jax.strategies import STRATEGIES


def method_names(config) -> list[str]:
    """``strategy/index`` for every GTAP pair, then the baselines, in config order."""
    return [f"{s}/{i}" for s in config.gtap.strategies for i in config.gtap.indices] + list(config.baselines)


def is_gtap(name: str) -> bool:
    return "/" in name


def _game_sizes(ctx: Context, game_name: str) -> dict[int, int]:
    """Target size of the run -> size in this game: the whole size for one joint game, else a layer's share."""
    if len(ctx.games) == 1:
        return {s: s for s in ctx.sizes}
    return {s: allocate(ctx.layout, s)[game_name] for s in ctx.sizes}


def game_sizes(ctx: Context) -> list[dict[int, int]]:
    """For each game: target size of the run -> size in that game."""
    return [_game_sizes(ctx, game_name) for game_name, _, _ in ctx.games]


def gtap_masks(ctx: Context, name: str) -> dict:
    """The record of one GTAP method (``strategy/index``): one strategy run per game serves every size.

    Each game's estimation rounds save their progress (:mod:`.progress`), so a
    stopped step resumes mid-way.
    """
    strategy, index = name.split("/")
    key = method_key(ctx, 2, name)
    offsets = ctx.layout.offsets()
    per_size = {s: {"kept": [], "evaluations": 0, "seconds": 0.0, "settled_share": 1.0} for s in ctx.sizes}
    for g, (game_name, fn, game_layout) in enumerate(ctx.games):
        start = 0 if len(ctx.games) == 1 else offsets[game_name][0]
        game_sizes = _game_sizes(ctx, game_name)
        attribute = checkpointed_attribute(ctx, name, g, index)
        t0 = time.perf_counter()
        res = STRATEGIES[strategy](
            jax.random.fold_in(key, g), fn, game_layout.num_players, sorted(set(game_sizes.values())), attribute,
            step=ctx.config.gtap.step,
        )
        seconds = time.perf_counter() - t0
        total = max(res.num_evaluations, 1)
        for s, r in game_sizes.items():
            mask, spent = res.mask_of_size(r)
            per_size[s]["kept"].extend((start + np.flatnonzero(mask)).tolist())
            per_size[s]["evaluations"] += int(spent)
            share = res.settled_share_of_size(r)  # the least settled round on the way to this size
            per_size[s]["settled_share"] = min(per_size[s]["settled_share"], share)
            per_size[s]["seconds"] += seconds * spent / total  # the share of the run spent to reach this size
    return {str(s): v for s, v in per_size.items()}


def baseline_masks(ctx: Context, name: str) -> dict:
    """The record of one baseline: its masks at every size, found in one call."""
    t0 = time.perf_counter()
    lottery_key = jax.random.fold_in(ctx.key, 3)
    inputs = BaselineInputs(
        key=jax.random.fold_in(ctx.key, 4), network=ctx.network, layout=ctx.layout, x=ctx.game_data[0],
        y=ctx.game_data[1], init=ctx.init,
        # each level retrains for retrain.epochs, as a clean-slate retraining does
        train_fn=lambda net, m: ctx.fit(lottery_key, net, masks=m, epochs=ctx.config.retrain.epochs),
    )
    masks = BASELINES[name](inputs, ctx.sizes)
    seconds = time.perf_counter() - t0
    return {
        str(s): {"kept": np.flatnonzero(m).tolist(), "evaluations": 0, "seconds": seconds} for s, m in masks.items()
    }


def find_masks(ctx: Context, name: str) -> dict:
    """The record of method ``name``, GTAP or baseline."""
    return gtap_masks(ctx, name) if is_gtap(name) else baseline_masks(ctx, name)


__all__ = ["baseline_masks", "find_masks", "game_sizes", "gtap_masks", "is_gtap", "method_names"]
