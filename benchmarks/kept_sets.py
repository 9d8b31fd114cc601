"""What each method's kept set is worth to the game: a run's masks valued on the game's own examples.

    python benchmarks/kept_sets.py runs/repro/lenet300_mnist-s0-verdict --targets 0.5 0.3 [--json OUT]

For every method and target of a finished run (``masks.json``), the value v(S) of its kept set S in the game
the run played (``game.metric`` on the game's evaluation examples, silenced players as ``game.masked_value``
says), the same on the selection set (negative cross-entropy and accuracy; runs with a selection set), and the
run's test accuracy of that network without retraining. It tells two failures apart: a method whose kept set
has a lower game value than another's was outranked on the game itself (its scores do not find high-value
sets), while one whose game value is higher but whose held-out accuracy is lower overfits the game's examples.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np

from gtap_jax import network_game

run_lib = importlib.import_module("gtap_jax.experiment.run")  # the module, not the function it exports


def kept_set_values(workdir: Path, targets: list[str]) -> list[dict]:
    """One row per method and target: ``method``, ``target``, ``players``, ``game`` (v(S)), ``selection_loss``,
    ``selection_accuracy`` (None without a selection set) and ``test_accuracy`` (the run's, no retraining)."""
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    ctx = run_lib.prepare(config, workdir)
    run_lib.train_network(ctx)  # restores the trained network of the run
    run_lib.build_games(ctx)
    held_out = {}
    if ctx.selection_data is not None:
        for metric in ("neg_loss", "accuracy"):
            held_out[metric], _ = network_game(ctx.network, None, *ctx.selection_data, layers=ctx.layout.names,
                                               metric=metric, masked_value=config.game.masked_value)
    rows = json.loads((workdir / "results.json").read_text())["rows"]
    test = {(r["method"], f"{r['target']:g}" if isinstance(r["target"], float) else str(r["target"])): r["accuracy"]
            for r in rows if r["retrain"] == "none" and r.get("seed") in (None, 0)}
    out = []
    for method, by_target in json.loads((workdir / "masks.json").read_text()).items():
        for target in targets:
            if target not in by_target:
                continue
            mask = np.zeros(ctx.layout.num_players, bool)
            mask[by_target[target]["kept"]] = True
            m = jnp.asarray(mask)
            out.append({"method": method, "target": target, "players": int(mask.sum()),
                        "game": float(ctx.value_fn(m)),
                        "selection_loss": float(held_out["neg_loss"](m)) if held_out else None,
                        "selection_accuracy": float(held_out["accuracy"](m)) if held_out else None,
                        "test_accuracy": test.get((method, target))})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--targets", nargs="+", required=True, help="targets as masks.json names them, e.g. 0.5")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = kept_set_values(args.workdir, args.targets)
    head = ("target", "method", "players", "v(S) game", "sel. -CE", "sel. acc", "test acc")
    print("{:>6} {:<30} {:>7} {:>10} {:>9} {:>8} {:>8}".format(*head))
    for r in sorted(rows, key=lambda r: (r["target"], -r["game"])):
        sel = (f"{r['selection_loss']:9.3f} {r['selection_accuracy']:8.3f}" if r["selection_loss"] is not None
               else f"{'':9} {'':8}")
        test = "" if r["test_accuracy"] is None else f"{r['test_accuracy']:8.3f}"
        print(f"{r['target']:>6} {r['method']:<30} {r['players']:7d} {r['game']:10.3f} {sel} {test}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
