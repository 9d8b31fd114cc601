"""Incremental evaluation along permutation chains against whole coalitions, in one run.

For MLPs on the embedded MNIST (random weights; the cost does not depend on them): the game over
every hidden unit, valued by neg_loss on ``n`` validation images. Reports coalition values per
second of (a) the batched engine on whole coalitions and (b) chains valued incrementally
(`gtap_jax/network/chains.py`), their ratio, and the largest difference between the two on the
same coalitions; then the wall time of a permutation-Shapley estimate of ``--evaluations`` values
through chains.

    python benchmarks/chains.py                  # LeNet-300-100 (400 players) and 784-4096-4096-10 (8,192)
    python benchmarks/chains.py --quick          # LeNet-300-100 only
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
from gtap_jax.indices import make_estimator
from gtap_jax.models import MLP
from gtap_jax.network import init_params


def measure(hidden, n, whole_values, evaluations):
    ds = data.load("mnist")
    model = MLP(hidden=hidden, num_classes=10)
    params = init_params(jax.random.key(0), model, ds.input_shape)
    fn, layout = g.network_game(model, params, ds.x_val[:n], ds.y_val[:n], metric="neg_loss")
    p = layout.num_players
    masks = np.asarray(jax.vmap(make_estimator(p, "shapley", estimator="permutation").draw, in_axes=(None, 0))(
        jax.random.key(1), np.arange(max(1, 4096 // (p + 1)))))
    plan = g.make_plan(fn, p)
    chain = g.engine.batched_chain_fn(fn, 1, plan.mesh)
    flat = masks.reshape(-1, p)[:whole_values]
    rates, out = {}, {}
    for name, run in (("whole", lambda: g.evaluate_coalitions(fn, flat, plan=plan)),
                      ("chains", lambda: chain(g.engine.place(masks, plan.mesh)))):
        np.asarray(run())  # compile
        t0 = time.perf_counter()
        out[name] = np.asarray(run()).reshape(-1)
        rates[name] = out[name].size / (time.perf_counter() - t0)
    diff = float(np.max(np.abs(out["whole"] - out["chains"][: out["whole"].size])))
    t0 = time.perf_counter()
    g.estimate(jax.random.key(2), fn, p, "shapley", evaluations=evaluations, plan=plan)
    seconds = time.perf_counter() - t0
    print(f"| {'-'.join(str(h) for h in hidden)} | {p} | {n} | {rates['whole']:,.0f} | {rates['chains']:,.0f} |"
          f" {rates['chains'] / rates['whole']:.0f}x | {diff:.1e} | {evaluations:,}: {seconds:.1f} s |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__},"
          f" {platform.machine()}\n")
    print("| MLP | players | images | whole: values/s | chains: values/s | ratio | largest difference |"
          " permutation Shapley estimate |\n|---|---|---|---|---|---|---|---|")
    measure((300, 100), 500, 4010, 32768)
    if not args.quick:
        measure((4096, 4096), 250, 128, 32768)


if __name__ == "__main__":
    main()
