"""Replicates of the default run's GTAP selections: how far two estimates of the same index land apart, and why.

The default run (``lenet300_mnist``) keeps neurons by the Banzhaf value twice: ``banzhaf`` (complementary
stars) and ``beta`` at the d its bands choose (0.5: the Banzhaf value by paired stars). Two estimates of one
index can keep different neurons for two reasons: Monte Carlo noise (a decision not settled, or settled only
up to its epsilon), or the game's evaluation set (500 validation images: many kept sets of equal game value
differ on new images). This runs the default run's rounds (its trained network, settled mode, delta 0.05,
epsilon 0.1 of the mean unit's part, at most 131,072 values a round, no focus) with several keys:

* on the game's 500 images, with complementary and paired stars: the spread over keys of test accuracy
  (no retraining) at each size is the Monte Carlo part;
* on the first and on the last 250 of them (complementary stars): the same keys, another evaluation set.

For every kept set it reports the game value ``v(S)`` (neg_loss on the 500 images) and the test accuracy,
per strategy and size: mean, standard deviation and range over keys, and the correlation over all kept sets
of a size between ``v(S)`` and test accuracy.

    python benchmarks/replicates.py     # top_n and iterated pruning, 4 keys (about 12 minutes on 2 CPU cores)
    python benchmarks/replicates.py --keys 2 --strategies top_n
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

import gtap_jax as g
from gtap_jax.configs import lenet300_mnist
from gtap_jax.strategies import STRATEGIES

SIZES = (200, 120, 80, 40, 20)
experiment = importlib.import_module("gtap_jax.experiment.run")  # the module (the package exports its run())


def selections(ctx, strategy, estimator, x, y, keys):
    """``{key: {size: mask}}`` of ``strategy`` with Banzhaf by ``estimator`` on the game over ``(x, y)``."""
    cfg = ctx.config.gtap
    fn, layout = g.network_game(ctx.network, None, x, y, layers=ctx.layout.names, metric="neg_loss")
    p = layout.num_players
    settle = g.Settle(cfg.delta, g.strategies.share_epsilon(fn, p, cfg.epsilon), cfg.max_evaluations, focus=False)
    attribute = g.by_estimate("banzhaf", estimator=estimator, settle=settle)
    out = {}
    for k in keys:
        order = np.argsort(-STRATEGIES[strategy](jax.random.key(100 + k), fn, p, sorted(SIZES), attribute).priority(),
                           kind="stable")
        out[k] = {size: np.isin(np.arange(p), order[:size]) for size in SIZES}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--strategies", nargs="+", default=["top_n", "iterated_pruning"])
    parser.add_argument("--out", default="benchmarks/replicates_results.json")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__},"
          f" {platform.machine()}\n", flush=True)
    config = lenet300_mnist.get_config()
    with tempfile.TemporaryDirectory() as workdir:
        ctx = experiment.prepare(config, Path(workdir))
        experiment.train_network(ctx)
    x, y = ctx.ds.x_val[:500], ctx.ds.y_val[:500]
    game, layout = g.network_game(ctx.network, None, x, y, layers=ctx.layout.names, metric="neg_loss")

    def measured(mask):
        masks = {name: np.asarray(k) for name, k in layout.split(np.asarray(mask)).items()}
        test = g.accuracy(ctx.network.model, ctx.network.params, ctx.ds.x_test, ctx.ds.y_test, masks=masks)
        return float(game(np.asarray(mask))), float(test)

    keys = range(args.keys)
    variants = {"500 images, complementary": (x, y, "complementary"), "500 images, paired": (x, y, "paired"),
                "first 250, complementary": (x[:250], y[:250], "complementary"),
                "last 250, complementary": (x[250:], y[250:], "complementary")}
    results = []
    for strategy in args.strategies:
        print(f"\n{strategy}: test accuracy without retraining, mean +- sd [min, max] over {args.keys} keys; game"
              " value v(S) on the 500 images, mean +- sd\n\n| selected on | size | test accuracy | v(S) |\n|---|---|"
              "---|---|", flush=True)
        found = {}
        for label, (xv, yv, estimator) in variants.items():
            t0 = time.perf_counter()
            found[label] = selections(ctx, strategy, estimator, xv, yv, keys)
            for size in SIZES:
                pairs = [measured(found[label][k][size]) for k in keys]
                v, acc = np.array(pairs).T
                results.append({"strategy": strategy, "selected_on": label, "size": size, "values": v.tolist(),
                                "test_accuracy": acc.tolist()})
                print(f"| {label} | {size} | {acc.mean():.3f} +- {acc.std(ddof=1):.3f} [{acc.min():.3f},"
                      f" {acc.max():.3f}] | {v.mean():.3f} +- {v.std(ddof=1):.3f} |", flush=True)
            print(f"({label}: {time.perf_counter() - t0:.0f} s)", flush=True)
        print("\n| size | corr(v(S), test accuracy) over all kept sets |\n|---|---|")
        for size in SIZES:
            rows = [r for r in results if r["strategy"] == strategy and r["size"] == size]
            v = np.concatenate([r["values"] for r in rows])
            acc = np.concatenate([r["test_accuracy"] for r in rows])
            spread = min(np.ptp(v), np.ptp(acc)) > 1e-3  # else the kept sets are constant networks
            print(f"| {size} | {np.corrcoef(v, acc)[0, 1]:.2f} |" if spread else f"| {size} | - |", flush=True)
    Path(args.out).write_text(json.dumps({"date": str(date.today()), "jax": jax.__version__,
                                          "device": jax.devices()[0].device_kind, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
