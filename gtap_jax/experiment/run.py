"""``run(config, workdir)``: the pruning experiment as a short list of named steps over one Context.

Each step that computes something records it in ``workdir/steps/`` the moment
it finishes (:class:`~gtap_jax.experiment.steps.Steps`); running again skips
what is recorded, so a killed run loses at most the step in progress.
Training checkpoints every epoch. The network is seen only through its
adapter (:class:`gtap_jax.network.Network`), whichever model the config names.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

from gtap_jax import data as data_lib
from gtap_jax.engine import make_plan
from gtap_jax.experiment import report
from gtap_jax.experiment.context import Context, stable_id
from gtap_jax.experiment.methods import (
    Target,
    find_record,
    game_sizes,
    is_gtap,
    mask_at,
    measure_targets,
    method_names,
    parse,
)
from gtap_jax.experiment.progress import clear_partial, expected_evaluations, index_d, say_expected_time
from gtap_jax.experiment.report import SELECTION_RULE, select_rows
from gtap_jax.experiment.setup import load_network
from gtap_jax.experiment.steps import Steps, workdir_lock, write_json
from gtap_jax.experiment.validation import (
    ConfigError,
    check_workdir,
    config_hash,
    record_config,
    target_sizes,
    validate,
)
from gtap_jax.layout import mask_of
from gtap_jax.network import Network, Shrinkable, accuracy, mean_fills, network_game, size_report
from gtap_jax.uncertainty import Bands, choose_d, uncertainty_bands

log = logging.getLogger("gtap_jax")


def run(config, workdir: str | os.PathLike) -> list[dict]:
    """Runs (or resumes) the experiment ``config`` in ``workdir``.

    Returns:
        The result rows (also in ``results.json`` / ``results.csv``).

    Raises:
        ConfigError: for a config that cannot run.
        gtap_jax.data.DataUnavailableError: when the data is missing.
    """
    t_start = time.perf_counter()
    validate(config)
    workdir = Path(workdir)
    try:
        check_workdir(config, workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot use --workdir {workdir}: {e.strerror or e}") from None
    with workdir_lock(workdir):
        ctx = prepare(config, workdir)
        record_config(config, workdir)  # only now: a refused config leaves nothing behind
        train_network(ctx)
        build_games(ctx)
        measure_targets(ctx)
        measure_bands(ctx)
        masks = find_all_masks(ctx)
        rows = evaluate(ctx, masks)
        write_results(ctx, rows, time.perf_counter() - t_start)
    return rows


def prepare(config, workdir: Path) -> Context:
    """Loads the data and the network, finds its players, checks the target sizes against them."""
    ds = data_lib.load(
        config.data.name, source=config.data.source or None, path=config.data.path or None, seed=config.seed,
        **dict(config.data.options),
    )
    log.info("data: %s", ds.describe())
    key = jax.random.key(config.seed)
    net, trainable = load_network(config, ds, key)
    try:
        layout = net.layout(list(config.game.layers), ds.x_val[:2])
    except ValueError as e:
        raise ConfigError(f"game.layers: {e}") from None
    if {"wmp", "wgmp"} & set(config.baselines):
        try:
            net.player_kernels(layout)
        except ValueError as e:
            raise ConfigError(f"baselines wmp / wgmp: {e}") from None
    sizes = target_sizes(config.targets, layout.num_players, min_size=len(layout.names))
    if ds.num_classes < 2:
        raise ConfigError(f"data {ds.describe()}: a classifier needs at least 2 classes")
    n_eval, n_select = config.game.eval_examples, config.game.selection_examples
    if n_select and max(n_eval, 1) + n_select > len(ds.y_val):
        raise ConfigError(f"game.eval_examples={n_eval} and game.selection_examples={n_select} need"
                          f" {max(n_eval, 1) + n_select} validation examples, and {ds.describe()} has {len(ds.y_val)}")
    steps = Steps(workdir, config_hash(config))
    return Context(config, workdir, steps, key, ds, net, layout, sizes, init=net if trainable else None)


def train_network(ctx: Context) -> None:
    """Step ``train``: trains (checkpointed every epoch) and records test and validation accuracy.

    A network gtap_jax does not train (``model.factory``) is evaluated as it is."""
    ds, model_dir = ctx.ds, ctx.workdir / "model"

    def accuracies(net: Network) -> dict:
        return {"test_accuracy": accuracy(net, None, ds.x_test, ds.y_test),
                "val_accuracy": accuracy(net, None, ds.x_val, ds.y_val)}

    if ctx.init is None:
        ctx.trained = ctx.steps.run("train", lambda: accuracies(ctx.network))
        log.info("the network as given: test accuracy %.4f", ctx.trained["test_accuracy"])
        return

    def train_step():
        checkpoints = ctx.workdir / "checkpoints" / f"train-{ctx.steps.config_hash}"  # never another config's
        trained = ctx.fit(ctx.key, ctx.init, checkpoint_dir=checkpoints)
        trained.save(model_dir / "trained")
        return accuracies(trained)

    ctx.trained = ctx.steps.run("train", train_step)
    ctx.network = ctx.init.restored(model_dir / "trained")
    log.info("trained %s: test accuracy %.4f", ctx.config.model.name, ctx.trained["test_accuracy"])


def build_games(ctx: Context) -> None:
    """The joint game over every player layer, the games played (it, or one per layer) and the plan."""
    game = ctx.config.game
    n_val, n_select = len(ctx.ds.y_val), game.selection_examples
    n_eval = min(game.eval_examples or n_val, n_val - n_select)
    ctx.game_data = (ctx.ds.x_val[:n_eval], ctx.ds.y_val[:n_eval])
    # the selection set: the last validation examples, never the game's
    ctx.selection_data = (ctx.ds.x_val[n_val - n_select:], ctx.ds.y_val[n_val - n_select:]) if n_select else None

    def game_of(layers):
        return network_game(ctx.network, None, *ctx.game_data, layers=layers, metric=game.metric,
                            masked_value=game.masked_value, dtype=game.dtype)

    ctx.value_fn, _ = game_of(ctx.layout.names)
    if game.masked_value == "mean":  # the pruned networks evaluated are the game's: silenced neurons at their mean
        ctx.fills = mean_fills(ctx.network, ctx.game_data[0], ctx.layout)
    ctx.plan = make_plan(ctx.value_fn, ctx.layout.num_players, chunk_size=game.chunk_size or None)
    if game.layerwise:
        ctx.games = [(name, *game_of([name])) for name in ctx.layout.names]
    else:
        ctx.games = [("all", ctx.value_fn, ctx.layout)]


def measure_bands(ctx: Context) -> None:
    """Step ``bands``: the uncertainty bands of the joint game; then d (from the config or the bands rule)."""
    cfg = ctx.config

    def bands_step():
        t0 = time.perf_counter()
        bands = uncertainty_bands(
            jax.random.fold_in(ctx.key, 1), ctx.value_fn, ctx.layout.num_players,
            keep_fractions=list(cfg.bands.keep_fractions), num_samples=cfg.bands.num_samples, plan=ctx.plan,
        )
        values = len(bands.keep_fractions) * bands.num_samples + 2
        return {**bands.to_dict(), "values_per_second": values / (time.perf_counter() - t0)}

    record = dict(ctx.steps.run("bands", bands_step))
    ctx.values_per_second = record.pop("values_per_second", None)
    bands = Bands(**{k: np.asarray(v) if isinstance(v, list) else v for k, v in record.items()})
    write_json(ctx.workdir / "bands.json", bands.to_dict())
    ctx.d = float(cfg.gtap.d) if cfg.gtap.d else float(choose_d(bands, cfg.bands.rule, tolerance=cfg.bands.tolerance))
    log.info("d = %.3g (%s)", ctx.d, "from the config" if cfg.gtap.d else f"bands rule {cfg.bands.rule}")
    report.plot_bands(bands, ctx.d, ctx.workdir / "uncertainty_bands.png")


def find_all_masks(ctx: Context) -> dict[str, dict]:
    """Steps ``masks/...``: what every method finds (each GTAP step's expected time said first), then its
    kept neurons at every target under its allocation: ``{name: {target label: record}}``, also written to
    ``masks.json``."""
    names = method_names(ctx.config)
    records = {}
    for base in tqdm(dict.fromkeys(parse(ctx, n).base for n in names), desc="methods", disable=not ctx.progress):
        step = f"masks/{base}"
        if is_gtap(base) and ctx.steps.get(step) is None:
            m = parse(ctx, base)
            say_expected_time(ctx, step, expected_evaluations(ctx, m.strategy, m.index, game_sizes(ctx)), m.index)
        records[base] = ctx.steps.run(step, functools.partial(find_record, ctx, base))
        clear_partial(ctx, base)
    masks = {}
    for name in names:
        try:
            masks[name] = {t.label: mask_at(ctx, name, records[parse(ctx, name).base], t) for t in ctx.targets}
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None
    write_json(ctx.workdir / "masks.json", masks)
    return masks


def _row_base(ctx: Context, name: str, target: Target, found: dict, mask: np.ndarray, sizes) -> dict:
    m = parse(ctx, name)
    return {
        "method": name, "family": m.family, "strategy": m.strategy, "index": m.index,
        "d": index_d(ctx, m.index) if m.family == "gtap" else None, "allocation": m.allocation,
        "target": target.players if target.budget is None else float(target.label),
        "target_unit": ctx.config.target_unit,
        "neurons": int(mask.sum()), "neurons_total": ctx.layout.num_players,
        "keep_fraction": float(mask.sum() / ctx.layout.num_players),
        "evaluations": int(found["evaluations"]), "seconds": float(found["seconds"]),
        "settled_share": found.get("settled_share"),
        "params": sizes.params_after, "params_total": sizes.params_before,
        "flops": sizes.flops_after, "flops_total": sizes.flops_before,
        "latency_ms": sizes.latency_after, "latency_ms_total": sizes.latency_before,
    }


def _smaller(ctx: Context, mask: np.ndarray, fills=None) -> Network | None:
    """The network without the players outside ``mask`` (their fills folded in), or None where the adapter
    cannot remove them (then the masked network is the pruned one)."""
    if not isinstance(ctx.network, Shrinkable):
        return None
    try:
        return ctx.network.smaller(ctx.layout, mask, x=ctx.game_data[0], fills=fills)
    except ValueError as e:
        log.warning("no smaller network for %d of %d players (the masked one stands for it): %s", int(mask.sum()),
                    mask.size, e)
        return None


def _accuracies(ctx: Context, net: Network, **masked) -> dict:
    """Test accuracy, and selection accuracy where the run has a selection set."""
    out = {"accuracy": accuracy(net, None, ctx.ds.x_test, ctx.ds.y_test, **masked)}
    if ctx.selection_data is not None:
        out["selection_accuracy"] = accuracy(net, None, *ctx.selection_data, **masked)
    return out


def _accuracy_without_retraining(ctx: Context, name: str, tag: str, small, mask) -> dict:
    pruned = small if ctx.fills is None else _smaller(ctx, mask, ctx.fills)
    if pruned is None:
        masks = {p: np.asarray(k) for p, k in ctx.layout.split(mask).items()}
        return _accuracies(ctx, ctx.network, masks=masks, fills=ctx.fills)
    if is_gtap(name):
        pruned.save(ctx.workdir / "compact" / tag.replace("/", "__"))
    return _accuracies(ctx, pruned)


def _accuracy_after_retraining(ctx: Context, name: str, mode: str, seed: int, small: Network, mask) -> dict:
    cfg = ctx.config
    key = jax.random.fold_in(jax.random.key(cfg.seed + 1000 * (seed + 1)), stable_id(name))
    t0 = time.perf_counter()
    if small is None and name != "lottery":  # retraining needs the smaller network
        log.warning("%s: no smaller network to retrain (%s); its accuracy is NaN", name, mode)
        return {"accuracy": float("nan"), "train_seconds": 0.0}
    if mode == "finetune":
        start = (None if ctx.fills is None else _smaller(ctx, mask, ctx.fills)) or small
        net = ctx.fit(key, start, epochs=cfg.retrain.finetune_epochs)
    elif name == "lottery":  # a ticket is retrained from its own initial weights
        net = ctx.fit(key, ctx.init.smaller(ctx.layout, mask), epochs=cfg.retrain.epochs)
    else:
        net = ctx.fit(key, small.initialized(jax.random.fold_in(key, 0), ctx.ds.example), epochs=cfg.retrain.epochs)
    return {**_accuracies(ctx, net), "train_seconds": time.perf_counter() - t0}


def evaluate(ctx: Context, masks: dict[str, dict]) -> list[dict]:
    """Steps ``eval/...``: accuracy of every pruned network, per retrain mode and seed; then the selection.

    With ``retrain.selected_only``, the regimes that retrain run only for the GTAP method and the baseline that
    the selection set picked without retraining, at each target.
    """
    modes, cfg = ctx.config.retrain.modes, ctx.config
    rows, pruned = [], {}
    jobs = [(name, t) for name in masks for t in ctx.targets]
    for name, target in tqdm(jobs, desc="evaluating", disable=not ctx.progress):
        found = masks[name][target.label]
        mask = mask_of(found["kept"], ctx.layout.num_players)
        small = _smaller(ctx, mask)
        sizes = size_report(ctx.network, small, ctx.layout, mask, ctx.ds.example, latency=cfg.latency)
        base, tag = _row_base(ctx, name, target, found, mask, sizes), f"{name}/{target.label}"
        pruned[name, target.label] = (base, tag, small, mask)
        if "none" in modes:
            plain = functools.partial(_accuracy_without_retraining, ctx, name, tag, small, mask)
            rows.append({**base, "retrain": "none", "seed": None, **ctx.steps.run(f"eval/{tag}/none", plain)})
    chosen = None
    if cfg.retrain.selected_only and ctx.selection_data is not None:
        chosen = {(s["target"], s[f]) for s in selected(ctx, rows) for f in ("gtap", "baseline") if s[f]}
    for name, target in jobs:
        base, tag, small, mask = pruned[name, target.label]
        if chosen is not None and (base["target"], name) not in chosen:
            continue
        for mode in (m for m in modes if m != "none"):  # validation: only networks gtap_jax trains get here
            for seed in range(cfg.retrain.seeds):
                retrain = functools.partial(_accuracy_after_retraining, ctx, name, mode, seed, small, mask)
                rec = ctx.steps.run(f"eval/{tag}/{mode}/{seed}", retrain)
                rows.append({**base, "retrain": mode, "seed": seed, **rec})
    return rows


def selected(ctx: Context, rows: list[dict]) -> list[dict]:
    """The selection (:func:`gtap_jax.experiment.report.select_rows`) over ``rows``, handed their selection accuracy
    and nothing of the test set; [] without a selection set."""
    return [] if ctx.selection_data is None else select_rows(rows)


def write_results(ctx: Context, rows: list[dict], seconds: float) -> None:
    """results.json, results.csv, the compression curves and the printed summary table."""
    summary = {
        "model": ctx.config.model.name, "data": ctx.ds.describe(), "players": ctx.layout.num_players,
        "layers": dict(ctx.layout.layers), "layerwise": bool(ctx.config.game.layerwise), "d": ctx.d,
        "trained_test_accuracy": ctx.trained["test_accuracy"], "sizes": ctx.sizes, "seconds_this_run": seconds,
        "target_unit": ctx.config.target_unit, "targets": [t.label for t in ctx.targets],
        "game_examples": len(ctx.game_data[1]),
        "selection_examples": 0 if ctx.selection_data is None else len(ctx.selection_data[1]),
        "software": report.software(),
    }
    selection = selected(ctx, rows)
    chosen = {(s["retrain"], s["target"], s[f]): f for s in selection for f in ("gtap", "baseline") if s[f]}
    for r in rows:
        r["selected"] = chosen.get((r["retrain"], r["target"], r["method"]), "") if selection else ""
    record = {"summary": summary, "rows": rows}
    if selection:
        record["selection"] = {"rule": SELECTION_RULE, "choices": selection}
    write_json(ctx.workdir / "results.json", record)
    report.write_csv(ctx.workdir / "results.csv", rows)
    full = ctx.trained["test_accuracy"]
    if rows:
        report.plot_curves(rows, full, ctx.network.num_params(), ctx.workdir / "compression_curves.png")
    print(report.summary_table(rows, full))


__all__ = [
    "build_games", "evaluate", "find_all_masks", "measure_bands", "prepare", "run", "selected",
    "train_network", "write_results",
]
