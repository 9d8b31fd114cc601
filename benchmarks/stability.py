"""Settled decisions: how often two keys keep the same neurons, and what settling costs.

For each game, coalition metric and r (50% and 20% of the players), every
configuration runs ``top_n(key, value_fn, P, r, attribute)`` with 5 keys, and reports:

* agreement: the mean over pairs of keys of ``|A & B| / r`` for the kept sets A, B;
* evaluations and wall time per run (median over keys; the first key's run
  includes compilation, so the median is the steady state);
* settled: the share of runs whose decision settled, and the least settled share.

Configurations: fixed budgets (8,192-evaluation estimates, MSR and regression
for Banzhaf, permutations for Shapley, and 4x that; and for the draws a network
game values incrementally, permutations along chains and paired draws as stars,
131,072 to 524,288), and the settled mode of ``by_estimate`` (delta = 0.05,
epsilon = 0.1 of the mean player's share ``|v(N) - v(empty)| / P``, at most
``--cap`` evaluations per round), with and without draws focused on the unsure
players. The time column's ratio is to the 8,192-evaluation MSR run of the same
game and metric, measured in the same run.

Games:

* ``lenet300``: LeNet-300-100 trained 10 epochs on the embedded MNIST subset;
  the 400 units of fc1 and fc2 on 500 validation images.
* ``text_mlp``: the 3 x 256 text MLP trained 5 epochs on the emotion tweets
  (5,000-word binary vectors); its 768 units on 500 validation tweets. Needs a
  folder of the emotion CSVs (``--text-data``); skipped without it.

    python benchmarks/stability.py                 # both games, both metrics, 5 keys
    python benchmarks/stability.py --quick         # LeNet, neg_loss, 3 keys, fewer configurations
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gtap_jax as g
from gtap_jax import data, engine
from gtap_jax.models import lenet300, text_mlp
from gtap_jax.network import train

EPSILON_SHARE = 0.1
CAP = 1 << 17


def trained(name: str, text_data: Path | None):
    """``(model, params, x_val, y_val, layers)`` of a game, or None when its data is missing."""
    if name == "lenet300":
        ds, model, layers, epochs = data.load("mnist"), lenet300(), ["fc1", "fc2"], 10
    else:
        if text_data is None or not text_data.exists():
            return None
        ds = data.load("emotion", source="path", path=str(text_data), vocab_size=5000)
        model, layers, epochs = text_mlp(ds.num_classes), ["fc1", "fc2", "fc3"], 5
    params = train(jax.random.key(0), model, ds.x_train, ds.y_train, epochs=epochs, progress=False).params
    return model, params, ds.x_val[:500], ds.y_val[:500], layers


def configurations(quick: bool):
    """``(label, index, attribute kwargs)``: fixed budgets, then settled with and without focus."""
    fixed = [
        ("banzhaf msr 8192", "banzhaf", dict(evaluations=8192, estimator="msr")),
        ("banzhaf regression 8192", "banzhaf", dict(evaluations=8192, estimator="regression")),
        ("shapley permutation 8192", "shapley", dict(evaluations=8192, estimator="permutation")),
    ]
    if not quick:
        fixed += [
            ("banzhaf regression 32768", "banzhaf", dict(evaluations=32768, estimator="regression")),
            ("shapley permutation 32768", "shapley", dict(evaluations=32768, estimator="permutation")),
        ]
    # Draws valued incrementally (chains: permutations; stars: paired draws), at many more values.
    fixed += [(f"{index} {estimator} {n}", index, dict(evaluations=n, estimator=estimator))
              for n in (1 << 17, 1 << 18, 1 << 19)
              for index, estimator in (("shapley", "permutation"), ("banzhaf", "paired"))]
    settled = [
        ("banzhaf regression settled+focus", "banzhaf", dict(estimator="regression")),
        ("banzhaf regression settled", "banzhaf", dict(estimator="regression", focus=False)),
        ("shapley permutation settled+focus", "shapley", dict(estimator="permutation")),
        ("shapley permutation settled", "shapley", dict(estimator="permutation", focus=False)),
        ("banzhaf paired settled+focus", "banzhaf", dict(estimator="paired")),
    ]
    if not quick:
        settled += [("shapley kernel settled+focus", "shapley", dict(estimator="kernel"))]
    return fixed + settled


def agreement(sets: list[np.ndarray], r: int) -> float:
    return float(np.mean([np.sum(a & b) / r for a, b in itertools.combinations(sets, 2)]))


def run_config(value_fn, num_players, r, index, kwargs, keys, epsilon, plan, cap):
    """One configuration's top-r decision over ``keys`` keys."""
    kwargs = dict(kwargs)
    settle = g.Settle(delta=0.05, epsilon=epsilon, max_evaluations=cap, focus=kwargs.pop("focus", True))
    attribute = g.by_estimate(index, settle=settle, plan=plan, **kwargs)
    kept, seconds, evals, settled, shares = [], [], [], [], []
    for k in range(keys):
        t0 = time.perf_counter()
        res = g.top_n(jax.random.key(k), value_fn, num_players, r, attribute)
        seconds.append(time.perf_counter() - t0)
        rnd = res.history[0].scores
        evals.append(rnd.num_evaluations)
        settled.append(rnd.settled)
        shares.append(rnd.settled_share)
        kept.append(res.mask)
    return {
        "r": r, "agreement": agreement(kept, r), "seconds": statistics.median(seconds), "seconds_all": seconds,
        "evaluations": statistics.median(evals), "settled_runs": float(np.mean(settled)),
        "least_settled_share": float(min(shares)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument("--cap", type=int, default=CAP, help="most evaluations of a settled round")
    parser.add_argument("--games", nargs="+", default=None, help="lenet300 and/or text_mlp")
    parser.add_argument("--metrics", nargs="+", default=None, help="accuracy and/or neg_loss")
    parser.add_argument("--text-data", type=Path, default=None,
                        help="a folder of the emotion tweets (train.*, test.*); without it the text MLP is skipped")
    parser.add_argument("--divisors", nargs="+", type=int, default=[2, 5], help="r = P // each of these")
    parser.add_argument("--configs", nargs="+", default=None, help="run only these configurations (their labels)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("stability_results.json"))
    args = parser.parse_args()
    keys = args.keys or (3 if args.quick else 5)
    games = args.games or (["lenet300"] if args.quick else ["lenet300", "text_mlp"])
    metrics = args.metrics or (["neg_loss"] if args.quick else ["accuracy", "neg_loss"])
    results = {"date": str(date.today()), "device": str(jax.devices()[0].device_kind), "platform": platform.platform(),
               "jax": jax.__version__, "keys": keys, "epsilon_share": EPSILON_SHARE, "cap": args.cap, "rows": []}
    for game in games:
        net = trained(game, args.text_data)
        if net is None:
            print(f"{game}: no data at {args.text_data}; skipped")
            continue
        model, params, x, y, layers = net
        for metric in metrics:
            value_fn, layout = g.network_game(model, params, x, y, layers=layers, metric=metric)
            p = layout.num_players
            sizes = [p // k for k in args.divisors]
            full, empty = (float(value_fn(jnp.full(p, v))) for v in (True, False))
            epsilon = EPSILON_SHARE * abs(full - empty) / p
            plan = engine.make_plan(value_fn, p, num_coalitions=args.cap)
            for r in sizes:
                reference = None
                for label, index, kwargs in configurations(args.quick):
                    if args.configs and label not in args.configs and label != "banzhaf msr 8192":
                        continue  # (the MSR run is every ratio's reference)
                    row = run_config(value_fn, p, r, index, kwargs, keys, epsilon, plan, args.cap)
                    reference = reference or row["seconds"]
                    row.update(game=game, metric=metric, players=p, config=label, epsilon=epsilon,
                               time_ratio=row["seconds"] / reference)
                    results["rows"].append(row)
                    print(f"| {game} | {metric} | {r} | {label} | {row['agreement']:.3f} | {row['evaluations']:,.0f} |"
                          f" {row['seconds']:.2f} s ({row['time_ratio']:.1f}x) | {row['settled_runs']:.0%} /"
                          f" {row['least_settled_share']:.2f} |", flush=True)
                args.out.write_text(json.dumps(results, indent=1))
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
