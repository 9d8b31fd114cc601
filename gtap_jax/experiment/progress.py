"""Long estimation steps: progress saved mid-step, and the expected run time said up front.

A GTAP method's step runs a strategy whose rounds each estimate a power index.
:func:`checkpointed_attribute` saves every finished round's scores and, within
a round, the estimator state every ``gtap.checkpoint_every`` evaluations, under
``workdir/partial/``. A stopped step resumes there: finished rounds are read
back and the round in progress continues from its last saved state, with the
same slices, so the result equals an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.experiment.context import Context
from gtap_jax.indices import INDICES, EstimateState, estimate, make_estimator
from gtap_jax.strategies import STRATEGIES, AttributeFn, round_budget

log = logging.getLogger("gtap_jax")


class Scores(NamedTuple):
    """A finished round's scores, as the strategies read them."""

    values: np.ndarray
    stderr: np.ndarray
    num_evaluations: int


def index_d(ctx: Context, index: str) -> float | None:
    """The d an index is played with in this run: its fixed d, the chosen d, or None."""
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


def _save_state(path: Path, state: EstimateState, meta: dict) -> None:
    leaves = jax.tree.leaves(state.draws)
    _save(path, {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}, meta)


def _load_state(path: Path, template: EstimateState, meta: dict) -> EstimateState | None:
    arrays = _load(path, meta)
    if arrays is None:
        return None
    leaves, treedef = jax.tree.flatten(template.draws)
    restored = [jnp.asarray(arrays[f"leaf{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    return EstimateState(template.index, template.method, template.d, template.num_players,
                         jax.tree.unflatten(treedef, restored))


def checkpointed_attribute(ctx: Context, name: str, game: int, index: str) -> AttributeFn:
    """``by_estimate``'s attribute function for method ``name`` on game ``game``, saving its progress."""
    cfg = ctx.config.gtap
    d = index_d(ctx, index)
    folder = partial_dir(ctx, name)
    calls = itertools.count()

    def attribute(key, value_fn, num_players, cutoffs=()):
        i = next(calls)
        method, budget = round_budget(index, num_players, cfg.evaluations, d=d, method=cfg.methods.get(index) or None)
        k = make_estimator(num_players, index, d=d, method=method).draw_size
        meta = {"config": ctx.steps.config_hash, "game": game, "round": i, "players": num_players, "method": method}
        folder.mkdir(parents=True, exist_ok=True)
        done_path, partial_path = folder / f"game{game}_round{i}.npz", folder / f"game{game}_round{i}.partial.npz"
        done = _load(done_path, meta)
        if done is not None:
            return Scores(done["values"], done["stderr"], int(done["evaluations"]))
        template = EstimateState(index, method, d, num_players, make_estimator(num_players, index, d=d,
                                                                               method=method).init())
        state = _load_state(partial_path, template, meta) or template
        total, step = budget // k, max(1, cfg.checkpoint_every // k) if cfg.checkpoint_every else budget // k
        att = None
        while att is None or state.num_draws < total:
            n = min(step, total - state.num_draws)
            att = estimate(key, value_fn, num_players, index, evaluations=n * k, d=d, method=method, state=state,
                           plan=ctx.plan, progress=ctx.progress)
            state = att.state
            if state.num_draws < total:
                _save_state(partial_path, state, meta)
        _save(done_path, {"values": np.asarray(att.values), "stderr": np.asarray(att.stderr),
                          "evaluations": np.asarray(att.num_evaluations)}, meta)
        partial_path.unlink(missing_ok=True)
        return att

    return attribute


def clear_partial(ctx: Context, name: str) -> None:
    """Removes a method's saved progress once its step is recorded."""
    folder = partial_dir(ctx, name)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # the parent goes once no method has progress in it
        folder.parent.rmdir()


def expected_evaluations(ctx: Context, strategy: str, index: str, game_sizes: list[dict[int, int]]) -> int:
    """Coalition values a strategy will spend, from a dry run of its schedule (no game is evaluated)."""
    cfg, total = ctx.config.gtap, 0
    for (_, _, layout), sizes in zip(ctx.games, game_sizes, strict=True):
        spent = []

        def dry(key, value_fn, num_players, cutoffs=(), spent=spent):
            _, budget = round_budget(index, num_players, cfg.evaluations, d=index_d(ctx, index),
                                     method=cfg.methods.get(index) or None)
            spent.append(budget)
            return Scores(np.zeros(num_players), np.zeros(num_players), budget)

        STRATEGIES[strategy](jax.random.key(0), lambda s: jnp.float32(0), layout.num_players,
                             sorted(set(sizes.values())), dry, step=cfg.step)
        total += sum(spent)
    return total


def say_expected_time(ctx: Context, step: str, evaluations: int) -> None:
    """Logs the expected time of a step from the measured coalition values per second; warns above an hour."""
    rate = ctx.values_per_second
    if not rate:
        return
    seconds = evaluations / rate
    text = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    message = f"{step}: about {evaluations:,} coalition values, expected {text} at {rate:,.0f} values/s"
    if seconds > 3600:
        log.warning("%s (above an hour; progress is saved every gtap.checkpoint_every values)", message)
    else:
        log.info("%s", message)


__all__ = [
    "Scores", "checkpointed_attribute", "clear_partial", "expected_evaluations", "index_d", "say_expected_time",
]
