"""Long estimation steps: progress saved mid-step, and the expected run time said up front.

A GTAP method's step runs a strategy whose rounds each estimate a power index.
:func:`checkpointed_attribute` saves every finished round's scores and, within
a round, its state at every check (settled mode) or the estimator state every
``gtap.checkpoint_every`` evaluations (a fixed budget), under
``workdir/partial/``. A stopped step resumes there: finished rounds are read
back and the round in progress continues from its last saved state, with the
same draws, so the result equals an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import logging
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.experiment.context import Context
from gtap_jax.indices import (
    ESTIMATORS,
    INDICES,
    Attribution,
    EstimateState,
    default_estimator,
    draw_size,
    estimate,
    new_state,
)
from gtap_jax.indices.focus import FocusMoments
from gtap_jax.indices.pilot import (
    CANDIDATES,
    PILOT,
    Pilot,
    pilot_decides,
    pilot_evaluations,
    pilot_key,
    shapley_pilot,
)
from gtap_jax.strategies import (
    STRATEGIES,
    AttributeFn,
    RoundSpec,
    Scores,
    Settle,
    SettleState,
    fixed_budget_scores,
    round_budget,
    settle_round,
    share_epsilon,
)

log = logging.getLogger("gtap_jax")


def split_index(index: str) -> tuple[str, float | None]:
    """``("beta", 0.9)`` for an index named with its d (``"beta_0.9"``), else ``(index, None)``."""
    base, sep, d = index.partition("_")
    if sep and base in INDICES and INDICES[base].takes_d and INDICES[base].fixed_d is None:
        try:
            value = float(d)
        except ValueError:
            return index, None
        if 0 < value < 1:
            return base, value
    return index, None


def index_d(ctx: Context, index: str) -> float | None:
    """The d an index is played with in this run: its fixed d, the d in its name, the chosen d, or None."""
    index, named = split_index(index)
    if named is not None:
        return named
    spec = INDICES[index]
    if not spec.takes_d:
        return None
    return spec.fixed_d if spec.fixed_d is not None else ctx.d


def partial_dir(ctx: Context, name: str) -> Path:
    return ctx.workdir / "partial" / name.replace("/", "__")


def _save(path: Path, arrays: dict, meta: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _load(path: Path, meta: dict) -> dict | None:
    """The arrays saved at ``path`` if it exists and was saved with the same ``meta``; else None."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            if json.loads(str(z["meta"])) != meta:
                return None
            return {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("ignoring the damaged partial estimate %s (%s)", path, type(e).__name__)
        return None


def _state_arrays(state: EstimateState) -> dict:
    return {f"leaf{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state.draws))}


def _state_from(arrays: dict, template: EstimateState) -> EstimateState:
    leaves, treedef = jax.tree.flatten(template.draws)
    restored = [jnp.asarray(arrays[f"leaf{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    return dataclasses.replace(template, draws=jax.tree.unflatten(treedef, restored))


def _save_state(path: Path, state: EstimateState, meta: dict) -> None:
    _save(path, _state_arrays(state), meta)


def _load_state(path: Path, template: EstimateState, meta: dict) -> EstimateState | None:
    arrays = _load(path, meta)
    return None if arrays is None else _state_from(arrays, template)


def checkpointed_attribute(ctx: Context, name: str, game: int, index: str) -> AttributeFn:
    """The attribute function of method ``name`` on game ``game``, saving its progress.

    ``gtap.evaluations > 0``: each round spends that budget, its estimator
    state saved every ``gtap.checkpoint_every`` values. ``gtap.evaluations =
    0``: each round runs until settled (``by_estimate``'s settled mode), its
    state saved at every check.
    """
    cfg = ctx.config.gtap
    d = index_d(ctx, index)
    index = split_index(index)[0]
    folder = partial_dir(ctx, name)
    calls = itertools.count()
    chosen = cfg.estimators.get(index) or None
    _, full_game, full_layout = ctx.games[game]  # epsilon: a share of this game's mean neuron part, once
    options = Settle(cfg.delta, share_epsilon(full_game, full_layout.num_players, cfg.epsilon, ctx.plan),
                     cfg.max_evaluations, cfg.focus, stop_share=cfg.stop_share)
    piloted: list = []  # the first round's pilot (Shapley, settled mode, no estimator given), saved

    def attribute(key, value_fn, num_players, cutoffs=(), weights=None):
        i = next(calls)
        spent = 0
        if cfg.evaluations:
            estimator, _ = round_budget(index, num_players, cfg.evaluations, estimator=chosen, value_fn=value_fn)
        else:
            estimator = chosen or default_estimator(index, num_players, cfg.max_evaluations, value_fn)
            if pilot_decides(index, chosen, options.pilot, estimator):
                if not piloted:  # the first round's (a resumed run reads it back); its values count in that round
                    piloted.append(_pilot(folder / f"game{game}_pilot.npz", key, value_fn, num_players, ctx))
                spent, estimator = (piloted[0].num_evaluations if i == 0 else 0), piloted[0].estimator
        spec = RoundSpec(index, d, estimator, ctx.plan, ctx.progress)
        meta = {"config": ctx.steps.config_hash, "game": game, "round": i, "players": num_players,
                "estimator": estimator}
        folder.mkdir(parents=True, exist_ok=True)
        done_path, partial_path = folder / f"game{game}_round{i}.npz", folder / f"game{game}_round{i}.partial.npz"
        done = _load(done_path, meta)
        if done is not None:
            return Scores(done["values"], done["stderr"], int(done["evaluations"]), bool(done["settled"]),
                          float(done["settled_share"]), done.get("ranking"))
        if cfg.evaluations:
            att = _fixed_round(ctx, key, value_fn, num_players, spec, partial_path, meta)
            out = fixed_budget_scores(att, cutoffs, options, weights)
        else:
            template = new_state(num_players, index, d, estimator)
            out = settle_round(key, value_fn, num_players, cutoffs, spec, options,
                               resume=_load_settle(partial_path, template, meta),
                               on_check=lambda state: _save_settle(partial_path, state, meta), weights=weights)
            out = out._replace(num_evaluations=out.num_evaluations + spent)
        _save(done_path, {"values": np.asarray(out.values), "stderr": np.asarray(out.stderr),
                          "evaluations": np.asarray(out.num_evaluations), "settled": np.asarray(out.settled),
                          "settled_share": np.asarray(out.settled_share)}
              | ({} if out.ranking is None else {"ranking": np.asarray(out.ranking)}), meta)
        partial_path.unlink(missing_ok=True)
        return out

    return attribute


def _pilot(path: Path, key, value_fn, num_players: int, ctx: Context) -> Pilot:
    """The Shapley pilot of a method's first round (:mod:`gtap_jax.indices.pilot`), saved at ``path`` (a resumed
    run reads it instead of running it again)."""
    meta = {"config": ctx.steps.config_hash, "players": num_players}
    saved = _load(path, meta)
    if saved is not None:
        return Pilot(str(saved["estimator"]), float(saved["ratio"]), int(saved["evaluations"]))
    found = shapley_pilot(pilot_key(key), value_fn, num_players, plan=ctx.plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, {"estimator": np.asarray(found.estimator), "ratio": np.asarray(found.ratio),
                 "evaluations": np.asarray(found.num_evaluations)}, meta)
    return found


def _fixed_round(ctx, key, value_fn, num_players, spec: RoundSpec, partial_path, meta):
    """One fixed-budget round, its estimator state saved every ``gtap.checkpoint_every`` values."""
    cfg = ctx.config.gtap
    _, budget = round_budget(spec.index, num_players, cfg.evaluations, estimator=spec.estimator)
    k = draw_size(spec.estimator, num_players)
    template = new_state(num_players, spec.index, spec.d, spec.estimator)
    state = _load_state(partial_path, template, meta) or template
    total, step = budget // k, max(1, cfg.checkpoint_every // k) if cfg.checkpoint_every else budget // k
    att = None
    while att is None or state.num_draws < total:
        n = min(step, total - state.num_draws)
        att = estimate(key, value_fn, num_players, spec.index, evaluations=n * k, d=spec.d, estimator=spec.estimator,
                       state=state, plan=spec.plan, progress=spec.progress)
        state = att.state
        if state.num_draws < total:
            _save_state(partial_path, state, meta)
    return att


def _save_settle(path: Path, state: SettleState, meta: dict) -> None:
    arrays = {"count": state.focus.count, "mean": state.focus.mean, "m2": state.focus.m2,
              "draws": np.asarray(state.focus.draws), "focus_evaluations": np.asarray(state.focus_evaluations),
              "checks": np.asarray(state.checks)}
    if state.uniform is not None:
        arrays |= _state_arrays(state.uniform.state) | {"uniform_values": np.asarray(state.uniform.values),
                                                         "uniform_stderr": np.asarray(state.uniform.stderr)}
    _save(path, arrays, meta)


def _load_settle(path: Path, template: EstimateState, meta: dict) -> SettleState | None:
    """The settling round saved at ``path``, or None."""
    arrays = _load(path, meta)
    if arrays is None:
        return None
    uniform = None
    if "leaf0" in arrays:
        state = _state_from(arrays, template)
        k = draw_size(state.estimator, state.num_players)
        uniform = Attribution(jnp.asarray(arrays["uniform_values"]), jnp.asarray(arrays["uniform_stderr"]),
                              state.num_draws, state.num_draws * k, state.index, state.estimator, state.d, state)
    # (saved before samples had sizes: one draw each)
    draws = int(arrays["draws"]) if "draws" in arrays else int(arrays["count"].any())
    focus = FocusMoments(arrays["count"], arrays["mean"], arrays["m2"], draws)
    return SettleState(uniform, focus, int(arrays["focus_evaluations"]), int(arrays["checks"]))


def clear_partial(ctx: Context, name: str) -> None:
    """Removes a method's saved progress once its step is recorded."""
    folder = partial_dir(ctx, name)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # the parent goes once no method has progress in it
        folder.parent.rmdir()


def expected_evaluations(ctx: Context, strategy: str, index: str, game_sizes: list[dict[int, int]]) -> int:
    """Coalition values a strategy will spend, from a dry run of its schedule (no game is evaluated).

    In settled mode (``gtap.evaluations = 0``) this is the most it can spend: every round at its cap.
    """
    cfg, total = ctx.config.gtap, 0
    index = split_index(index)[0]
    for (_, game, layout), sizes in zip(ctx.games, game_sizes, strict=True):
        spent = []

        def dry(key, value_fn, num_players, cutoffs=(), spent=spent, game=game):
            if not cfg.evaluations:  # settled mode: a round spends at most its cap (the first, a Shapley pilot too)
                default = default_estimator(index, num_players, cfg.max_evaluations, value_fn)
                piloted = not spent and pilot_decides(index, cfg.estimators.get(index), True, default)
                spent.append(cfg.max_evaluations + (pilot_evaluations(num_players) if piloted else 0))
                return Scores(np.zeros(num_players), np.zeros(num_players), cfg.max_evaluations)
            _, budget = round_budget(index, num_players, cfg.evaluations, estimator=cfg.estimators.get(index) or None,
                                     value_fn=game)  # its sub-games value draws as it does
            spent.append(budget)
            return Scores(np.zeros(num_players), np.zeros(num_players), budget)

        STRATEGIES[strategy](jax.random.key(0), lambda s: jnp.float32(0), layout.num_players,
                             sorted(set(sizes.values())), dry, step=cfg.step)
        total += sum(spent)
    return total


def _incremental(ctx: Context, index: str) -> bool:
    """Whether the game values the draws of ``index``'s estimator incrementally (chains or stars)."""
    _, game, layout = ctx.games[0]
    cfg = ctx.config.gtap
    index = split_index(index)[0]
    estimator = cfg.estimators.get(index) or default_estimator(index, layout.num_players,
                                                               cfg.evaluations or cfg.max_evaluations, game)
    return ESTIMATORS[CANDIDATES[0] if estimator == PILOT else estimator].incremental_on(game)


def say_expected_time(ctx: Context, step: str, evaluations: int, index: str | None = None) -> None:
    """Logs the expected time of a step from the measured coalition values per second; warns above an hour.

    The rate is of whole coalitions (measured on the bands): where the game values the step's draws
    incrementally, the time said is an upper bound.
    """
    rate = ctx.values_per_second
    if not rate:
        return
    seconds = evaluations / rate
    text = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    about = "about" if ctx.config.gtap.evaluations else "at most"
    message = f"{step}: {about} {evaluations:,} coalition values, expected {about} {text} at {rate:,.0f} values/s"
    if index is not None and _incremental(ctx, index):
        message += " of whole coalitions (this game values these draws incrementally, many times faster)"
        seconds = 0.0  # no warning from a rate that does not apply
    if seconds > 3600:
        log.warning("%s (above an hour; progress is saved every gtap.checkpoint_every values)", message)
    else:
        log.info("%s", message)


__all__ = [
    "checkpointed_attribute", "clear_partial", "expected_evaluations", "index_d", "say_expected_time", "split_index",
]
