"""Incremental evaluation along permutation chains against whole coalitions, in one run.

For MLPs on the embedded MNIST (random weights; the cost does not depend on them): the game over
every hidden unit, valued by neg_loss on ``n`` validation images; with ``--conv``, LeNet5's and a
ResNet's conv channels. Reports coalition values per
second of (a) the batched engine on whole coalitions and (b) chains valued incrementally
(`gtap_jax/network/modules/incremental.py`), their ratio, and the largest difference between the two on the
same coalitions; then the wall time of a permutation-Shapley estimate of ``--evaluations`` values
through chains.

    python benchmarks/chains.py                  # LeNet-300-100 (400 players) and 784-4096-4096-10 (8,192)
    python benchmarks/chains.py --quick          # LeNet-300-100 only
    python benchmarks/chains.py --quick --flax   # and LeNet-300-100 as a Linen and as an NNX model
    python benchmarks/chains.py --quick --conv   # and games whose players feed a Conv (LeNet5, a ResNet)
    python benchmarks/chains.py --settle 786432  # also: the 8,192-player MLP trained, settled top-20%
                                                 # decisions (Shapley, Banzhaf) of at most that many values
    python benchmarks/chains.py --quick --settle 786432 --settle-indices shapley   # Shapley's only
    python benchmarks/chains.py --quick --settle 1572864 --stop-share 0.95   # rounds ending at 95% settled
    python benchmarks/chains.py --quick --flips  # and stars of known flips by layer, 784-4096-4096-10 (built-in, Linen)
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import flax.linen as nn
import jax
import numpy as np
from flax import nnx

import gtap_jax as g
from gtap_jax import data
from gtap_jax.indices import make_estimator
from gtap_jax.models import MLP, lenet5, resnet
from gtap_jax.network import init_params


class LinenMLP(nn.Module):
    """The same MLP as a user would write it in Linen."""

    hidden: tuple

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, name=f"fc{i + 1}")(h))
        return nn.Dense(10, name="out")(h)


class NNXMLP(nnx.Module):
    """The same MLP as a user would write it in NNX."""

    def __init__(self, hidden, inputs, rngs):
        widths = (inputs, *hidden)
        self.fc = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.out = nnx.Linear(widths[-1], 10, rngs=rngs)

    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for layer in self.fc:
            h = nnx.relu(layer(h))
        return self.out(h)


def game(framework, hidden, x, y):
    """The game over every hidden unit of the MLP written for ``framework`` (random weights)."""
    if framework == "built-in":
        model = MLP(hidden=hidden, num_classes=10)
        return g.network_game(model, init_params(jax.random.key(0), model, x.shape[1:]), x, y, metric="neg_loss")
    if framework == "linen":
        model = LinenMLP(tuple(hidden))
        variables = model.init(jax.random.key(0), x[:1])
        return g.network_game(model, variables, x, y, layers=[f"fc{i + 1}" for i in range(len(hidden))],
                              metric="neg_loss")
    model = NNXMLP(hidden, int(np.prod(x.shape[1:])), nnx.Rngs(0))
    return g.network_game(model, None, x, y, layers=[f"fc/{i}" for i in range(len(hidden))], metric="neg_loss")


def measure(hidden, n, whole_values, evaluations, framework="built-in"):
    """One MLP's game: values/s whole, along permutation chains and over paired stars; an estimate through each."""
    ds = data.load("mnist")
    fn, layout = game(framework, hidden, ds.x_val[:n], ds.y_val[:n])
    name = "-".join(str(h) for h in hidden)
    measure_game(f"{name} ({framework})", fn, layout.num_players, n, whole_values, evaluations)


def conv_games():
    """``(label, fn, players, images)`` of games whose first player layer feeds a Conv (or a Dense through a
    flattened map): LeNet5's conv1, its conv layers and all its layers on 500 images; resnet_mnist's ResNet (the
    config's widths, blocks and 256 images) over its blocks' inner channels, and over all its groups (a residual
    stream first: valued whole)."""
    ds = data.load("mnist")
    x, y = ds.x_val[:500], ds.y_val[:500]
    lenet = lenet5()
    params = init_params(jax.random.key(0), lenet, x.shape[1:])
    for layers in (["conv1"], ["conv1", "conv2"], None):
        fn, layout = g.network_game(lenet, params, x, y, layers=layers, metric="neg_loss")
        yield f"LeNet5 {'+'.join(layers) if layers else 'all layers'}", fn, layout.num_players, 500
    x, y = x[:256], y[:256]
    net = resnet()
    variables = net.init(jax.random.key(0), x[:1])
    inner = [layer for layer in net.groups() if "/conv1:" in layer]
    for label, layers in (("inner groups", inner), ("all groups", list(net.groups()))):
        fn, layout = g.network_game(net, variables, x, y, layers=layers, metric="neg_loss")
        yield f"ResNet {label}", fn, layout.num_players, 256


def measure_game(label, fn, p, n, whole_values, evaluations):
    """Values/s of ``fn`` whole, along permutation chains and over paired stars; an estimate through each."""
    if not isinstance(fn, g.engine.ChainValueFn):
        masks = np.asarray(jax.random.bernoulli(jax.random.key(1), 0.5, (whole_values, p)))
        np.asarray(g.evaluate_coalitions(fn, masks))  # compile
        t0 = time.perf_counter()
        np.asarray(g.evaluate_coalitions(fn, masks))
        rate = whole_values / (time.perf_counter() - t0)
        print(f"| {label} | {p} | {n} | {rate:,.0f} | valued whole | valued whole | - | - |", flush=True)
        return
    plan = g.make_plan(fn, p)
    draws = {}
    for index, estimator in (("shapley", "permutation"), ("banzhaf", "paired")):
        draw = make_estimator(p, index, estimator=estimator).draw
        draws[estimator] = np.asarray(jax.vmap(draw, in_axes=(None, 0))(jax.random.key(1),
                                                                        np.arange(max(1, 4096 // (p + 1)))))
    chain = g.engine.batched_chain_fn(fn, 1, plan.mesh)
    flat = draws["permutation"].reshape(-1, p)[:whole_values]
    rates, out = {}, {}
    for name, run in (("whole", lambda: g.evaluate_coalitions(fn, flat, plan=plan)),
                      ("chains", lambda: chain(g.engine.place(draws["permutation"], plan.mesh))),
                      ("stars", lambda: g.engine.evaluate_stars(fn, draws["paired"], plan=plan))):
        np.asarray(run())  # compile
        t0 = time.perf_counter()
        out[name] = np.asarray(run()).reshape(-1)
        rates[name] = out[name].size / (time.perf_counter() - t0)
    diff = float(np.max(np.abs(out["whole"] - out["chains"][: out["whole"].size])))
    stars_whole = np.asarray(g.evaluate_coalitions(fn, draws["paired"].reshape(-1, p)[:whole_values], plan=plan))
    diff = max(diff, float(np.max(np.abs(stars_whole - out["stars"][: stars_whole.size]))))
    seconds = {}
    for index, estimator in (("shapley", "permutation"), ("banzhaf", "paired")):
        t0 = time.perf_counter()
        g.estimate(jax.random.key(2), fn, p, index, evaluations=evaluations, estimator=estimator, plan=plan)
        seconds[estimator] = time.perf_counter() - t0
    times = {name: rates[name] / rates["whole"] for name in ("chains", "stars")}
    ratio = {name: f"{rates[name]:,.0f} ({t:.{0 if t >= 10 else 1}f}x)" for name, t in times.items()}
    print(f"| {label} | {p} | {n} | {rates['whole']:,.0f} | {ratio['chains']} |"
          f" {ratio['stars']} | {diff:.1e} | {seconds['permutation']:.1f} s / {seconds['paired']:.1f} s |", flush=True)


def flips_by_layer(hidden=(4096, 4096), n=250, flips=512):
    """Values/s of stars of ``flips`` players of one layer (8 coalitions, each with its flips), given as masks
    (``evaluate_stars``) and as known flips (``evaluate_flips``: each flip takes its layer's path), per framework."""
    ds = data.load("mnist")
    rng = np.random.default_rng(0)
    print(f"\n| MLP | flipped layer | stars as masks: values/s | known flips: values/s | ratio | largest difference |"
          f"\n|{'---|' * 6}")
    notes = []
    for framework in ("built-in", "linen"):
        fn, layout = game(framework, hidden, ds.x_val[:n], ds.y_val[:n])
        bases = rng.random((8, layout.num_players)) < 0.5
        for name, (start, stop) in layout.offsets().items():
            players = np.sort(rng.choice(np.arange(start, stop), flips, replace=False)).astype(np.int32)
            stars = np.repeat(bases[:, None], 1 + flips, axis=1)
            stars[:, 1 + np.arange(flips), players] ^= True
            rates, out = {}, {}
            for kind, run, args in (("masks", g.engine.evaluate_stars, (fn, stars)),
                                    ("flips", g.engine.evaluate_flips, (fn, bases, players))):
                np.asarray(run(*args))  # compile
                t0 = time.perf_counter()
                out[kind] = np.asarray(run(*args))
                rates[kind] = out[kind].size / (time.perf_counter() - t0)
            print(f"| {'-'.join(map(str, hidden))} ({framework}) | {name} | {rates['masks']:,.0f} |"
                  f" {rates['flips']:,.0f} | {rates['flips'] / rates['masks']:.1f}x |"
                  f" {np.abs(out['masks'] - out['flips']).max():.1e} |", flush=True)
        # A few flips: the first consumer's product dominates, and a coalition and its complement share one.
        half = rng.random((8, layout.num_players)) < 0.5
        pair_bases, few = np.stack([half, ~half], axis=1).reshape(16, -1), np.arange(0, 8192, 256, dtype=np.int32)
        for pairs in (False, True):
            g.engine.evaluate_flips(fn, pair_bases, few, pairs=pairs)  # compile
            t0 = time.perf_counter()
            np.asarray(g.engine.evaluate_flips(fn, pair_bases, few, pairs=pairs))
            rate = 16 * 33 / (time.perf_counter() - t0)
            notes.append(f"{framework}, 16 coalitions with 32 flips each,"
                         f" {'as 8 complementary pairs' if pairs else 'one at a time'}: {rate:,.0f} values/s")
    print("\n" + "\n".join(notes), flush=True)


def settle(cap: int, indices: tuple[str, ...] = ("shapley", "banzhaf"), stop_share: float = 1.0):
    """The 784-4096-4096-10 MLP trained 2 epochs; its top 20% of 8,192 units by Shapley and by Banzhaf (or
    ``indices`` of them), settled (a round ending at ``stop_share`` settled)."""
    ds = data.load("mnist")
    model = MLP(hidden=(4096, 4096), num_classes=10)
    t0 = time.perf_counter()
    params = g.network.train(jax.random.key(0), model, ds.x_train, ds.y_train, epochs=2, progress=False).params
    trained = time.perf_counter() - t0
    fn, layout = g.network_game(model, params, ds.x_val[:250], ds.y_val[:250], metric="neg_loss")
    p = layout.num_players
    options = g.Settle(0.05, g.strategies.share_epsilon(fn, p, 0.1), cap, stop_share=stop_share)
    print(f"\n8,192-player MLP (test accuracy {g.accuracy(model, params, ds.x_test, ds.y_test):.3f}, trained in"
          f" {trained:.0f} s): top {p // 5} units, settled mode (delta 0.05, epsilon 0.1 of the mean unit's part,"
          f" at most {cap:,} values, ending at {stop_share:.0%} settled)\n\n| index | estimator | values | seconds |"
          f" settled | settled share |\n|{'---|' * 6}")
    kept = {}
    for index, estimator in (("shapley", "owen"), ("banzhaf", "complementary")):
        if index not in indices:
            continue
        t0 = time.perf_counter()
        scores = g.by_estimate(index, estimator=estimator, settle=options)(jax.random.key(3), fn, p, (p // 5,))
        seconds = time.perf_counter() - t0
        kept[index] = set(scores.order()[: p // 5].tolist())
        print(f"| {index} | {estimator} | {scores.num_evaluations:,} | {seconds:.0f} | {scores.settled} |"
              f" {scores.settled_share:.3f} |", flush=True)
    if len(kept) == 2:
        print(f"\nShapley's and Banzhaf's kept sets share"
              f" {len(kept['shapley'] & kept['banzhaf']) / (p // 5):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--settle", type=int, default=0, metavar="CAP")
    parser.add_argument("--settle-indices", nargs="+", default=["shapley", "banzhaf"], choices=["shapley", "banzhaf"])
    parser.add_argument("--stop-share", type=float, default=1.0, help="settled rounds end at this share settled")
    parser.add_argument("--flax", action="store_true", help="also LeNet-300-100 written in Linen and in NNX")
    parser.add_argument("--conv", action="store_true", help="also LeNet5's and a ResNet's conv layers")
    parser.add_argument("--flips", action="store_true", help="also stars of known flips, by layer")
    args = parser.parse_args()
    print(f"{date.today()}, {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__},"
          f" {platform.machine()}\n")
    print(f"| MLP | players | images | whole: values/s | chains: values/s | stars: values/s | largest difference |"
          f" 32,768 values: permutation Shapley / paired Banzhaf |\n|{'---|' * 8}")
    measure((300, 100), 500, 4010, 32768)
    if args.flax:
        measure((300, 100), 500, 4010, 32768, "linen")
        measure((300, 100), 500, 4010, 32768, "nnx")
    if not args.quick:
        measure((4096, 4096), 250, 128, 32768)
    if args.conv:
        print(f"\n| game | players | images | whole: values/s | chains: values/s | stars: values/s | largest difference"
              f" | 4,096 values: permutation Shapley / paired Banzhaf |\n|{'---|' * 8}")
        for label, fn, p, n in conv_games():
            measure_game(label, fn, p, n, 1024, 4096)
    if args.flips:
        flips_by_layer()
    if args.settle:
        settle(args.settle, tuple(args.settle_indices), args.stop_share)


if __name__ == "__main__":
    main()
