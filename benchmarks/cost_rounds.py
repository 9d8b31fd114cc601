"""Iterated pruning by value per unit of cost (``gtap.cost_rounds``) against its rounds by value, from run copies.

    python benchmarks/cost_rounds.py docs/reproduction_runs lenet300_mnist [--view verdict-costrounds]

Reads ``FOLDER/<config>-s<seed>-<view>.json`` (the copies of ``benchmarks/reproduction.py run ... --suffix
verdict-costrounds --set gtap.cost_rounds=True``; a run folder's ``<name>/results.json`` works too) and prints, for
the networks without retraining, mean over seeds:

1. each index's ``iterated_pruning/<index>@cost`` minus ``iterated_pruning/<index>`` on the selection set, and the
   seeds where it is positive (the test set in brackets), by target;
2. the neurons each kept (by cost / by value), by target;
3. the GTAP variant the selection set picks with the cost-round variants among the candidates against the one it
   picks without them (the run's rule, :func:`gtap_jax.experiment.report.select_rows`, over the other candidates),
   by test accuracy;
4. the GTAP variant picked with them against the baseline the run picks: the single-view comparison
   (uncorrected paired t-test: descriptive).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from gtap_jax.experiment.report import select_rows

STRATEGY = "iterated_pruning"


def load(folder: Path, config: str, view: str) -> dict[int, dict]:
    """Seed -> results of every run ``<config>-s<seed>-<view>`` in ``folder`` (copies or run folders)."""
    runs = {}
    paths = sorted(folder.glob(f"{config}-s*-{view}.json")) + sorted(folder.glob(f"{config}-s*-{view}/results.json"))
    for path in paths:
        name = path.stem if path.suffix == ".json" and path.name != "results.json" else path.parent.name
        seed, _, rest = name.removeprefix(f"{config}-s").partition("-")
        if rest == view:
            runs[int(seed)] = json.loads(path.read_text())
    if not runs:
        raise SystemExit(f"error: no run {config}-s<seed>-{view} in {folder}")
    return runs


def _rows(results: dict) -> dict[tuple[str, float], dict]:
    return {(r["method"], r["target"]): r for r in results["rows"] if r["retrain"] == "none"}


def _cost_round(method: str) -> bool:
    return method.startswith(f"{STRATEGY}/") and method.endswith("@cost")


def _cell(diffs: list[float], tests: list[float]) -> str:
    return (f"{np.mean(diffs):+.3f} ({np.mean(tests):+.3f}), {sum(d > 0 for d in diffs)}/{len(diffs)}"
            f" ({sum(t > 0 for t in tests)}/{len(tests)})")


def tables(runs: dict[int, dict]) -> list[str]:
    rows = {seed: _rows(res) for seed, res in runs.items()}
    targets = sorted({t for r in rows.values() for _, t in r}, reverse=True)
    indices = list(dict.fromkeys(m.split("/")[1].removesuffix("@cost") for m, _ in rows[min(rows)]
                                 if _cost_round(m)))
    head = "| target | " + " | ".join(indices) + " |"
    rule = "|---|" + "---|" * len(indices)
    lines = [f"Seeds {sorted(runs)}. {STRATEGY}/<index>@cost minus {STRATEGY}/<index>, selection set (test set), "
             "seeds where the difference is positive on the selection set (test set):", "", head, rule]
    neurons = ["Neurons kept, by cost / by value:", "", head, rule]
    for t in targets:
        cells, kept = [], []
        for i in indices:
            pairs = [(r[(f"{STRATEGY}/{i}@cost", t)], r[(f"{STRATEGY}/{i}", t)]) for r in rows.values()]
            cells.append(_cell([c["selection_accuracy"] - v["selection_accuracy"] for c, v in pairs],
                               [c["accuracy"] - v["accuracy"] for c, v in pairs]))
            kept.append(" / ".join(f"{np.mean([pair[k]['neurons'] for pair in pairs]):.0f}" for k in (0, 1)))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
        neurons.append(f"| {t} | " + " | ".join(kept) + " |")
    picks = ["The selection set's GTAP pick with the cost-round variants among the candidates and without them, and "
             "the baseline it picks (test accuracy, mean over seeds; p: paired t-test, uncorrected):", "",
             "| target | seeds where it picks a cost-round variant | with them | without | difference, seeds higher /"
             " lower | baseline | with them minus baseline, seeds ahead, p |", "|---|---|---|---|---|---|---|"]
    for t in targets:
        with_, without, base, names = [], [], [], []
        for seed, res in runs.items():
            candidates = [r for r in rows[seed].values() if r["target"] == t]
            (chosen,) = select_rows(candidates)  # the run's own rule, recomputed: it must pick what the run picked
            run = next(c for c in res["selection"]["choices"] if c["retrain"] == "none" and c["target"] == t)
            assert (chosen["gtap"], chosen["baseline"]) == (run["gtap"], run["baseline"]), (seed, t, chosen, run)
            (plain,) = select_rows([r for r in candidates if not _cost_round(r["method"])])
            names.append(chosen["gtap"])
            with_.append(rows[seed][(chosen["gtap"], t)]["accuracy"])
            without.append(rows[seed][(plain["gtap"], t)]["accuracy"])
            base.append(rows[seed][(chosen["baseline"], t)]["accuracy"])
        d, b = np.subtract(with_, without), np.subtract(with_, base)
        p = stats.ttest_rel(with_, base).pvalue if len(b) > 1 and np.std(b) > 0 else float("nan")
        picked = sum(map(_cost_round, names))
        picks.append(f"| {t} | {picked}/{len(names)} | {np.mean(with_):.3f} | {np.mean(without):.3f} | "
                     f"{d.mean():+.3f}, {(d > 0).sum()} / {(d < 0).sum()} | {np.mean(base):.3f} | "
                     f"{b.mean():+.3f}, {(b > 0).sum()}/{len(b)}, p = {p:.3f} |")
    return lines + [""] + neurons + [""] + picks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="docs/reproduction_runs, or a `reproduction.py run --out` folder")
    p.add_argument("config", help="e.g. lenet300_mnist")
    p.add_argument("--view", default="verdict-costrounds", help="the runs' suffix (default: verdict-costrounds)")
    args = p.parse_args()
    print("\n".join(tables(load(args.folder, args.config, args.view))))


if __name__ == "__main__":
    main()
