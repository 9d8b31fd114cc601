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
from gtap_jax.experiment.lock import workdir_lock
from gtap_jax.experiment.methods import find_masks, game_sizes, is_gtap, method_names
from gtap_jax.experiment.progress import clear_partial, expected_evaluations, index_d, say_expected_time
from gtap_jax.experiment.setup import load_network
from gtap_jax.experiment.steps import Steps, write_json
from gtap_jax.experiment.validation import (
    ConfigError,
    check_workdir,
    config_hash,
    record_config,
    target_sizes,
    validate,
)
from gtap_jax.layout import mask_of
from gtap_jax.network import Network, accuracy, mean_fills, network_game, size_report
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
    n_eval = game.eval_examples or len(ctx.ds.y_val)
    ctx.game_data = (ctx.ds.x_val[:n_eval], ctx.ds.y_val[:n_eval])

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
    """Steps ``masks/...``: the kept neurons of every method, each step's expected time said first."""
    masks = {}
    for name in tqdm(method_names(ctx.config), desc="methods", disable=not ctx.progress):
        step = f"masks/{name}"
        if is_gtap(name) and ctx.steps.get(step) is None:
            strategy, index = name.split("/")
            say_expected_time(ctx, step, expected_evaluations(ctx, strategy, index, game_sizes(ctx)), index)
        masks[name] = ctx.steps.run(step, functools.partial(find_masks, ctx, name))
        clear_partial(ctx, name)
    return masks


def _row_base(ctx: Context, name: str, found: dict, mask: np.ndarray, sizes) -> dict:
    gtap = is_gtap(name)
    strategy, index = name.split("/") if gtap else ("", "")
    return {
        "method": name, "family": "gtap" if gtap else "baseline", "strategy": strategy, "index": index,
        "d": index_d(ctx, index) if gtap else None,
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
    try:
        return ctx.network.smaller(ctx.layout, mask, x=ctx.game_data[0], fills=fills)
    except ValueError as e:
        log.warning("no smaller network for %d of %d players (the masked one stands for it): %s", int(mask.sum()),
                    mask.size, e)
        return None


def _accuracy_without_retraining(ctx: Context, name: str, tag: str, small, mask) -> dict:
    pruned = small if ctx.fills is None else _smaller(ctx, mask, ctx.fills)
    test = ctx.ds.x_test, ctx.ds.y_test
    if pruned is None:
        masks = {p: np.asarray(k) for p, k in ctx.layout.split(mask).items()}
        return {"accuracy": accuracy(ctx.network, None, *test, masks=masks, fills=ctx.fills)}
    if is_gtap(name):
        pruned.save(ctx.workdir / "compact" / tag.replace("/", "__"))
    return {"accuracy": accuracy(pruned, None, *test)}


def _accuracy_after_retraining(ctx: Context, name: str, mode: str, seed: int, small: Network, mask) -> dict:
    cfg = ctx.config
    key = jax.random.fold_in(jax.random.key(cfg.seed + 1000 * (seed + 1)), stable_id(name))
    t0 = time.perf_counter()
    if mode == "finetune":
        start = (None if ctx.fills is None else _smaller(ctx, mask, ctx.fills)) or small
        net = ctx.fit(key, start, epochs=cfg.retrain.finetune_epochs)
    elif name == "lottery":  # a ticket is retrained from its own initial weights
        net = ctx.fit(key, ctx.init.smaller(ctx.layout, mask), epochs=cfg.retrain.epochs)
    else:
        net = ctx.fit(key, small.initialized(jax.random.fold_in(key, 0), ctx.ds.example), epochs=cfg.retrain.epochs)
    return {"accuracy": accuracy(net, None, ctx.ds.x_test, ctx.ds.y_test), "train_seconds": time.perf_counter() - t0}


def evaluate(ctx: Context, masks: dict[str, dict]) -> list[dict]:
    """Steps ``eval/...``: test accuracy of every pruned network, per retrain mode and seed."""
    modes = ctx.config.retrain.modes
    rows = []
    jobs = [(name, size) for name in masks for size in ctx.sizes]
    for name, size in tqdm(jobs, desc="evaluating", disable=not ctx.progress):
        found = masks[name][str(size)]
        mask = mask_of(found["kept"], ctx.layout.num_players)
        small = _smaller(ctx, mask)
        sizes = size_report(ctx.network, small, ctx.layout, mask, ctx.ds.example, latency=ctx.config.latency)
        base, tag = _row_base(ctx, name, found, mask, sizes), f"{name}/{size}"
        if "none" in modes:
            plain = functools.partial(_accuracy_without_retraining, ctx, name, tag, small, mask)
            rows.append({**base, "retrain": "none", "seed": None, **ctx.steps.run(f"eval/{tag}/none", plain)})
        for mode in (m for m in modes if m != "none"):  # validation: only networks gtap_jax trains get here
            for seed in range(ctx.config.retrain.seeds):
                retrain = functools.partial(_accuracy_after_retraining, ctx, name, mode, seed, small, mask)
                rec = ctx.steps.run(f"eval/{tag}/{mode}/{seed}", retrain)
                rows.append({**base, "retrain": mode, "seed": seed, **rec})
    return rows


def write_results(ctx: Context, rows: list[dict], seconds: float) -> None:
    """results.json, results.csv, the compression curves and the printed summary table."""
    summary = {
        "model": ctx.config.model.name, "data": ctx.ds.describe(), "players": ctx.layout.num_players,
        "layers": dict(ctx.layout.layers), "layerwise": bool(ctx.config.game.layerwise), "d": ctx.d,
        "trained_test_accuracy": ctx.trained["test_accuracy"], "sizes": ctx.sizes, "seconds_this_run": seconds,
    }
    write_json(ctx.workdir / "results.json", {"summary": summary, "rows": rows})
    report.write_csv(ctx.workdir / "results.csv", rows)
    full = ctx.trained["test_accuracy"]
    if rows:
        report.plot_curves(rows, full, ctx.network.num_params(), ctx.workdir / "compression_curves.png")
    print(report.summary_table(rows, full))


__all__ = [
    "build_games", "evaluate", "find_all_masks", "measure_bands", "prepare", "run", "train_network", "write_results",
]
