"""What bfloat16 evaluation (``network_game(..., dtype="bfloat16")``) does to the ranking.

LeNet-300-100 trained on the embedded MNIST subset (as in ``estimators.py``),
the game played on the 500 validation examples, accuracy as the value.

1. Exact: the 20-player fc2 neuron game of ``estimators.py`` enumerated in
   float32 and in bfloat16. Share of the 2^20 coalition values that change,
   the largest change, and Kendall tau between the float32 and bfloat16 exact
   indices.
2. Estimated: the 400-player game (fc1 + fc2). Same key, so the same sampled
   coalitions, in both precisions, against a second float32 run with another
   key (the Monte Carlo noise floor). Kendall tau, and the overlap of the sets
   pruning would remove (the weakest 50%, 80% and 90%).
3. Speed: coalition values per second of both precisions in this run.

    python benchmarks/bfloat16.py            # about 8 minutes on 2 CPU cores
    python benchmarks/bfloat16.py --quick    # about 2 minutes: fewer samples
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import jax
import numpy as np
from estimators import neuron_game, trained_lenet300
from scipy.stats import kendalltau

import gtap_jax as g
from gtap_jax.indices.exact import coalition_values, indices_from_table

DTYPES = ("float32", "bfloat16")
PRUNED_SHARES = (0.5, 0.8, 0.9)


def weakest_overlap(a: np.ndarray, b: np.ndarray, share: float) -> float:
    """Overlap of the ``share`` weakest players by ``a`` and by ``b``."""
    k = int(round(share * len(a)))
    return len(set(np.argsort(a)[:k]) & set(np.argsort(b)[:k])) / k


def values_per_second(value_fn, num_players: int, n: int = 4096) -> float:
    masks = np.random.default_rng(0).random((n, num_players)) < 0.5
    g.evaluate_coalitions(value_fn, masks[:512]).block_until_ready()  # compile
    t0 = time.perf_counter()
    g.evaluate_coalitions(value_fn, masks).block_until_ready()
    return n / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 permutations / 12,832 MSR samples")
    args = parser.parse_args()
    trained = trained_lenet300()
    model, params, ds = trained
    dev = jax.devices()[0]
    print(f"{date.today()} | {dev.platform} {dev.device_kind} | {platform.processor() or platform.machine()} "
          f"| jax {jax.__version__}")

    # 1. Exact, 20 players --------------------------------------------------------------
    tables = {dt: np.asarray(coalition_values(neuron_game(20, dt, trained), 20), np.float64) for dt in DTYPES}
    diff = np.abs(tables["bfloat16"] - tables["float32"])
    print(f"\n20-player fc2 game, 2^20 coalitions: {np.mean(diff > 0):.2%} of values change in bfloat16; "
          f"largest change {diff.max():.4f} (accuracy), mean {diff.mean():.2e}")
    print("| index | Kendall tau, exact float32 vs exact bfloat16 | weakest-5 overlap |")
    print("|---|---|---|")
    for index, d in (("shapley", None), ("banzhaf", None), ("beta", 0.3)):
        a, b = (indices_from_table(tables[dt], index, d=d) for dt in DTYPES)
        name = f"beta (d={d})" if d else index
        print(f"| {name} | {kendalltau(a, b).statistic:.3f} | {weakest_overlap(a, b, 0.25):.2f} |")

    # 2. Estimated, 400 players -----------------------------------------------------------
    games = {
        dt: g.network_game(model, params, ds.x_val, ds.y_val, layers=["fc1", "fc2"], dtype=dt)[0] for dt in DTYPES
    }
    p = 400
    perms = 32 if args.quick else 128
    print(f"\n400-player game (fc1 + fc2), {perms * (p + 1):,} evaluations per estimate")
    header = " | ".join(f"weakest {s:.0%} overlap" for s in PRUNED_SHARES)
    print(f"| index | pair | Kendall tau | {header} |")
    print("|---|---|---|" + "---|" * len(PRUNED_SHARES))
    budget = perms * (p + 1)
    for index, method in (("shapley", "permutation"), ("banzhaf", "msr")):
        pairs = (("f32 key 0", 0, "float32"), ("bf16 key 0", 0, "bfloat16"), ("f32 key 1", 1, "float32"))
        runs = {
            label: g.estimate(jax.random.key(seed), games[dt], p, index, evaluations=budget, estimator=method).values
            for label, seed, dt in pairs
        }
        runs = {k: np.asarray(v, np.float64) for k, v in runs.items()}
        for other, label in (("bf16 key 0", "float32 vs bfloat16, same samples"),
                             ("f32 key 1", "float32 vs float32, other samples (noise floor)")):
            a, b = runs["f32 key 0"], runs[other]
            cells = " | ".join(f"{weakest_overlap(a, b, s):.2f}" for s in PRUNED_SHARES)
            print(f"| {index} ({method}) | {label} | {kendalltau(a, b).statistic:.3f} | {cells} |", flush=True)

    # 3. Speed ----------------------------------------------------------------------------
    rates = {dt: values_per_second(fn, p) for dt, fn in games.items()}
    print(f"\nvalues/s, 400-player game, 500 examples: float32 {rates['float32']:.0f}, "
          f"bfloat16 {rates['bfloat16']:.0f}; bfloat16/float32 = {rates['bfloat16'] / rates['float32']:.2f}x")


if __name__ == "__main__":
    main()
