"""Precision per value of the candidate estimators on network games, and the settled share against the cap.

Part 1, variance per coalition value of each player's Shapley sample, in one run per game (neg_loss on 500
validation images, trained networks):
  plain permutations against antithetic pairs (an order and its reverse) and against m cyclically shifted
  copies of one order (each player at m evenly spaced positions: a systematic stratification by position),
  at equal numbers of chains;
  paired Banzhaf draws against the same draws with a control variate whose mean is known or cheap: the
  coalition's size |T| (mean P/2), or its value v(T). The variance left is 1 - rho^2 of each player's.
Part 3: the Banzhaf value by complementary stars (a uniform coalition and its complement, each with its flips;
the pairing trick) against paired stars (one coalition): variance per coalition value of each player's sample,
summed over players / median player (above 1: complementary stars are more precise per value), and the top-80
agreement of two independent estimates at equal values.
Part 4: on games valued whole, the Banzhaf value by regression against Kernel Banzhaf (the regression on
complementary pairs): squared standard errors at equal values, and the top-80 agreement of two estimates.
Part 5: the Shapley pilot (gtap_jax.indices.pilot) on the same four games: its choice on three keys against a
pilot of 32x its orders.
Part 6: a settled round's focused samples (gtap_jax.indices.focus) on the 64 players nearest each game's
top-80 (top-20%) cutoff: variance per coalition value of a sample of independent draws over the library's
samples (complementary pairs; for Shapley, Owen draws with d stratified), and for Shapley of complementary
pairs with d drawn freely (above 1: the library's samples are more precise per value).
Part 7: the Shapley value by permutations, antithetic orders and Owen sampling (4 complementary pairs of stars,
their shares stratified), at equal values: variance per value and values per second, stars valued by their
known flips.
Part 2: the default run's top_n round (LeNet-300-100, cutoffs 200/120/80/40/20 of 400, delta 0.05, epsilon
0.1 of the mean unit's part, no focus) and a one-cutoff round (top 80), settled mode at caps of 2^17-2^21
values: values spent, seconds, settled share.

    python benchmarks/precision.py            # every part (about 20 minutes on 2 CPU cores)
    python benchmarks/precision.py --part 1
    python benchmarks/precision.py --part 3   # about 7 minutes
    python benchmarks/precision.py --part 4   # about 4 minutes
    python benchmarks/precision.py --part 5
    python benchmarks/precision.py --part 6   # about 4 minutes
    python benchmarks/precision.py --part 7
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

import gtap_jax as g
from gtap_jax import data
from gtap_jax.indices import ESTIMATORS, draw_size, make_estimator
from gtap_jax.indices.estimators.permutation import prefix_marginals, prefix_masks, random_ranks
from gtap_jax.indices.focus import focused_samples, sample_sizes
from gtap_jax.indices.pilot import PILOT_VALUES, shapley_pilot
from gtap_jax.models import MODELS

# the emotion tweets from a local copy: $GTAP_TEST_DATA/emotion (CONTRIBUTING.md), by default ../shared/data
TWEETS = Path(os.environ.get("GTAP_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA = {"mnist": {}, "emotion": {"source": "path", "path": str(TWEETS / "emotion")}}
# (model, data set, player layers, training epochs) of the four trained networks every part measures
GAMES = (("lenet300", "mnist", ("fc1", "fc2"), 10), ("lenet300", "mnist", ("fc2",), 10),
         ("lenet5", "mnist", ("fc1", "fc2"), 5), ("text_mlp", "emotion", None, 5))


@functools.cache  # every part measures the same trained networks: trained once a run
def trained_game(name, dataset, layers, epochs):
    ds = data.load(dataset, **DATA[dataset])
    model = MODELS[name](ds.num_classes)
    params = g.network.train(jax.random.key(0), model, ds.x_train, ds.y_train, epochs=epochs, progress=False).params
    return g.network_game(model, params, ds.x_val[:500], ds.y_val[:500], metric="neg_loss", layers=layers)


def marginals(fn, ranks):
    """``[B, P]`` marginal contributions along the orders ``ranks[B, P]`` (chains where the game offers them)."""
    masks = jax.vmap(prefix_masks)(ranks)
    if isinstance(fn, g.engine.ChainValueFn):
        values = g.engine.batched_chain_fn(fn, 1)(masks)
    else:
        values = g.evaluate_coalitions(fn, masks.reshape(-1, masks.shape[-1])).reshape(masks.shape[:2])
    return np.asarray(prefix_marginals(masks, values))


def variance_ratios(name, dataset, layers, epochs, draws=128):
    t0 = time.perf_counter()
    fn, layout = trained_game(name, dataset, layers, epochs)
    p = layout.num_players
    base = np.stack([np.asarray(random_ranks(jax.random.key(7), i, p)) for i in range(2 * draws)])
    plain = marginals(fn, base).var(axis=0, ddof=1)  # per chain, over 2 x draws orders
    live = plain > 0
    cells = []
    shifted = [lambda r, m=m: [(r + k * p // m) % p for k in range(m)] for m in (2, 4)]
    for copies in (lambda r: [r, p - 1 - r], *shifted):
        parts = copies(base[: 2 * draws // len(copies(base[:1]))])  # as many chains as the plain orders
        block = np.mean([marginals(fn, part) for part in parts], axis=0)
        per_chain = len(parts) * block.var(axis=0, ddof=1)
        cells.append(f"{plain.sum() / per_chain.sum():.2f} / {np.median(plain[live] / per_chain[live]):.2f}")
    stars = np.asarray(jax.vmap(make_estimator(p, "banzhaf", estimator="paired").draw, in_axes=(None, 0))(
        jax.random.key(3), np.arange(2 * draws)))
    values = np.asarray(g.engine.evaluate_stars(fn, stars) if isinstance(fn, g.engine.ChainValueFn) else
                        g.evaluate_coalitions(fn, stars.reshape(-1, p)).reshape(stars.shape[:2]))
    coalition = stars[:, 0, :]
    delta = np.where(coalition, values[:, :1] - values[:, 1:], values[:, 1:] - values[:, :1])
    keep = delta.std(axis=0) > 0
    for control in (coalition.sum(axis=1).astype(float), values[:, 0]):
        rho = np.array([np.corrcoef(delta[:, i], control)[0, 1] for i in np.flatnonzero(keep)])
        cells.append(f"{np.median(rho ** 2):.3f}")
    print(f"| {name} {'+'.join(layout.names)} | {p} | {' | '.join(cells)} | {time.perf_counter() - t0:.0f} s |",
          flush=True)


def _stars(fn, estimator, p, draws, key):
    """Each draw's per-player sample of ``estimator`` (paired or complementary stars) on ``fn``."""
    est, entry = make_estimator(p, "banzhaf", estimator=estimator), ESTIMATORS[estimator]
    masks = jax.vmap(est.draw, in_axes=(None, 0))(jax.random.key(key), np.arange(draws))
    values = (g.engine.batched_chain_fn(fn, entry.chains, star=True)(masks) if isinstance(fn, g.engine.ChainValueFn)
              else g.evaluate_coalitions(fn, masks.reshape(-1, p)).reshape(masks.shape[:2]))
    halves = np.split(np.asarray(values), entry.chains, axis=1), np.split(np.asarray(masks), entry.chains, axis=1)
    marginals = [np.where(m[:, 0, :], v[:, :1] - v[:, 1:], v[:, 1:] - v[:, :1])
                 for v, m in zip(*halves, strict=True)]
    return np.mean(marginals, axis=0)


def complementary_ratio(name, dataset, layers, epochs, draws=256):
    t0 = time.perf_counter()
    fn, layout = trained_game(name, dataset, layers, epochs)
    p = layout.num_players
    paired = _stars(fn, "paired", p, draws, 1)
    comp = _stars(fn, "complementary", p, draws, 2)
    per_value = {"paired": paired.var(axis=0, ddof=1) * (p + 1),
                 "complementary": comp.var(axis=0, ddof=1) * (2 * p + 2)}
    live = per_value["complementary"] > 0
    ratio = per_value["paired"] / np.where(live, per_value["complementary"], 1)
    overlap = []
    for name_, est_draws in (("paired", draws), ("complementary", draws // 2)):  # equal values for both
        a, b = (_stars(fn, name_, p, est_draws, k).mean(axis=0) for k in (11, 12))
        overlap.append(len(set(np.argsort(-a)[:80]) & set(np.argsort(-b)[:80])) / 80)
    total = per_value["paired"].sum() / per_value["complementary"].sum()
    print(f"| {name} {'+'.join(layout.names)} | {p} | {total:.2f} / {np.median(ratio[live]):.2f} |"
          f" {overlap[0]:.3f} | {overlap[1]:.3f} | {time.perf_counter() - t0:.0f} s |",
          flush=True)


def pair_regression_ratio(name, dataset, layers, epochs, values=16384):
    """Regression at d = 0.5 against Kernel Banzhaf (the regression on complementary pairs), on the game valued
    whole (regression's draws are single coalitions: no stars), at equal values."""
    t0 = time.perf_counter()
    fn, layout = trained_game(name, dataset, layers, epochs)
    p = layout.num_players
    whole = lambda m: fn(m)  # noqa: E731 (no chains: every coalition valued whole)
    runs = {e: [g.estimate(jax.random.key(k), whole, p, "banzhaf", evaluations=values, estimator=e)
                for k in (21, 22)] for e in ("regression", "kernel_banzhaf")}
    var = {e: np.mean([np.square(np.asarray(r.stderr)) for r in rs], axis=0) for e, rs in runs.items()}
    ratio = var["regression"] / var["kernel_banzhaf"]
    overlap = {e: len(set(np.argsort(-np.asarray(rs[0].values))[:80]) & set(np.argsort(-np.asarray(rs[1].values))[:80]))
               / 80 for e, rs in runs.items()}
    print(f"| {name} {'+'.join(layout.names)} | {p} | {values:,} | {ratio.sum() / len(ratio):.2f} /"
          f" {np.median(ratio):.2f} | {overlap['regression']:.3f} | {overlap['kernel_banzhaf']:.3f} |"
          f" {time.perf_counter() - t0:.0f} s |", flush=True)


def settled_share_by_cap():
    fn, layout = trained_game("lenet300", "mnist", ("fc1", "fc2"), 10)
    p = layout.num_players
    epsilon = g.strategies.share_epsilon(fn, p, 0.1)
    print("\n| index | cap | cutoffs | values | seconds | settled share |\n|---|---|---|---|---|---|")
    for index in ("banzhaf", "shapley"):
        for cap in (1 << 17, 1 << 19, 1 << 21):
            for cutoffs in ((200, 120, 80, 40, 20), (80,)):
                t0 = time.perf_counter()
                settle = g.Settle(0.05, epsilon, cap, focus=False)
                scores = g.by_estimate(index, settle=settle)(jax.random.key(3), fn, p, cutoffs)
                print(f"| {index} | {cap:,} | {'/'.join(map(str, cutoffs))} | {scores.num_evaluations:,} |"
                      f" {time.perf_counter() - t0:.1f} | {scores.settled_share:.3f} |", flush=True)


def pilot_choices(name, dataset, layers, epochs, keys=3):
    """The Shapley pilot (gtap_jax.indices.pilot) on a trained network's game: its ratio and choice on ``keys`` keys
    against a reference, the same comparison on 32x the pilot's orders."""
    fn, layout = trained_game(name, dataset, layers, epochs)
    p = layout.num_players
    t0 = time.perf_counter()
    reference = shapley_pilot(jax.random.key(100), fn, p, values=32 * PILOT_VALUES)
    pilots = [shapley_pilot(jax.random.key(i), fn, p) for i in range(keys)]
    label = f"{name} {'+'.join(layers or ('fc1', 'fc2', 'fc3'))}"
    print(f"| {label} | {p} | {reference.ratio:.2f} ({reference.estimator}) |"
          f" {' / '.join(f'{x.ratio:.2f}' for x in pilots)} | {', '.join(x.estimator for x in pilots)} |"
          f" {pilots[0].num_evaluations:,} | {time.perf_counter() - t0:.0f} s |", flush=True)


def _flips(fn, coalitions, players):
    """``[B, U]``: each of ``players``' marginal at each of ``coalitions[B, P]`` (stars)."""
    values = np.asarray(g.engine.evaluate_flips(fn, coalitions, players), np.float64)
    return np.where(coalitions[:, players], values[:, :1] - values[:, 1:], values[:, 1:] - values[:, :1])


def focused_ratios(name, dataset, layers, epochs, draws=2048):
    t0 = time.perf_counter()
    fn, layout = trained_game(name, dataset, layers, epochs)
    p, rng, cells = layout.num_players, np.random.default_rng(0), []
    for index, kind, d in (("shapley", "owen", None), ("banzhaf", "flip", 0.5)):
        rough = g.estimate(jax.random.key(9), fn, p, index, evaluations=1 << 15).values
        cut = min(80, p // 5)  # the 64 players nearest the top-80 (top-20%) cutoff
        players = np.sort(np.argsort(-np.asarray(rough))[max(0, cut - 32): cut + 32])
        q = rng.random(draws) if d is None else np.full(draws, d)
        coalitions = rng.random((draws, p)) < q[:, None]
        single = _flips(fn, coalitions, players).var(axis=0, ddof=1)
        m = sample_sizes(kind, d)[0]
        ours = m * focused_samples(jax.random.key(5), fn, p, kind, d, players, draws // m, g.make_plan(), m).var(
            axis=0, ddof=1)
        live = (single > 0) & (ours > 0)  # a dead unit's samples are all 0
        cells.append(f"{np.median(single[live] / ours[live]):.2f}")
        if d is None:  # complementary pairs, d free
            half = coalitions[: draws // 2]
            pairs = (_flips(fn, half, players) + _flips(fn, ~half, players)) / 2
            cells.append(f"{np.median(single[live] / (2 * pairs.var(axis=0, ddof=1))[live]):.2f}")
    print(f"| {name} {'+'.join(layout.names)} | {p} | {' | '.join(cells)} | {time.perf_counter() - t0:.0f} s |",
          flush=True)


def shapley_per_second(name, dataset, layers, epochs, stars=512):
    """Shapley estimators at equal values on a trained network's game: each one's variance per value (summed over
    players) and values per second (compiled beforehand), and their product against Owen sampling's."""
    fn, layout = trained_game(name, dataset, layers, epochs)
    p, cells, per_second = layout.num_players, [], {}
    for estimator in ("permutation", "antithetic", "owen"):
        g.estimate(jax.random.key(0), fn, p, "shapley", evaluations=draw_size(estimator, p), estimator=estimator)
        t0 = time.perf_counter()
        att = g.estimate(jax.random.key(1), fn, p, "shapley", evaluations=stars * (p + 1), estimator=estimator)
        variance = float(np.sum(np.asarray(att.stderr, np.float64) ** 2)) * att.num_evaluations
        rate = att.num_evaluations / (time.perf_counter() - t0)
        per_second[estimator] = variance / rate
        cells.append(f"{variance:.3g}, {rate:,.0f}")
    best = min(per_second["permutation"], per_second["antithetic"])
    print(f"| {name} {'+'.join(layout.names)} | {p} | {stars * (p + 1):,} | {' | '.join(cells)} |"
          f" {best / per_second['owen']:.2f} |", flush=True)


# Each part run over every game: its function and the header of its table (part 2, the settled share by cap, runs
# once).
TABLES = {
    1: (variance_ratios,
        "Variance per value, plain permutations over each candidate (summed over players / median player);"
        " median rho^2 of the paired Banzhaf flips with each control\n\n| game | players | antithetic |"
        " 2 shifts | 4 shifts | CV size: rho^2 | CV v(T): rho^2 | time |\n|" + "---|" * 8),
    3: (complementary_ratio,
        "\nBanzhaf: variance per value of paired stars over complementary stars (summed / median player), and"
        " the top-80 overlap of two independent estimates of each at equal values\n\n| game | players |"
        " paired / complementary | top-80 overlap, paired | top-80 overlap, complementary | time |\n|"
        + "---|" * 6),
    4: (pair_regression_ratio,
        "\nBanzhaf on games valued whole: the squared standard error of regression (d = 0.5) over Kernel"
        " Banzhaf's (complementary pairs), at equal values (mean over players / median player; above 1: the"
        " pairs are more precise), and the top-80 overlap of two independent estimates of each\n\n| game |"
        " players | values | regression / Kernel Banzhaf | top-80 overlap, regression | top-80 overlap,"
        " Kernel Banzhaf | time |\n|" + "---|" * 7),
    5: (pilot_choices,
        "\nThe Shapley pilot: permutations' variance per value over antithetic orders' (above 1: antithetic), on"
        " the pilot's orders for three keys and on 32x as many (the reference)\n\n| game | players |"
        " reference | pilot, 3 keys | chosen | pilot values | time |\n|" + "---|" * 7),
    6: (focused_ratios,
        "\nFocused samples on the 64 players nearest the top-80 cutoff: variance per value of independent draws"
        " over the library's samples (median player; above 1: the library's are more precise), and for Shapley"
        " over complementary pairs with d drawn freely\n\n| game | players | Shapley: library (pairs, d"
        " stratified) | Shapley: pairs, d free | Banzhaf: library (pairs) | time |\n|" + "---|" * 6),
    7: (shapley_per_second,
        "\nShapley estimators at equal values: variance per value (summed over players) and values per second;"
        " the best of permutations and antithetic orders over Owen sampling in variance per second (above 1:"
        " Owen's is smaller)\n\n| game | players | values | permutation | antithetic | owen | best / owen |\n|"
        + "---|" * 7),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", type=int, choices=(1, 2, 3, 4, 5, 6, 7))
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__},"
          f" {platform.machine()}\n")
    for part in range(1, 8):
        if args.part not in (None, part):
            continue
        if part == 2:
            settled_share_by_cap()
            continue
        measure, header = TABLES[part]
        print(header)
        for game in GAMES:
            measure(*game)

if __name__ == "__main__":
    main()
