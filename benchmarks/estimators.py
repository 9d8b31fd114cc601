"""Estimator efficiency: evaluations each estimator needs to rank 20 players like the exact index.

Two 20-player games with exact values by enumeration (2^20 coalitions):

* ``neuron``: LeNet-300-100 trained on the embedded MNIST subset; the players are
  the 20 units of fc2 with the largest weight x gradient score, every other fc2
  unit silenced; v = validation accuracy (500 examples).
* ``majority``: a weighted majority game with the distinct weights 1..20 in a
  random order, quota half the total weight (distinct weights: no ties in the
  exact ranking, which would cap Kendall tau below 1 for any estimator).

For every index (Shapley; Banzhaf = beta_0.5; beta_d with d chosen by the
"max_std" rule on the neuron game) and every estimator of it, each seed adds
samples to one running estimate (``estimate(..., state=...)``), and at each
budget of a geometric grid we record Kendall tau against the exact values and
the precision of the top-k and bottom-k sets (k = 5; bottom-k is what pruning
needs). The table reports the median over seeds; "evals to tau>=0.9" is the
smallest budget of the grid where the median tau reaches 0.9.

Side by side, shapiq's approximators (``pip install -e ".[bench]"``; skipped
if shapiq is missing) play the same games: permutation sampling and
KernelSHAP for Shapley; SVARM and the order-1 Faith-Banzhaf regression for
Banzhaf (shapiq has no beta_d). shapiq cannot continue a run, so each budget
is a fresh run with the seed as its random state. Its value function looks the
coalitions up in the exact enumeration's table, the same values our
estimators get; the evaluations it actually requested are counted.

A third part plays the game pruning really plays, all 400 units of fc1 and fc2,
too large to enumerate: for Banzhaf and beta_d, two seeds per estimator and
budget, reporting the Kendall tau between the two seeds' estimates and the median
standard error (at equal budget, the better estimator agrees with itself more).

    python benchmarks/estimators.py            # about 20 minutes on 2 CPU cores
    python benchmarks/estimators.py --quick    # a few minutes: fewer seeds and budgets
    python benchmarks/estimators.py --large-only   # only the 400-player part
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import jax
import numpy as np
from scipy.stats import kendalltau

import gtap_jax as g
from gtap_jax.games import restrict, weighted_majority_game
from gtap_jax.indices import draw_size, estimators_for
from gtap_jax.indices.exact import coalition_values, indices_from_table

K = 5

# index -> (label, shapiq approximator class name, keyword arguments)
SHAPIQ_APPROXIMATORS = {
    "shapley": [("shapiq permutation", "PermutationSamplingSV", {}), ("shapiq KernelSHAP", "KernelSHAP", {})],
    "banzhaf": [("shapiq SVARM", "SVARM", {"index": "BV"}), ("shapiq regression", "RegressionFBII", {"max_order": 1})],
}


def trained_lenet300(epochs: int = 5):
    """LeNet-300-100 trained on the embedded MNIST subset: ``(model, params, dataset)``."""
    from gtap_jax import data
    from gtap_jax.models import lenet300
    from gtap_jax.network import train

    ds = data.load("mnist")
    model = lenet300()
    params = train(jax.random.key(0), model, ds.x_train, ds.y_train, epochs=epochs, progress=False).params
    return model, params, ds


def neuron_game(num_players: int = 20, dtype: str = "float32", trained=None):
    """The 20 fc2 units with the largest weight x gradient score; the rest of fc2 silenced."""
    from gtap_jax.baselines import taylor_scores
    from gtap_jax.models import layout_for

    model, params, ds = trained or trained_lenet300()
    value_fn, layout = g.network_game(model, params, ds.x_val, ds.y_val, layers=["fc2"], dtype=dtype)
    scores = taylor_scores(model, params, ds.x_val, ds.y_val, layout_for(model, ["fc2"]))
    free = np.zeros(layout.num_players, bool)
    free[np.argsort(-scores)[:num_players]] = True
    sub, _ = restrict(value_fn, np.zeros(layout.num_players, bool), free)
    return sub


def majority_game(num_players: int = 20):
    w = np.random.default_rng(0).permutation(np.arange(1, num_players + 1))
    return weighted_majority_game(w, quota=int(w.sum()) // 2 + 1)


def precision(est: np.ndarray, exact: np.ndarray, k: int, top: bool) -> float:
    order_e, order_x = np.argsort(-est), np.argsort(-exact)
    if not top:
        order_e, order_x = order_e[::-1], order_x[::-1]
    return len(set(order_e[:k]) & set(order_x[:k])) / k


def _row(name, index, d, method, draw, budgets, taus, top, bottom, t_exact):
    med = np.nanmedian(taus, axis=0)
    reach = [b for b, t in zip(budgets, med, strict=True) if t >= 0.9]
    row = {
        "game": name, "index": index, "d": d, "method": method, "draw_size": draw,
        "evals_to_tau_0.9": reach[0] if reach else None,
        "budgets": list(budgets), "median_tau": med.tolist(),
        "median_top_k": np.nanmedian(top, axis=0).tolist(),
        "median_bottom_k": np.nanmedian(bottom, axis=0).tolist(),
        "exact_seconds": t_exact,
    }
    print(f"{name:9s} {index:8s} {method:20s} evals to tau>=0.9: {str(row['evals_to_tau_0.9']):>8s}"
          f"   tau at {budgets[-1]}: {med[-1]:.3f}", flush=True)
    return row


def _scores(v, exact):
    tau = kendalltau(v, exact).statistic if np.ptp(v) > 0 else 0.0
    return tau, precision(v, exact, K, True), precision(v, exact, K, False)


def run_shapiq(name, table, index, exact, budgets, seeds, num_players, t_exact):
    """Rows for shapiq's approximators of ``index`` on the game with value table ``table``."""
    import shapiq

    powers = 1 << np.arange(num_players)

    class TableGame(shapiq.Game):
        def __init__(self):
            self.calls = 0
            super().__init__(n_players=num_players, normalization_value=float(table[0]))

        def value_function(self, coalitions):
            self.calls += len(coalitions)
            return table[coalitions.astype(np.int64) @ powers]

    rows = []
    for label, cls, kwargs in SHAPIQ_APPROXIMATORS.get(index, []):
        taus, top, bottom = (np.full((len(seeds), len(budgets)), np.nan) for _ in range(3))
        calls = []
        for si, seed in enumerate(seeds):
            for bi, budget in enumerate(budgets):
                game = TableGame()
                iv = getattr(shapiq, cls)(num_players, random_state=seed, **kwargs).approximate(budget, game)
                v = np.array([iv[(i,)] for i in range(num_players)])
                taus[si, bi], top[si, bi], bottom[si, bi] = _scores(v, exact)
                calls.append(game.calls / budget)
        rows.append(_row(name, index, None, label, 1, budgets, taus, top, bottom, t_exact))
        rows[-1]["evaluations_used_per_budget"] = [min(calls), max(calls)]
    return rows


def run_game(name, value_fn, d_beta, budgets, seeds, num_players=20, with_shapiq=True):
    rows = []
    specs = [("shapley", None), ("banzhaf", None), ("beta", d_beta)]
    t0 = time.perf_counter()
    table = coalition_values(value_fn, num_players)
    t_exact = time.perf_counter() - t0  # enumerating the 2^20 coalitions
    for index, d in specs:
        exact = indices_from_table(table, index, d=d)
        for method in estimators_for(index):
            draw = draw_size(method, num_players)
            taus = np.full((len(seeds), len(budgets)), np.nan)
            top = np.full_like(taus, np.nan)
            bottom = np.full_like(taus, np.nan)
            for si, seed in enumerate(seeds):
                state, done = None, 0
                for bi, budget in enumerate(budgets):
                    add = budget // draw - done
                    if add <= 0 and state is None:
                        continue
                    att = g.estimate(jax.random.key(seed), value_fn, num_players, index, d=d, estimator=method,
                                     evaluations=max(add, 0) * draw, state=state)
                    state, done = att.state, done + max(add, 0)
                    taus[si, bi], top[si, bi], bottom[si, bi] = _scores(np.asarray(att.values), exact)
            rows.append(_row(name, index, d, method, draw, budgets, taus, top, bottom, t_exact))
        if with_shapiq:
            rows += run_shapiq(name, np.asarray(table, np.float64), index, exact, budgets, seeds, num_players, t_exact)
    return rows


def large_game(trained, d_beta, budgets):
    """Seed-to-seed agreement of the Banzhaf and beta_d estimators on the 400-player game."""
    model, params, ds = trained
    value_fn, layout = g.network_game(model, params, ds.x_val, ds.y_val, layers=["fc1", "fc2"])
    p = layout.num_players
    print("\n400-player game (fc1 + fc2): Kendall tau between seeds 0 and 1 / median stderr")
    print("| index | estimator | " + " | ".join(f"{b:,} evals" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for index, d in (("banzhaf", None), ("beta", d_beta)):
        for method in estimators_for(index):
            draw = draw_size(method, p)
            cells = []
            for budget in budgets:
                a, b = (g.estimate(jax.random.key(s), value_fn, p, index, d=d, estimator=method,
                                   evaluations=max(1, budget // draw) * draw) for s in (0, 1))
                tau = kendalltau(np.asarray(a.values), np.asarray(b.values)).statistic
                cells.append(f"{tau:.3f} / {float(np.median(np.asarray(a.stderr))):.2e}")
            name = f"beta (d={d:.2f})" if d else index
            print(f"| {name} | {method} | " + " | ".join(cells) + " |", flush=True)


def table(rows, budgets) -> str:
    lines = ["| game | index | estimator | evals to median tau >= 0.9 | median tau / top-5 / bottom-5 precision at "
             + ", ".join(str(b) for b in budgets[2::2]) + " evals |", "|---|---|---|---|---|"]
    for r in rows:
        idx = f"beta (d={r['d']:.2f})" if r["index"] == "beta" else r["index"]
        cells = ", ".join(
            f"{r['median_tau'][i]:.2f}/{r['median_top_k'][i]:.1f}/{r['median_bottom_k'][i]:.1f}"
            for i in range(2, len(budgets), 2)
        )
        lines.append(f"| {r['game']} | {idx} | {r['method']} | {r['evals_to_tau_0.9'] or '> ' + str(budgets[-1])} "
                     f"| {cells} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, budgets up to 2^14")
    parser.add_argument("--out", default="", help="write the rows as JSON here")
    parser.add_argument("--large-only", action="store_true", help="only the 400-player part")
    args = parser.parse_args()
    try:
        import shapiq  # noqa: F401

        with_shapiq = True
    except ImportError:
        print('shapiq is not installed (pip install -e ".[bench]"): its approximators are skipped')
        with_shapiq = False
    seeds = range(3) if args.quick else range(5)
    budgets = [2**k for k in range(8, 15 if args.quick else 18)]
    trained = trained_lenet300()
    games = {"neuron": neuron_game(trained=trained), "majority": majority_game()}
    bands = g.uncertainty_bands(jax.random.key(9), games["neuron"], 20,
                                keep_fractions=np.linspace(0.1, 0.9, 9), num_samples=512)
    d = float(g.choose_d(bands, "max_std"))
    large_budgets = [2048, 8192] if args.quick else [2048, 8192, 32768]
    if args.large_only:
        large_game(trained, d, large_budgets)
        return
    rows = []
    for name, fn in games.items():
        rows += run_game(name, fn, d, budgets, list(seeds), with_shapiq=with_shapiq)
    print()
    print(f"{date.today()} | {platform.processor() or platform.machine()} | jax {jax.__version__} "
          f"| {jax.devices()[0].device_kind} | seeds {len(seeds)} | d (max_std on neuron game) = {d:.2f}")
    print(table(rows, budgets))
    large_game(trained, d, large_budgets)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
