"""``run(config, workdir)``: the whole pruning experiment, resumable step by step.

This is the only module that reads a config. A run:

1. trains the network (or restores it) and records its test accuracy;
2. measures the uncertainty bands of the neuron game and chooses d;
3. finds a kept-neuron mask for every method (GTAP strategy x index, and the
   baselines) at every target size of the grid;
4. measures each pruned network's test accuracy without retraining, after
   clean-slate retraining of the compacted architecture (several seeds) and
   optionally after fine-tuning;
5. writes ``results.json``, ``results.csv``, ``compression_curves.png``,
   ``uncertainty_bands.png``, ``bands.json``, the compacted parameters of every
   GTAP result, and prints a summary table.

Every finished step is written to ``workdir/steps/`` at once (atomically); a
second run with the same workdir skips it, so a killed run loses at most the
step in progress. Training checkpoints every epoch.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from gtap_jax import baselines as bl
from gtap_jax import data as data_lib
from gtap_jax.compaction import compact, count_params
from gtap_jax.engine import max_chunk_size
from gtap_jax.games.network import DTYPES, MASKED_VALUES, METRICS, network_game
from gtap_jax.indices.estimate import METHODS, default_method, estimate, make_estimator
from gtap_jax.models import MODELS, PlayerLayout, layout_for
from gtap_jax.strategies import STRATEGIES
from gtap_jax.strategies.pruning import strongest_first
from gtap_jax.train import accuracy, init_params, load_params, save_params, train
from gtap_jax.uncertainty import Bands, choose_d, uncertainty_bands

log = logging.getLogger("gtap_jax")

INDICES = ("shapley", "banzhaf", "beta")
RETRAIN_MODES = ("none", "scratch", "finetune")
# Fields that may change between runs sharing a workdir: they do not affect results.
RUN_ONLY_FIELDS = ("progress",)


class ConfigError(ValueError):
    """A config that cannot be run; the message says what to change."""


# ---------------------------------------------------------------------------- steps


class Steps:
    """Finished steps of a run, one JSON file each, written atomically."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "steps"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, step: str) -> Path:
        return self.dir / (step.replace("/", "__") + ".json")

    def get(self, step: str) -> Any | None:
        path = self._path(step)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, step: str, record: Any) -> Any:
        _write_json(self._path(step), record)
        return record

    def run(self, step: str, fn: Callable[[], Any]) -> Any:
        """The recorded result of ``step``, computing and recording it if missing."""
        done = self.get(step)
        if done is not None:
            log.debug("skip %s (done)", step)
            return done
        t0 = time.perf_counter()
        record = fn()
        log.info("done %s (%.1f s)", step, time.perf_counter() - t0)
        return self.put(step, record)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


# ---------------------------------------------------------------------------- config


def validate(config) -> None:
    """Checks a config before any work is done.

    Raises:
        ConfigError: naming the field and what it accepts.
    """
    if config.data.name not in data_lib.SOURCES:
        raise ConfigError(f"unknown dataset {config.data.name!r}; expected one of {list(data_lib.SOURCES)}")
    sources = data_lib.SOURCES[config.data.name]
    if config.data.source and config.data.source not in sources:
        raise ConfigError(f"data.source {config.data.source!r} is not one of {sources} for {config.data.name}")
    if config.model.name not in MODELS:
        raise ConfigError(f"unknown model {config.model.name!r}; expected one of {list(MODELS)}")
    if not config.game.layers:
        raise ConfigError("game.layers is empty; name at least one prunable layer")
    if config.game.metric not in METRICS:
        raise ConfigError(f"game.metric must be one of {METRICS}, got {config.game.metric!r}")
    if config.game.masked_value not in MASKED_VALUES:
        raise ConfigError(f"game.masked_value must be one of {MASKED_VALUES}, got {config.game.masked_value!r}")
    if config.game.dtype not in DTYPES:
        raise ConfigError(f"game.dtype must be one of {DTYPES}, got {config.game.dtype!r}")
    for s in config.gtap.strategies:
        if s not in STRATEGIES:
            raise ConfigError(f"unknown strategy {s!r} in gtap.strategies; expected some of {list(STRATEGIES)}")
    for i in config.gtap.indices:
        if i not in INDICES:
            raise ConfigError(f"unknown index {i!r} in gtap.indices; expected some of {INDICES}")
        method = config.gtap.methods.get(i, "")
        if method and method not in METHODS[i]:
            raise ConfigError(f"gtap.methods.{i}={method!r}; expected one of {METHODS[i]}")
    for b in config.baselines:
        if b not in bl.BASELINES:
            raise ConfigError(f"unknown baseline method {b!r}; expected some of {bl.BASELINES}")
    d = config.gtap.d
    if d is not None and d != 0 and not 0 < d < 1:
        raise ConfigError(f"gtap.d must be in (0, 1) (or 0 to choose it from the bands), got {d}")
    if config.bands.rule not in ("max_std", "min_keep_within"):
        raise ConfigError(f"bands.rule must be 'max_std' or 'min_keep_within', got {config.bands.rule!r}")
    if not config.targets:
        raise ConfigError("targets is empty; give keep fractions in (0, 1] or neuron counts")
    for m in config.retrain.modes:
        if m not in RETRAIN_MODES:
            raise ConfigError(f"unknown retrain mode {m!r}; expected some of {RETRAIN_MODES}")
    if config.gtap.evaluations < 1:
        raise ConfigError(f"gtap.evaluations must be >= 1, got {config.gtap.evaluations}")


def target_sizes(targets, num_players: int, min_size: int = 1) -> list[int]:
    """Neuron counts from a grid of keep fractions (floats in (0, 1]) or counts (ints).

    Raises:
        ConfigError: for a size outside [min_size, num_players].
    """
    out = []
    for t in targets:
        if isinstance(t, float) and not float(t).is_integer():
            if not 0 < t <= 1:
                raise ConfigError(f"target keep fraction {t} is not in (0, 1]")
            size = max(min_size, round(t * num_players))
        else:
            size = int(t)
        if not min_size <= size <= num_players:
            raise ConfigError(
                f"target size {size} is not in [{min_size}, {num_players}] (the number of players)"
            )
        out.append(size)
    return sorted(set(out), reverse=True)


def _check_workdir(config, workdir: Path) -> None:
    saved = workdir / "config.json"
    now = json.loads(config.to_json_best_effort())
    if saved.exists():
        before = json.loads(saved.read_text())
        diff = [k for k in sorted(set(before) | set(now)) if k not in RUN_ONLY_FIELDS and before.get(k) != now.get(k)]
        if diff:
            raise ConfigError(
                f"workdir {workdir} holds the results of another config (fields differ: {', '.join(diff)});"
                " use a new --workdir or the same config"
            )
    _write_json(saved, now)


# ---------------------------------------------------------------------------- the run


def run(config, workdir: str | os.PathLike) -> list[dict]:
    """Runs (or resumes) the experiment ``config`` in ``workdir``.

    Returns:
        The result rows (also in ``results.json`` / ``results.csv``).

    Raises:
        ConfigError: for a config that cannot run.
        gtap_jax.data.DataUnavailableError: when the data is missing.
    """
    validate(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_workdir(config, workdir)
    steps = Steps(workdir)
    progress = bool(config.progress)
    key = jax.random.key(config.seed)
    t_start = time.perf_counter()

    kwargs = dict(config.data.options)
    ds = data_lib.load(
        config.data.name, source=config.data.source or None, path=config.data.path or None, seed=config.seed, **kwargs
    )
    log.info("data: %s", ds.describe())
    model = MODELS[config.model.name](num_classes=ds.num_classes, **dict(config.model.options))
    try:
        layout = layout_for(model, list(config.game.layers))
    except ValueError as e:
        raise ConfigError(f"game.layers: {e}") from None

    sizes = target_sizes(config.targets, layout.num_players, min_size=len(layout.names))

    # 1. Train (checkpointed every epoch) -------------------------------------------------
    tr = config.train
    init = init_params(jax.random.fold_in(key, 0), model, ds.input_shape)

    def fit(k, m, params=None, masks=None, epochs=tr.epochs, checkpoint_dir=None):
        return train(
            k, m, ds.x_train, ds.y_train, epochs=epochs, batch_size=tr.batch_size, learning_rate=tr.learning_rate,
            params=params, masks=masks, checkpoint_dir=checkpoint_dir, progress=progress,
        ).params

    model_dir = workdir / "model"

    def train_step():
        params = fit(key, model, params=init, checkpoint_dir=workdir / "checkpoints" / "train")
        save_params(model_dir / "trained", params)
        return {"test_accuracy": accuracy(model, params, ds.x_test, ds.y_test),
                "val_accuracy": accuracy(model, params, ds.x_val, ds.y_val)}

    trained_record = steps.run("train", train_step)
    params = load_params(model_dir / "trained", init)
    log.info("trained %s: test accuracy %.4f", config.model.name, trained_record["test_accuracy"])

    # The games: one over all player layers, or one per layer ----------------------------
    n_eval = config.game.eval_examples or len(ds.y_val)
    x_game, y_game = ds.x_val[:n_eval], ds.y_val[:n_eval]
    value_fn, _ = network_game(
        model, params, x_game, y_game, layers=layout.names, metric=config.game.metric,
        masked_value=config.game.masked_value, dtype=config.game.dtype,
    )
    chunk = config.game.chunk_size or max_chunk_size(value_fn, layout.num_players)
    if config.game.layerwise:
        games = []
        for name in layout.names:
            fn, sub_layout = network_game(
                model, params, x_game, y_game, layers=[name], metric=config.game.metric,
                masked_value=config.game.masked_value, dtype=config.game.dtype,
            )
            games.append((name, fn, sub_layout))
    else:
        games = [("all", value_fn, layout)]

    # 2. Uncertainty bands and d ---------------------------------------------------------
    def bands_step():
        b = uncertainty_bands(
            jax.random.fold_in(key, 1), value_fn, layout.num_players,
            keep_fractions=list(config.bands.keep_fractions), num_samples=config.bands.num_samples,
        )
        return b.to_dict()

    bands = Bands(**{k: np.asarray(v) if isinstance(v, list) else v for k, v in steps.run("bands", bands_step).items()})
    _write_json(workdir / "bands.json", bands.to_dict())
    if config.gtap.d:
        d = float(config.gtap.d)
    else:
        d = float(choose_d(bands, config.bands.rule, tolerance=config.bands.tolerance))
    log.info("d = %.3g (%s)", d, "from the config" if config.gtap.d else f"bands rule {config.bands.rule}")
    _plot_bands(bands, d, workdir / "uncertainty_bands.png")

    # 3. Masks of every method at every size --------------------------------------------
    methods: dict[str, dict] = {}
    names = [f"{s}/{i}" for s in config.gtap.strategies for i in config.gtap.indices] + list(config.baselines)
    for name in tqdm(names, desc="methods", disable=not progress):
        if "/" in name:
            strategy, index = name.split("/")
            fn = lambda strategy=strategy, index=index: _gtap_masks(  # noqa: E731
                config, key, games, layout, sizes, strategy, index, d, chunk, progress
            )
        else:
            fn = lambda name=name: _baseline_masks(  # noqa: E731
                config, key, name, model, init, params, layout, sizes, (x_game, y_game), fit
            )
        methods[name] = steps.run(f"masks/{name}", fn)

    # 4. Accuracy of every pruned network ------------------------------------------------
    rows = []
    jobs = [(name, size) for name in names for size in sizes]
    for name, size in tqdm(jobs, desc="evaluating", disable=not progress):
        found = methods[name][str(size)]
        mask = np.zeros(layout.num_players, bool)
        mask[np.asarray(found["kept"], int)] = True
        per_layer = bl.masks_dict(layout, mask)
        base = {
            "method": name, "family": "gtap" if "/" in name else "baseline",
            "strategy": name.split("/")[0] if "/" in name else "", "index": name.split("/")[1] if "/" in name else "",
            "d": d if name.endswith("/beta") else (0.5 if name.endswith("/banzhaf") else None),
            "neurons": int(mask.sum()), "neurons_total": layout.num_players,
            "keep_fraction": float(mask.sum() / layout.num_players),
            "evaluations": int(found["evaluations"]), "seconds": float(found["seconds"]),
        }
        small = compact(model, params, per_layer, input_shape=ds.input_shape)
        base.update(params=small.report.params_after, params_total=small.report.params_before,
                    flops=small.report.flops_after, flops_total=small.report.flops_before)
        tag = f"{name}/{size}"

        if "none" in config.retrain.modes:
            def none_step(small=small, tag=tag, name=name):
                if "/" in name:
                    save_params(workdir / "compact" / tag.replace("/", "__"), small.params)
                return {"accuracy": accuracy(small.model, small.params, ds.x_test, ds.y_test)}

            rows.append({**base, "retrain": "none", "seed": None, **steps.run(f"eval/{tag}/none", none_step)})
        for mode in config.retrain.modes:
            if mode == "none":
                continue
            for seed in range(config.retrain.seeds):
                def retrain_step(small=small, mode=mode, seed=seed, name=name, per_layer=per_layer):
                    k = jax.random.fold_in(jax.random.key(config.seed + 1000 * (seed + 1)), _stable_id(name))
                    t0 = time.perf_counter()
                    if mode == "finetune":
                        p = fit(k, small.model, params=small.params, epochs=config.retrain.finetune_epochs)
                    elif name == "lottery":  # a ticket is retrained from its own initial weights
                        rewound = compact(model, init, per_layer).params
                        p = fit(k, small.model, params=rewound, epochs=config.retrain.epochs)
                    else:
                        p = fit(k, small.model, epochs=config.retrain.epochs)
                    return {"accuracy": accuracy(small.model, p, ds.x_test, ds.y_test),
                            "train_seconds": time.perf_counter() - t0}

                rec = steps.run(f"eval/{tag}/{mode}/{seed}", retrain_step)
                rows.append({**base, "retrain": mode, "seed": seed, **rec})

    # 5. Files and summary ---------------------------------------------------------------
    summary = {
        "model": config.model.name, "data": ds.describe(), "players": layout.num_players,
        "layers": dict(layout.layers), "layerwise": bool(config.game.layerwise), "d": d,
        "trained_test_accuracy": trained_record["test_accuracy"], "sizes": sizes,
        "seconds_this_run": time.perf_counter() - t_start,
    }
    _write_json(workdir / "results.json", {"summary": summary, "rows": rows})
    _write_csv(workdir / "results.csv", rows)
    _plot_curves(rows, trained_record["test_accuracy"], count_params(params), workdir / "compression_curves.png")
    print(summary_table(rows, trained_record["test_accuracy"]))
    return rows


def _stable_id(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _attribute(index: str, d: float, method: str | None, evaluations: int, chunk: int, progress: bool):
    """An attribute function spending about ``evaluations`` coalition values per round."""

    def attribute(k, fn, num_players):
        # Banzhaf and beta_d defaults (MSR, regression) both cost one evaluation per draw.
        m = method or default_method(index, num_players, evaluations)
        est = make_estimator(num_players, index, d=d if index == "beta" else None, method=m)
        num_samples = max(2, evaluations // est.draw_size)
        return estimate(
            k, fn, num_players, index, num_samples=num_samples, d=d if index == "beta" else None, method=m,
            chunk_size=chunk, progress=progress,
        )

    return attribute


def _gtap_masks(config, key, games, layout: PlayerLayout, sizes, strategy, index, d, chunk, progress) -> dict:
    """``{size: {kept, evaluations, seconds}}`` for one strategy x index, every size from one run per game."""
    attribute = _attribute(
        index, d, config.gtap.methods.get(index) or None, config.gtap.evaluations, chunk, progress
    )
    k = jax.random.fold_in(jax.random.fold_in(key, 2), _stable_id(f"{strategy}/{index}"))
    offsets = layout.offsets()
    per_size = {s: {"kept": [], "evaluations": 0, "seconds": 0.0} for s in sizes}
    for g, (name, fn, glayout) in enumerate(games):
        gk = jax.random.fold_in(k, g)
        p = glayout.num_players
        # per game sizes: the whole budget for one joint game, a proportional share per layer
        if len(games) == 1:
            game_sizes = {s: s for s in sizes}
        else:
            game_sizes = {s: bl.allocate(layout, s)[name] for s in sizes}
        start = 0 if len(games) == 1 else offsets[name][0]
        t0 = time.perf_counter()
        if strategy == "top_n":
            res = STRATEGIES["top_n"](gk, fn, p, max(game_sizes.values()), attribute)
            order = strongest_first(res.history[0].values)
            found = {s: (np.sort(order[:r]), res.num_evaluations) for s, r in game_sizes.items()}
        else:
            targets = sorted(set(game_sizes.values()))
            r = targets[0] if strategy == "iterated_pruning" else targets[-1]
            res = STRATEGIES[strategy](gk, fn, p, r, attribute, step=config.gtap.step, stops=targets)
            found = {}
            for s, r_s in game_sizes.items():
                if r_s == p and strategy == "iterated_pruning":
                    found[s] = (np.arange(p), 0)
                else:
                    m, spent = res.mask_of_size(r_s)
                    found[s] = (np.flatnonzero(m), spent)
        seconds = time.perf_counter() - t0
        total = max(res.num_evaluations, 1)
        for s, (kept, spent) in found.items():
            per_size[s]["kept"].extend((start + kept).tolist())
            per_size[s]["evaluations"] += int(spent)
            per_size[s]["seconds"] += seconds * spent / total  # the share of the run spent to reach this size
    return {str(s): v for s, v in per_size.items()}


def _baseline_masks(config, key, name, model, init, params, layout, sizes, game_data, fit) -> dict:
    t0 = time.perf_counter()
    if name == "lottery":
        masks = bl.lottery_ticket(
            model, init, params, layout, sizes,
            lambda p, m: fit(jax.random.fold_in(key, 3), model, params=p, masks=m),
        )
    else:
        if name == "wmp":
            scores = bl.magnitude_scores(model, params, layout)
        elif name == "wgmp":
            scores = bl.taylor_scores(model, params, *game_data, layout)
        else:
            scores = bl.random_scores(jax.random.fold_in(key, 4), layout)
        masks = {s: bl.keep_per_layer(scores, layout, s) for s in sizes}
    seconds = time.perf_counter() - t0
    return {
        str(s): {"kept": np.flatnonzero(m).tolist(), "evaluations": 0, "seconds": seconds} for s, m in masks.items()
    }


# ---------------------------------------------------------------------------- outputs

CSV_FIELDS = (
    "method", "family", "strategy", "index", "d", "neurons", "neurons_total", "keep_fraction", "params",
    "params_total", "flops", "flops_total", "retrain", "seed", "accuracy", "evaluations", "seconds",
    "train_seconds",
)


def _write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def summary_table(rows: list[dict], full_accuracy: float) -> str:
    """Test accuracy per method (rows) and neurons kept (columns), one block per retrain mode.

    Retrained cells are the mean over seeds.
    """
    lines = [f"trained network: test accuracy {full_accuracy:.4f}"]
    for mode in dict.fromkeys(r["retrain"] for r in rows):
        sub = [r for r in rows if r["retrain"] == mode]
        sizes = sorted({r["neurons"] for r in sub}, reverse=True)
        methods = list(dict.fromkeys(r["method"] for r in sub))
        width = max(len(m) for m in methods) + 2
        lines.append(f"\nretrain = {mode}: test accuracy (mean over seeds) by neurons kept")
        lines.append("method".ljust(width) + "".join(f"{s:>9d}" for s in sizes) + "   evals")
        for m in methods:
            cells, evals = [], 0
            for s in sizes:
                acc = [r["accuracy"] for r in sub if r["method"] == m and r["neurons"] == s]
                evals = max(evals, max((r["evaluations"] for r in sub if r["method"] == m), default=0))
                cells.append(f"{np.mean(acc):9.4f}" if acc else " " * 9)
            lines.append(m.ljust(width) + "".join(cells) + f"{evals:8d}")
    return "\n".join(lines)


def _plot_curves(rows, full_accuracy, full_params, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["retrain"] for r in rows))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False, sharey=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cmap = plt.get_cmap("tab20")
    for ax, mode in zip(axes[0], modes, strict=True):
        for j, m in enumerate(methods):
            sub = [r for r in rows if r["retrain"] == mode and r["method"] == m]
            xs = sorted({r["params"] for r in sub})
            acc = [[r["accuracy"] for r in sub if r["params"] == x] for x in xs]
            mean = np.array([np.mean(a) for a in acc])
            style = "-" if m.count("/") else "--"
            ax.plot(xs, mean, style, marker="o", ms=3, color=cmap(j % 20), label=m)
            if any(len(a) > 1 for a in acc):
                ax.fill_between(xs, [min(a) for a in acc], [max(a) for a in acc], color=cmap(j % 20), alpha=0.15)
        ax.axhline(full_accuracy, color="k", lw=0.8, ls=":", label="unpruned")
        ax.set_xscale("log")
        ax.set_xlabel(f"parameters of the compacted network (unpruned: {full_params:,})")
        ax.set_title(f"retrain: {mode}" + (" (band: min-max over seeds)" if mode != "none" else ""))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_bands(bands: Bands, d: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = np.asarray(bands.keep_fractions)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(q, bands.mean, "o-", label="mean v over Bernoulli(q) coalitions")
    ax.fill_between(q, bands.mean - bands.std, bands.mean + bands.std, alpha=0.25, label="± 1 std")
    qs = np.asarray(bands.quantiles)
    ax.fill_between(q, qs[:, 0], qs[:, -1], alpha=0.1, color="C0",
                    label=f"quantiles {bands.quantile_levels[0]:g}-{bands.quantile_levels[-1]:g}")
    ax.axvline(d, color="C3", ls="--", label=f"chosen d = {d:.2f}")
    ax.axhline(bands.full_value, color="k", ls=":", lw=0.8, label="v(all)")
    ax.set_xlabel("keep fraction q")
    ax.set_ylabel("coalition value")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["ConfigError", "Steps", "run", "summary_table", "target_sizes", "validate"]
