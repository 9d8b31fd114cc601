"""The kept neurons of every method at every target: GTAP strategy x index, and the baselines, each under an
allocation.

A method is (scores, allocation, strategy). Its step record holds what it found once, for every target:
a score-based baseline its scores; a GTAP method its strategy's priority (an order that puts every
round's kept set first, :meth:`~gtap_jax.strategies.StrategyResult.priority`) and its rounds (size,
evaluations spent so far, settled share); the lottery ticket its masks. The mask at a target (a player
count, or a budget of the network's parameters or FLOPs) is then made by the allocation
(:mod:`gtap_jax.strategies.allocation`).

Names: ``strategy/index`` and baselines as registered; with ``config.allocations``, ``top_n`` and every
score-based baseline run under each, named ``name@allocation``. Iterated strategies keep the allocation
of their game (``strategy``, their own rounds, in one joint game; ``proportional`` with one game per layer),
as does every GTAP method with one game per layer; with ``gtap.cost_rounds`` an iterated strategy in a joint
game also runs as ``strategy/index@cost``, its rounds deciding by value per unit of cost (a step of its own).
Nothing here names a particular strategy, index or baseline beyond that.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import jax
import numpy as np

from gtap_jax.baselines import BASELINES, BaselineInputs, ScoreBaseline
from gtap_jax.experiment.context import Context, method_key
from gtap_jax.experiment.progress import checkpointed_attribute
from gtap_jax.experiment.validation import ConfigError
from gtap_jax.layout import allocate
from gtap_jax.network import Shrinkable
from gtap_jax.strategies import STRATEGIES
from gtap_jax.strategies.allocation import Cost, fit_cost, keep, players_within

log = logging.getLogger("gtap_jax")

REALLOCATED_STRATEGIES = ("top_n",)  # strategies whose one estimate any allocation can reuse


class Target(NamedTuple):
    """A size to prune to: ``players`` kept, or a ``budget`` of the network's cost (``unit``)."""

    label: str
    players: int | None = None
    budget: float | None = None


class Method(NamedTuple):
    """A method name taken apart: ``top_n/beta_0.9@cost`` is strategy top_n, index beta_0.9, allocation cost."""

    name: str
    base: str  # the name without its allocation: the step that finds its scores
    family: str  # gtap | baseline
    strategy: str
    index: str
    allocation: str


def parse(ctx_or_config, name: str) -> Method:
    """The parts of method ``name``; the allocation is the game's where the name gives none."""
    config = getattr(ctx_or_config, "config", ctx_or_config)
    base, _, allocation = name.partition("@")
    if "/" in base:
        strategy, index = base.split("/")
        own = "proportional" if config.game.layerwise else "strategy"
        m = Method(name, base, "gtap", strategy, index, allocation or own)
        return m._replace(base=name) if cost_rounds(m) else m
    return Method(name, base, "baseline", "", "", allocation or "proportional")


def cost_rounds(m: Method) -> bool:
    """Whether ``m`` is an iterated strategy whose rounds decide by value per unit of cost (``gtap.cost_rounds``)."""
    return m.family == "gtap" and m.strategy not in REALLOCATED_STRATEGIES and m.allocation == "cost"


def method_names(config) -> list[str]:
    """GTAP ``strategy/index`` pairs, then the baselines, in config order, each under every allocation it takes."""
    allocations = tuple(config.allocations)
    names = []
    for s in config.gtap.strategies:
        for i in config.gtap.indices:
            reallocated = allocations and s in REALLOCATED_STRATEGIES and not config.game.layerwise
            names += [f"{s}/{i}@{a}" for a in allocations] if reallocated else [f"{s}/{i}"]
            if config.gtap.cost_rounds and s not in REALLOCATED_STRATEGIES:
                names.append(f"{s}/{i}@cost")
    for b in config.baselines:
        names += [f"{b}@{a}" for a in allocations] if allocations and isinstance(BASELINES[b], ScoreBaseline) else [b]
    return names


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


def gtap_record(ctx: Context, base: str) -> dict:
    """What one GTAP method (``strategy/index``, or ``strategy/index@cost`` for rounds by value per unit of cost)
    finds: one strategy run per game serves every target.

    Each game's estimation rounds save their progress (:mod:`.progress`), so a
    stopped step resumes mid-way.
    """
    m = parse(ctx, base)
    strategy, index = m.strategy, m.index
    by_cost = {"cost": lambda mask: ctx.cost.marginal(ctx.layout, mask)} if cost_rounds(m) else {}
    key = method_key(ctx, 2, base)
    priority, games, seconds = [], [], 0.0
    for g, (game_name, fn, game_layout) in enumerate(ctx.games):
        attribute = checkpointed_attribute(ctx, base, g, index)
        t0 = time.perf_counter()
        res = STRATEGIES[strategy](
            jax.random.fold_in(key, g), fn, game_layout.num_players, sorted(set(_game_sizes(ctx, game_name).values())),
            attribute, step=ctx.config.gtap.step, **by_cost,
        )
        seconds += time.perf_counter() - t0
        priority.extend(res.priority().tolist())
        spent, rounds = 0, []
        for rnd in res.history:
            spent += rnd.scores.num_evaluations
            rounds.append([int(rnd.mask.sum()), spent, float(rnd.scores.settled_share)])
        games.append(rounds)
    return {"priority": priority, "rounds": games, "seconds": seconds}


def _spent(rounds: list, kept: int) -> tuple[int, float]:
    """Evaluations spent, and the least settled share, up to the first round that reaches ``kept`` players."""
    growing = len(rounds) > 1 and rounds[-1][0] > rounds[0][0]
    least = 1.0
    for size, spent, share in rounds:
        least = min(least, share)
        if (size >= kept) if growing else (size <= kept):
            return spent, least
    return (rounds[-1][1], least) if rounds else (0, 1.0)


def scores_record(ctx: Context, base: str) -> dict:
    """What one baseline finds: a score-based one its raw scores, the lottery ticket its masks."""
    t0 = time.perf_counter()
    lottery_key = jax.random.fold_in(ctx.key, 3)
    inputs = baseline_inputs(ctx, lottery_key)
    baseline = BASELINES[base]
    if isinstance(baseline, ScoreBaseline):
        scores = np.asarray(baseline.score_fn(inputs), np.float64)
        return {"scores": scores.tolist(), "seconds": time.perf_counter() - t0}
    sizes = sorted({_players_of(ctx, t) for t in ctx.targets}, reverse=True)
    masks = baseline(inputs, sizes)
    return {"masks": {str(s): np.flatnonzero(m).tolist() for s, m in masks.items()},
            "seconds": time.perf_counter() - t0}


def baseline_inputs(ctx: Context, lottery_key) -> BaselineInputs:
    return BaselineInputs(
        key=jax.random.fold_in(ctx.key, 4), network=ctx.network, layout=ctx.layout, x=ctx.game_data[0],
        y=ctx.game_data[1], init=ctx.init,
        # each level retrains for retrain.epochs, as a clean-slate retraining does
        train_fn=lambda net, m: ctx.fit(lottery_key, net, masks=m, epochs=ctx.config.retrain.epochs),
    )


def _players_of(ctx: Context, target: Target) -> int:
    """A target in players: its count, or the most players any per-layer allocation keeps within its budget."""
    return target.players if target.budget is None else players_within(ctx.layout, target.budget, ctx.cost)


def find_record(ctx: Context, base: str) -> dict:
    """The step record of the method ``base`` (a name without its allocation), GTAP or baseline."""
    return gtap_record(ctx, base) if is_gtap(base) else scores_record(ctx, base)


def mask_at(ctx: Context, name: str, record: dict, target: Target) -> dict:
    """``{"kept", "evaluations", "seconds", "settled_share"}`` of method ``name`` at ``target`` from its record."""
    m = parse(ctx, name)
    how = {"players": target.players, "budget": target.budget, "cost": ctx.cost}
    if "masks" in record:  # the lottery ticket: its masks at the sizes it was given
        return {"kept": record["masks"][str(_players_of(ctx, target))], "evaluations": 0,
                "seconds": record["seconds"], "settled_share": None}
    if "scores" in record:
        scores = np.asarray(record["scores"])
        scores = BASELINES[m.base].for_allocation(scores, ctx.layout, m.allocation)
        mask = keep(scores, ctx.layout, m.allocation, **how)
        return {"kept": np.flatnonzero(mask).tolist(), "evaluations": 0, "seconds": record["seconds"],
                "settled_share": None}
    # an iterated strategy's cost rounds made its order: its kept set at a budget is a prefix of it
    mask = keep(np.asarray(record["priority"]), ctx.layout, "strategy" if cost_rounds(m) else m.allocation, **how)
    offsets, evaluations, settled = ctx.layout.offsets(), 0, 1.0
    for (game_name, _, _), rounds in zip(ctx.games, record["rounds"], strict=True):
        a, b = offsets[game_name] if len(ctx.games) > 1 else (0, ctx.layout.num_players)
        spent, share = _spent(rounds, int(mask[a:b].sum()))
        evaluations += spent
        settled = min(settled, share)
    total = sum(r[-1][1] for r in record["rounds"] if r) or 1
    return {"kept": np.flatnonzero(mask).tolist(), "evaluations": evaluations,
            "seconds": record["seconds"] * evaluations / total, "settled_share": settled}


def measure_targets(ctx: Context) -> None:
    """Step ``cost``: the parameters or FLOPs of the smaller network as a function of the kept players per group
    (:func:`gtap_jax.strategies.allocation.fit_cost`), where targets are budgets or a method allocates by cost;
    then ``ctx.targets`` (player counts, or budgets) and, for budgets, ``ctx.sizes``: the player counts the
    strategies run to (the most a per-layer allocation keeps within each budget)."""
    cfg = ctx.config
    unit = cfg.target_unit if cfg.target_unit != "players" else "params"
    if cfg.target_unit != "players" or "cost" in cfg.allocations or cfg.gtap.cost_rounds:
        if not isinstance(ctx.network, Shrinkable):
            raise ConfigError(f"target_unit={cfg.target_unit!r} / allocations={tuple(cfg.allocations)!r} measure"
                              f" smaller networks, and a {type(ctx.network).__name__} cannot be made smaller")

        def cost_step():
            smaller = {}

            def measure(mask):
                key = tuple(np.flatnonzero(mask))
                if key not in smaller:
                    # counted, not run: every network a method reports is checked when it is evaluated
                    smaller[key] = ctx.network.smaller(ctx.layout, mask, x=ctx.game_data[0][:8], check=False)
                net = smaller[key]
                return net.num_params() if unit == "params" else net.flops(ctx.ds.example)

            try:
                cost = fit_cost(measure, ctx.layout, unit=unit)
            except ValueError as e:
                raise ConfigError(f"target_unit={cfg.target_unit!r} / allocations={tuple(cfg.allocations)!r}: {e}"
                                  ) from None
            return {"unit": unit, "constant": cost.constant, "linear": cost.linear, "quadratic": cost.quadratic}

        rec = ctx.steps.run("cost", cost_step)
        ctx.cost = Cost(rec["unit"], rec["constant"], np.asarray(rec["linear"]), np.asarray(rec["quadratic"]))
    if cfg.target_unit == "players":
        ctx.targets = [Target(str(s), players=s) for s in ctx.sizes]
        return
    total = ctx.cost.total(ctx.layout)
    ctx.targets = [Target(f"{t:g}", budget=t * total) for t in sorted(cfg.targets, reverse=True)]
    try:
        ctx.sizes = sorted({players_within(ctx.layout, t.budget, ctx.cost) for t in ctx.targets}, reverse=True)
    except ValueError as e:
        raise ConfigError(f"targets: {e}") from None
    log.info("targets: %s of the network's %s (%g); per-layer allocations keep %s players", list(cfg.targets), unit,
             total, ctx.sizes)


__all__ = [
    "Method", "Target", "baseline_inputs", "cost_rounds", "find_record", "game_sizes", "gtap_record", "is_gtap",
    "mask_at", "measure_targets", "method_names", "parse", "scores_record",
]
