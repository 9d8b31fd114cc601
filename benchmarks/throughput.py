"""Coalition values per second of each model's game, three ways.

(a) ``loop``: the full masked forward pass, jitted, called once per coalition from
    Python (how per-coalition neuron-Shapley code evaluates);
(b) ``batched``: the engine (vmap + jit over fixed-size chunks) without prefix
    caching; under vmap the mask-independent prefix is computed once per chunk;
(c) ``cached``: the engine with prefix caching (the default): the prefix once per game;
(d) as (c), with the suffix in bfloat16 (``network_game(..., dtype="bfloat16")``);
(e) LeNet-300-100 only: the same network written as a plain Linen module outside
    the project (no stages, no prefix cache), played through the generic Flax
    game (``gtap_jax/games/flax_models.py``): how close a user's model gets to (c).

Compile time (first call) is reported apart from the steady state, which is timed
with ``block_until_ready`` over fresh masks. The floor for one coalition value is
the suffix's FLOPs over the evaluation set (XLA's cost analysis of the cached
value function); "suffix GFLOP/s" is values/s times that floor, the useful work rate,
and "of peak" is that rate over the device's matrix-product peak measured in the
same run (a large square product in float32, and in bfloat16 for (d)).
"GFLOP per value (run)" is what one unbatched call of that mode computes.
Weights are random (throughput does not depend on training) and the evaluation
inputs are synthetic (``gtap_jax.data.synthetic``).

    python benchmarks/throughput.py            # a few minutes on 2 CPU cores
    python benchmarks/throughput.py --quick    # under a minute; ratios in the last lines
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import gtap_jax as g
from gtap_jax.data import synthetic
from gtap_jax.models import INPUT_SHAPES, LeNet5, alexnet, layout_for, lenet300, text_mlp
from gtap_jax.network import init_params


def games(quick: bool):
    """(name, model, input shape, classes, layers, examples)."""
    out = [
        ("lenet300", lenet300(), INPUT_SHAPES["lenet300"], 10, ["fc1", "fc2"], 1000),
        ("lenet5", LeNet5(), INPUT_SHAPES["lenet5"], 10, ["conv1", "conv2", "fc1", "fc2"], 250 if quick else 1000),
        ("text_mlp", text_mlp(20), (5000,), 20, ["fc1", "fc2", "fc3"], 1000),
    ]
    width = 1 / 8 if jax.devices()[0].platform == "cpu" else 1.0
    out.append((f"alexnet(w={width:g}) fc6", alexnet(200, width=width), INPUT_SHAPES["alexnet"], 200, ["fc6"],
                100 if quick else 500))
    return out


class PlainLeNet300(nn.Module):
    """LeNet-300-100 as a user would write it in Linen: the generic game's test subject."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(300, name="fc1")(x))
        x = nn.relu(nn.Dense(100, name="fc2")(x))
        return nn.Dense(10, name="out")(x)


def flops_of(fn, num_players) -> float:
    cost = jax.jit(fn).lower(jax.ShapeDtypeStruct((num_players,), jnp.bool_)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan")))


def matmul_peak(dtype: str, reps: int = 5) -> float:
    """FLOP/s of a large square matrix product on the default device (the device's practical peak)."""
    n = 2048 if jax.devices()[0].platform == "cpu" else 8192
    a, b = (jax.random.normal(k, (n, n), dtype) for k in jax.random.split(jax.random.key(0)))
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(reps):
        out = f(a, b)
    out.block_until_ready()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def time_loop(fn, masks) -> tuple[float, float]:
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    jitted(jnp.asarray(masks[0])).block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in masks[1:]:
        jitted(jnp.asarray(m)).block_until_ready()
    return compile_s, (len(masks) - 1) / (time.perf_counter() - t0)


def time_batched(fn, masks, chunk) -> tuple[float, float]:
    t0 = time.perf_counter()
    g.evaluate_coalitions(fn, masks[:chunk], plan=g.make_plan(chunk_size=chunk)).block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    g.evaluate_coalitions(fn, masks[chunk:], plan=g.make_plan(chunk_size=chunk)).block_until_ready()
    return compile_s, (len(masks) - chunk) / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(f"{date.today()} | {dev.platform} {dev.device_kind} | {platform.machine()} | jax {jax.__version__}")
    peak = {dt: matmul_peak(dt) for dt in ("float32", "bfloat16")}
    print(f"matmul peak of this device: float32 {peak['float32'] / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16'] / 1e9:.0f} GFLOP/s")
    print("| game | players | examples | mode | chunk | compile s | values/s | GFLOP per value (run) "
          "| suffix GFLOP per value (floor) | suffix GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for name, model, shape, classes, layers, n in games(args.quick):
        ds = synthetic(0, shape, classes, n_train=8, n_test=n)
        params = init_params(jax.random.key(0), model, shape)
        p = layout_for(model, layers).num_players
        rng = np.random.default_rng(0)
        cached, _ = g.network_game(model, params, ds.x_test, ds.y_test, layers=layers)
        plain, _ = g.network_game(model, params, ds.x_test, ds.y_test, layers=layers, cache_prefix=False)
        bf16, _ = g.network_game(model, params, ds.x_test, ds.y_test, layers=layers, dtype="bfloat16")
        n_loop = 20 if args.quick else 60
        # Timed first: counting FLOPs compiles the same jitted function, which would make this compile a cache hit.
        c_s, rate_loop = time_loop(plain, rng.random((n_loop, p)) < 0.5)
        flops = {"cached": flops_of(cached, p), "plain": flops_of(plain, p)}
        print(f"| {name} | {p} | {n} | (a) loop, full forward | 1 | {c_s:.2f} | {rate_loop:.1f} "
              f"| {flops['plain'] / 1e9:.4f} | {flops['cached'] / 1e9:.4f} | {rate_loop * flops['cached'] / 1e9:.1f} "
              f"| {rate_loop * flops['cached'] / peak['float32']:.1%} |", flush=True)
        chunks = [64, 256] if args.quick else [16, 64, 256, 1024]
        best = {}
        modes = (("(b) batched, no prefix cache", plain), ("(c) batched + prefix cache", cached),
                 ("(d) prefix cache, bfloat16", bf16))
        if name == "lenet300":  # the same weights in a plain Linen module, through the generic game
            generic, _ = g.network_game(PlainLeNet300(), {"params": params}, ds.x_test, ds.y_test, layers=layers)
            modes += (("(e) generic Linen module", generic),)
        for mode, fn in modes:
            for chunk in chunks:
                limit = g.engine.max_chunk_size(fn, p, g.engine.default_mesh())
                if chunk > limit:
                    print(f"| {name} | {p} | {n} | {mode} | {chunk} | - | over the memory limit ({limit}) | | | | |")
                    continue
                reps = 3 if args.quick else 6
                c_s, rate = time_batched(fn, rng.random((chunk * (reps + 1), p)) < 0.5, chunk)
                f = flops["plain" if "no prefix" in mode else "cached"]
                best[mode[:3]] = max(best.get(mode[:3], 0.0), rate)
                top = peak["bfloat16" if "bfloat16" in mode else "float32"]
                print(f"| {name} | {p} | {n} | {mode} | {chunk} | {c_s:.2f} | {rate:.1f} | {f / 1e9:.4f} "
                      f"| {flops['cached'] / 1e9:.4f} | {rate * flops['cached'] / 1e9:.1f} "
                      f"| {rate * flops['cached'] / top:.1%} |", flush=True)
        c = best.get("(c)", np.nan)
        ratios.append((name, c / rate_loop, c / best.get("(b)", np.nan), best.get("(d)", np.nan) / c,
                       best.get("(e)", np.nan) / c))
    print()
    for name, vs_loop, vs_plain, bf16_gain, generic in ratios:
        line = f"{name}: (c)/(a) = {vs_loop:.1f}x   (c)/(b) = {vs_plain:.1f}x   (d)/(c) = {bf16_gain:.2f}x"
        print(line + (f"   (e)/(c) = {generic:.2f}x" if np.isfinite(generic) else ""))


if __name__ == "__main__":
    main()
