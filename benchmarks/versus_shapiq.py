"""Time to a pruning decision: our estimators against shapiq's approximators driving our evaluator, in one run.

The game: LeNet-300-100 trained 10 epochs on the embedded MNIST, its 400 units of fc1 and fc2, neg_loss on
500 validation images. Per index, a reference from ``--reference`` values of our default estimator in two
independent halves (their top-80 agreement is printed: the reference's own noise). Then each estimator's
values and seconds to a top-80 overlap of at least 0.95 with the reference (the decision top_n makes at 80),
per key:

* ours grows one estimate along a doubling grid of budgets, each step continuing the last (``state=``), the
  time cumulative; our games value permutations along chains and stars incrementally;
* shapiq's approximators cannot continue a run, so each runs afresh at each budget of its grid, its game our
  jitted batched evaluator of whole coalitions (its chunk size from ``make_plan``); its time is that of the
  first budget reaching 0.95.

Compilation is excluded on both sides (a warm-up run of our grid with another key; one of the
evaluator). The ratio is our slowest key's time over shapiq's slowest key's.

    python benchmarks/versus_shapiq.py            # 3 keys (about 8 minutes on 2 CPU cores)
    python benchmarks/versus_shapiq.py --keys 1
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import jax
import numpy as np

import gtap_jax as g
from gtap_jax import data
from gtap_jax.indices import draw_size
from gtap_jax.models import lenet300

TOP = 80
TARGET = 0.95
# (index, ours: [estimators], shapiq: [(label, class, kwargs, first budget, last budget)])
CASES = [
    ("banzhaf", ["complementary", "paired", "kernel_banzhaf"],
     [("RegressionFBII, pairing trick", "RegressionFBII", {"max_order": 1, "pairing_trick": True}, 1024, 65536)]),
    ("shapley", ["owen", "permutation", "antithetic"],
     [("PermutationSamplingSV", "PermutationSamplingSV", {}, 16384, 262144)]),
]


def overlap(a, b):
    return len(set(np.argsort(-np.asarray(a))[:TOP]) & set(np.argsort(-np.asarray(b))[:TOP])) / TOP


def ours_to_target(fn, p, index, estimator, key, reference, plan, cap):
    """``(values, seconds)`` of one growing estimate to the target overlap (None, seconds if it never got there)."""
    budget, spent, state, seconds = 4 * draw_size(estimator, p), 0, None, 0.0
    while spent < cap:
        t0 = time.perf_counter()
        att = g.estimate(jax.random.key(key), fn, p, index, evaluations=budget - spent, estimator=estimator,
                         plan=plan, state=state)
        np.asarray(att.values)
        seconds += time.perf_counter() - t0
        state, spent = att.state, att.num_evaluations
        if overlap(att.values, reference) >= TARGET:
            return spent, seconds
        budget *= 2
    return None, seconds


def shapiq_to_target(fn, p, index, cls, kwargs, first, last, key, reference, plan):
    """``(values, seconds)`` of shapiq's approximator at the first budget of its grid reaching the target."""
    import shapiq

    class Evaluated(shapiq.Game):
        def __init__(self):
            empty = float(np.asarray(g.evaluate_coalitions(fn, np.zeros((1, p), bool), plan=plan))[0])
            super().__init__(n_players=p, normalization_value=empty)

        def value_function(self, coalitions):
            return np.asarray(g.evaluate_coalitions(fn, np.asarray(coalitions, bool), plan=plan), np.float64)

    budget, seconds = first, 0.0
    while budget <= last:
        t0 = time.perf_counter()
        iv = getattr(shapiq, cls)(p, random_state=key, **kwargs).approximate(budget, Evaluated())
        seconds = time.perf_counter() - t0
        if overlap([iv[(i,)] for i in range(p)], reference) >= TARGET:
            return budget, seconds
        budget *= 2
    return None, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--reference", type=int, default=1 << 20, help="values of each reference (two halves)")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__},"
          f" {platform.machine()}\n", flush=True)
    ds = data.load("mnist")
    model = lenet300()
    params = g.network.train(jax.random.key(0), model, ds.x_train, ds.y_train, epochs=10, progress=False).params
    fn, layout = g.network_game(model, params, ds.x_val[:500], ds.y_val[:500], metric="neg_loss")
    p = layout.num_players
    plan = g.make_plan(fn, p)
    np.asarray(g.evaluate_coalitions(fn, np.ones((plan.limit, p), bool), plan=plan))  # compile
    print(f"| index | estimator | values per key | seconds per key | slowest key: seconds |\n|{'---|' * 5}")
    for index, ours, theirs in CASES:
        halves = [g.estimate(jax.random.key(1000 + h), fn, p, index, evaluations=args.reference // 2, plan=plan)
                  for h in (0, 1)]
        reference = (np.asarray(halves[0].values) + np.asarray(halves[1].values)) / 2
        print(f"| {index} | reference: {halves[0].estimator}, {args.reference:,} values | top-{TOP} agreement of"
              f" its halves {overlap(halves[0].values, halves[1].values):.3f} | | |", flush=True)
        slowest = {}
        for estimator in ours:
            ours_to_target(fn, p, index, estimator, 99, reference, plan, args.reference)  # compiles every chunk shape
            runs = [ours_to_target(fn, p, index, estimator, k, reference, plan, args.reference) for k in
                    range(args.keys)]
            slowest[estimator] = _row(index, estimator, runs)
        for label, cls, kwargs, first, last in theirs:
            runs = [shapiq_to_target(fn, p, index, cls, kwargs, first, last, k, reference, plan)
                    for k in range(args.keys)]
            slowest[label] = _row(index, f"shapiq {label}", runs)
        them = slowest[theirs[0][0]]
        for estimator in ours:
            print(f"\n{index}: {estimator} / shapiq {theirs[0][0]}, slowest key's time:"
                  f" {slowest[estimator] / them:.3f} (1/{them / slowest[estimator]:.1f})", flush=True)
        print()


def _row(index, label, runs):
    values = " / ".join("not reached" if v is None else f"{v:,}" for v, _ in runs)
    seconds = " / ".join(f"{s:.1f}" for _, s in runs)
    worst = float("inf") if any(v is None for v, _ in runs) else max(s for _, s in runs)
    print(f"| {index} | {label} | {values} | {seconds} | {worst:.1f} |", flush=True)
    return worst


if __name__ == "__main__":
    main()
