"""The paper's experiments over seeds: run the configs, then aggregate their results.

    python benchmarks/reproduction.py run --out runs/repro --seeds 0 1 2 --jobs 4 \\
        --text-data DATA      # each config x seed, `jobs` at a time
    python benchmarks/reproduction.py report --out runs/repro --doc docs/reproduction.md

``run`` starts ``python -m gtap_jax.prune`` for every config and seed (workdir
``OUT/<config>-s<seed>``, log beside it; a finished run is skipped, a stopped one
resumes), with the tweet configs on the local CSVs under ``--text-data`` (``DATA/emotion``,
``DATA/twitter_financial_news_topic``; without it they load from Hugging Face). ``--layerwise``
adds a ``game.layerwise=True`` run per config and seed (the baselines' per-layer
allocation for GTAP too); ``--variant verdict`` runs the configs' ``verdict`` variant (runs
``<config>-s<seed>-verdict``). ``report`` reads every ``results.json`` and writes, per config
and retrain mode, test accuracy mean +- std over seeds for every method and size, with
the mean parameters and FLOPs (and latency, where measured) of the pruned networks, a
paired comparison across seeds of every GTAP method with the best baseline, and plots per
config against each.

The one-shot configs of models with residual links (no retraining, latency measured):

    python benchmarks/reproduction.py run --out runs/one_shot --configs resnet_mnist vit_mnist \
        transformer_emotion --text-data DATA
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

from gtap_jax.experiment.report import plot_curves, select_rows

CONFIGS = {  # config -> the tweet folder it reads under --text-data (None: MNIST, embedded)
    "lenet300_mnist": None,
    "lenet5_mnist": None,
    "mlp_emotion": "emotion",
    "mlp_twitter_topic": "twitter_financial_news_topic",
    "resnet_mnist": None,
    "vit_mnist": None,
    "transformer_emotion": "emotion",
}
VIEWS = {  # run name suffix -> what its runs are
    "joint": "joint game",
    "layerwise": "layer-wise game",
    "proportional": "joint game, 2026-12-02 config: baselines proportional only, d = 0.95 fixed after a test read;"
                    " superseded",
    "verdict": "joint game, the config's `verdict` variant: budgets of parameters, every allocation, choices on the"
               " selection set, fine-tuning",
    "verdict-costrounds": "the `verdict` variant with iterated pruning's rounds also by value per parameter"
                          " (`gtap.cost_rounds`); descriptive, not in the verdicts",
}
PAPER = ["lenet300_mnist", "lenet5_mnist", "mlp_emotion", "mlp_twitter_topic"]  # the default of ``run``


def _command(config: str, seed: int, workdir: Path, text_data: Path | None, layerwise: bool,
             overrides: list[str], variant: str = "") -> list[str]:
    variant = f":{variant}" if variant else ""
    cmd = [sys.executable, "-m", "gtap_jax.prune", f"--config=gtap_jax/configs/{config}.py{variant}",
           f"--config.seed={seed}", "--config.progress=False", f"--workdir={workdir}"]
    if CONFIGS[config] is not None and text_data is not None:
        cmd += ["--config.data.source=path", f"--config.data.path={text_data / CONFIGS[config]}"]
    if layerwise:
        cmd += ["--config.game.layerwise=True"]
    return cmd + [f"--config.{o}" for o in overrides]


def run(args) -> None:
    jobs = []
    for config in args.configs:
        for seed in args.seeds:
            for layerwise in (False, True) if args.layerwise else (False,):
                suffix = args.suffix or args.variant
                name = f"{config}-s{seed}" + ("-layerwise" if layerwise else "") + (f"-{suffix}" * bool(suffix))
                jobs.append((name, _command(config, seed, args.out / name, args.text_data, layerwise,
                                           args.set, args.variant)))
    args.out.mkdir(parents=True, exist_ok=True)

    def start(job):
        name, cmd = job
        if (args.out / name / "results.json").exists():
            return name, 0, 0.0
        t0 = time.perf_counter()
        with open(args.out / f"{name}.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - t0
        print(f"{name}: exit {rc} after {seconds:.0f} s", flush=True)
        with lock:  # each run's wall time as it ends, kept across invocations (and concurrent ones)
            wall = args.out / "wall_seconds.json"
            known = json.loads(wall.read_text()) if wall.exists() else {}
            wall.write_text(json.dumps({**known, name: seconds}, indent=1))
        return name, rc, seconds

    commands = args.out / "commands.json"  # what each run was started with, kept across invocations
    known = json.loads(commands.read_text()) if commands.exists() else {}
    commands.write_text(json.dumps({**known, **{n: " ".join(c[1:]) for n, c in jobs}}, indent=1))
    lock = threading.Lock()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(start, jobs))


def _target(r: dict):
    """A row's target: its player count, or its share of the parameters (runs with ``target_unit``)."""
    return r.get("target", r["neurons"])


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of ``pvalues`` (NaN stays NaN): family-wise error control over every cell.

    The k-th smallest of m p-values becomes ``max over j <= k of min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def _per_network(rows: list[dict]) -> dict:
    """``{(regime, target, method): row}`` with the row's accuracy the mean over its retraining seeds."""
    grouped = defaultdict(list)
    for r in rows:
        grouped[(r["retrain"], _target(r), r["method"])].append(r)
    return {k: {**v[0], "accuracy": float(np.mean([r["accuracy"] for r in v]))} for k, v in grouped.items()}


def merged(runs: dict, views: list[str]) -> dict:
    """Runs of one config and seed under several ``views`` (e.g. zero and mean fills) as one run per seed, in which
    the selection chooses among the variants of every view: each row's method is named ``method [view]``, and
    the GTAP variant and baseline of highest selection accuracy per regime and target are chosen over all of
    them (the test set unread, as within a run). Returns ``{(config, "view+view"): [(seed, result)]}``."""
    out = {}
    for config in sorted({c for c, _ in runs}):
        by_seed = defaultdict(dict)
        for view in views:
            for seed, res in runs.get((config, view), []):
                if "selection" in res:
                    by_seed[seed][view] = res
        seeds = sorted(s for s, found in by_seed.items() if len(found) == len(views))
        if not seeds:
            continue
        out[(config, "+".join(views))] = found = []
        for seed in seeds:
            rows = [{**r, "method": f"{r['method']} [{view}]"} for view in views for r in by_seed[seed][view]["rows"]]
            choices = select_rows(rows)
            summary = by_seed[seed][views[0]].get("summary", {})  # one trained network per seed
            found.append((seed, {"rows": rows, "selection": {"choices": choices}, "summary": summary}))
    return out


def judged(runs: dict, merges: list[str]) -> dict:
    """The runs the verdicts judge: each ``"A+B"`` of ``merges`` replaces, for every config that has both views, its
    runs under A and under B by their :func:`merged` view; a config with only one of them keeps it."""
    out = dict(runs)
    for spec in merges:
        views = spec.split("+")
        joined = merged(runs, views)
        out = {k: v for k, v in out.items() if (k[0], spec) not in joined or k[1] not in views} | joined
    return out


def _verdicts(runs: dict) -> list[str]:
    """The verdict table: per config, regime and target, the GTAP variant and the baseline that each run's selection
    set chose, compared on the test set seed by seed (paired t-test, Holm over every cell of the table)."""
    return _verdict_lines(_verdict_cells(runs))


def _verdict_cells(runs: dict) -> list[dict]:
    """One dict per config, view, regime and target: the selected pairs seed by seed, their differences, p, Holm's
    adjusted p (over every cell) and the verdict."""
    cells = []
    for (config, view), found in sorted(runs.items()):
        chosen = defaultdict(dict)  # (regime, target) -> seed -> (gtap row, baseline row)
        unpruned = [res.get("summary", {}).get("trained_test_accuracy") for _, res in found if "selection" in res]
        for seed, res in found:
            if "selection" not in res:
                continue
            rows = _per_network(res["rows"])
            for c in res["selection"]["choices"]:
                pair = [rows.get((c["retrain"], c["target"], c[f])) for f in ("gtap", "baseline")]
                if all(pair):
                    chosen[(c["retrain"], c["target"])][seed] = pair
        for (regime, target), by_seed in chosen.items():
            seeds = sorted(by_seed)
            g = np.array([by_seed[k][0]["accuracy"] for k in seeds])
            b = np.array([by_seed[k][1]["accuracy"] for k in seeds])
            diff = g - b
            n = len(seeds)
            p = stats.ttest_rel(g, b).pvalue if n > 1 and np.std(diff) > 0 else float("nan")
            half = stats.t.ppf(0.975, n - 1) * np.std(diff, ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            cells.append({"config": config, "view": view, "regime": regime, "target": target, "n": n, "diff": diff,
                          "half": half, "p": p, "gtap": [by_seed[k][0] for k in seeds],
                          "baseline": [by_seed[k][1] for k in seeds],
                          "unpruned": [a for a in unpruned if a is not None]})
    for c, adj in zip(cells, holm([c["p"] for c in cells]), strict=True):
        c["holm"] = adj
        c["verdict"] = ("GTAP ahead" if c["diff"].mean() > 0 else "GTAP behind") if adj < 0.05 else "level"
    return cells


def _verdict_lines(cells: list[dict]) -> list[str]:
    if not cells:
        return []
    lines = ["## Verdicts: selected GTAP against the selected baseline", "",
             "In each run the selection set (validation images the game never sees) chose the GTAP variant and the"
             " baseline variant (scores and allocation) of highest accuracy, per regime and target; the test set"
             " only scores the two. Difference = GTAP minus baseline test accuracy, mean over seeds with a 95% t"
             " interval; p: two-sided paired t-test; p (Holm): adjusted over every cell of this table. Sizes: mean"
             " parameters / FLOPs of each pruned network. A verdict needs p (Holm) < 0.05; otherwise the cell is"
             " level as far as these seeds can tell.", "",
             "| config | regime | target (share of params) | GTAP chosen (runs) | baseline chosen (runs) | GTAP acc."
             " / params / MFLOPs | baseline acc. / params / MFLOPs | difference | seeds ahead | p | p (Holm) |"
             " verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def summary(rows):
        names = defaultdict(int)
        for r in rows:
            names[r["method"]] += 1
        return ", ".join(f"{m} ({k})" for m, k in sorted(names.items(), key=lambda x: -x[1]))

    def size(rows):
        return (f"{np.mean([r['accuracy'] for r in rows]):.3f} / {np.mean([r['params'] for r in rows]):,.0f} / "
                f"{np.mean([r['flops'] for r in rows]) / 1e6:.2f}")

    for c in cells:
        lines.append(f"| {c['config']} | {c['regime']} | {c['target']} | {summary(c['gtap'])} |"
                     f" {summary(c['baseline'])} | {size(c['gtap'])} | {size(c['baseline'])} |"
                     f" {c['diff'].mean():+.3f} +- {c['half']:.3f} | {int((c['diff'] > 0).sum())}/{c['n']} |"
                     f" {c['p']:.3f} | {c['holm']:.3f} | {c['verdict']} |")
    return lines + [""]


def _sizes(cell: dict | None) -> str:
    """A verdict cell's mean parameters and MFLOPs, GTAP's / the baseline's."""
    if cell is None:
        return ""
    params, flops = ([np.mean([r[k] for r in cell[f]]) for f in ("gtap", "baseline")] for k in ("params", "flops"))
    return f"{params[0]:,.0f} / {params[1]:,.0f} parameters, {flops[0] / 1e6:.2f} / {flops[1] / 1e6:.2f} MFLOPs"


def readme_tables(cells: list[dict]) -> list[str]:
    """The verdicts in brief, one table per set of targets: per config (and view) a row of sizes (mean parameters
    and MFLOPs, GTAP's / the baseline's) and a row per regime: the verdict, GTAP minus the baseline (their mean
    test accuracies), the seeds where GTAP is ahead and Holm's p (cells with one seed: no p, no verdict)."""
    by_config = defaultdict(dict)  # (config, view) -> (regime, target) -> cell
    for c in cells:
        by_config[(c["config"], c["view"])][(c["regime"], c["target"])] = c
    by_targets = defaultdict(dict)  # the targets, largest first -> (config, view) -> its cells
    for key, found in by_config.items():
        by_targets[tuple(sorted({t for _, t in found}, reverse=True))][key] = found
    lines = []
    for targets, configs in by_targets.items():
        lines += ["| config (view), seeds | regime | " + " | ".join(f"{t:g} of the parameters" for t in targets) + " |",
                  "|---|---|" + "---|" * len(targets)]
        for (config, view), found in sorted(configs.items()):
            n = max(c["n"] for c in found.values())
            regimes = list(dict.fromkeys(r for r, _ in found))
            first = next(iter(found.values()))
            acc = first["unpruned"]
            whole = (f"; unpruned {min(acc):.3f}-{max(acc):.3f}" if acc else "") + (
                f", {first['gtap'][0]['params_total']:,} parameters, {first['gtap'][0]['flops_total'] / 1e6:.2f} MFLOPs"
                if "params_total" in first["gtap"][0] else "")
            lines.append(f"| {config} ({view}), {n} seed{'s' * (n > 1)}{whole} | sizes (GTAP / baseline) | "
                         + " | ".join(_sizes(found.get((regimes[0], t))) for t in targets) + " |")
            for regime in regimes:
                row = []
                for t in targets:
                    c = found.get((regime, t))
                    if c is None:
                        row.append("")
                        continue
                    g, b = (np.mean([r["accuracy"] for r in c[f]]) for f in ("gtap", "baseline"))
                    holm_p = f", Holm p = {c['holm']:.2g}" if np.isfinite(c["holm"]) else ""
                    row.append(f"{c['verdict'] if np.isfinite(c['holm']) else 'one seed'}: {c['diff'].mean():+.3f}"
                               f" ({g:.3f} against {b:.3f}; {int((c['diff'] > 0).sum())}/{c['n']} ahead{holm_p})")
                lines.append(f"| | {regime} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _best_of_each_family(sub: list[dict], sizes: list[int], mode: str) -> list[str]:
    """Per size: the best GTAP method against the best baseline (by mean), and whether the gap exceeds
    the larger of the two spreads (std over seeds and retraining seeds). The best of nine GTAP methods
    against the best of four baselines favours GTAP by selection alone; the full tables say more."""
    lines = [f"retrain = {mode}: best GTAP method against best baseline by their test accuracy (descriptive, no"
             " verdict), by target", "",
             "| target | best GTAP | best baseline | difference | gap against the spread |", "|---|---|---|---|---|"]
    for s in sizes:
        best = {}
        for family in ("gtap", "baseline"):
            cells = {}
            for r in sub:
                if _target(r) == s and r["family"] == family:
                    cells.setdefault(r["method"], []).append(r["accuracy"])
            name = max(cells, key=lambda m: np.mean(cells[m]))
            best[family] = (name, float(np.mean(cells[name])), float(np.std(cells[name])))
        (gn, gm, gs), (bn, bm, bs) = best["gtap"], best["baseline"]
        spread = max(gs, bs)
        if spread == 0:
            verdict = "one run: no spread to judge by"
        else:
            verdict = "within the spread" if abs(gm - bm) <= spread else ("GTAP ahead" if gm > bm else "GTAP behind")
        lines.append(f"| {s} | {gn} {gm:.3f} +- {gs:.3f} | {bn} {bm:.3f} +- {bs:.3f} | {gm - bm:+.3f} | {verdict} |")
    return lines + [""]


def _paired(sub: list[dict], sizes: list[int], mode: str) -> list[str]:
    """Per size, each GTAP method against the best baseline there (by mean: the choice favours the baselines),
    seed by seed: the mean +- std of the accuracy differences, the seeds where GTAP is ahead, and a two-sided
    paired t-test's p (with 3 seeds it has 2 degrees of freedom: only large, steady gaps reach p < 0.05)."""
    acc = defaultdict(dict)  # (method, size) -> run seed -> accuracy (the mean over retraining seeds)
    family = {}
    for r in sub:
        acc[(r["method"], _target(r))].setdefault(r["run_seed"], []).append(r["accuracy"])
        family[r["method"]] = r["family"]
    acc = {k: {seed: float(np.mean(a)) for seed, a in v.items()} for k, v in acc.items()}
    gtap = [m for m in family if family[m] == "gtap"]
    lines = [f"retrain = {mode}: paired across seeds, each GTAP method minus the best baseline at that target by its"
             " test accuracy (difference mean +- std, seeds ahead, paired t-test p, uncorrected: descriptive)", "",
             "| method | " + " | ".join(str(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    best = {}
    for s in sizes:
        found = [(np.mean(list(acc[(m, s)].values())), m) for m in family
                 if family[m] == "baseline" and (m, s) in acc]
        best[s] = max(found)[1] if found else None
    lines.append("| best baseline | " + " | ".join(str(best[s]) for s in sizes) + " |")
    for m in gtap:
        cells = []
        for s in sizes:
            if best[s] is None or (m, s) not in acc:
                cells.append("")
                continue
            seeds = sorted(set(acc[(m, s)]) & set(acc[(best[s], s)]))
            diff = np.array([acc[(m, s)][k] - acc[(best[s], s)][k] for k in seeds])
            p = stats.ttest_rel([acc[(m, s)][k] for k in seeds], [acc[(best[s], s)][k] for k in seeds]).pvalue \
                if len(seeds) > 1 and np.std(diff) > 0 else float("nan")
            cells.append(f"{diff.mean():+.3f} +- {diff.std():.3f}, {int((diff > 0).sum())}/{len(seeds)}, p={p:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines + [""]


def _selection_table(sub: list[dict], sizes: list, methods: list[str]) -> list[str]:
    """Accuracy on the selection set (what a variant is judged on before the test set), mean +- std over seeds."""
    lines = ["Selection-set accuracy without retraining, mean +- std over seeds, by target:", "",
             "| method | " + " | ".join(str(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for m in methods:
        cells = [[r["selection_accuracy"] for r in sub if r["method"] == m and _target(r) == s] for s in sizes]
        lines.append(f"| {m} | " + " | ".join(_mean_std(c) if c else "" for c in cells) + " |")
    return [*lines, ""]


def _results(folders: list[Path]):
    """``(run name, results.json path)`` of each run: ``FOLDER/<name>/results.json`` (a ``run`` folder) or
    ``FOLDER/<name>.json`` (the copies in docs/reproduction_runs), ``name`` = ``<config>-s<seed>[-<view>]`` (views:
    ``VIEWS``)."""
    for folder in folders:
        for path in sorted(folder.glob("*/results.json")):
            yield path.parent.name, path
        for path in sorted(folder.glob("*-s*.json")):
            yield path.stem, path


def report(args) -> None:
    runs = defaultdict(list)  # (config, view) -> [(seed, results)]
    wall = {}  # run name -> seconds
    for folder in args.out:
        wall.update(json.loads((folder / "wall_seconds.json").read_text()) if (folder / "wall_seconds.json").exists()
                    else {})
    for name, path in _results(args.out):
        config, rest = name.split("-s", 1)
        seed, _, view = rest.partition("-")
        runs[(config, view or "joint")].append((int(seed), json.loads(path.read_text())))
    cells = _verdict_cells(judged({k: v for k, v in runs.items() if k[1] not in args.descriptive}, args.merge))
    lines = _verdict_lines(cells)
    if args.readme:  # the README's verdict tables, between its markers
        text = args.readme.read_text()
        start, end = "<!-- verdicts from benchmarks/reproduction.py report -->", "<!-- end of the verdicts -->"
        head, rest = text.split(start)
        args.readme.write_text(head + start + "\n\n" + "\n".join(readme_tables(cells)) + "\n" + end
                               + rest.split(end)[1])
    for (config, view), found in sorted(runs.items()):
        seeds = sorted(s for s, _ in found)
        rows = [{**r, "run_seed": seed} for seed, res in found for r in res["rows"]]
        full = [res["summary"]["trained_test_accuracy"] for _, res in found]
        times = [f"{wall[k]:.0f} s" for k in sorted(wall)
                 if k.startswith(config + "-s") and (k.split("-", 2)[2:] or ["joint"])[0] == view]
        lines += [f"### {config} ({VIEWS.get(view, view)}), seeds {seeds}", "",
                  f"Unpruned test accuracy {_mean_std(full)}"
                  + (f"; wall time per run {', '.join(times)}." if times else "."), ""]
        for mode in dict.fromkeys(r["retrain"] for r in rows):
            sub = [r for r in rows if r["retrain"] == mode]
            sizes = sorted({_target(r) for r in sub}, reverse=True)
            methods = list(dict.fromkeys(r["method"] for r in sub))
            lines += _best_of_each_family(sub, sizes, mode)
            if len(seeds) > 1:
                lines += _paired(sub, sizes, mode)
            timed = any(np.isfinite(r.get("latency_ms", np.nan)) for r in sub)
            unit = sub[0].get("target_unit", "players")
            by = "neurons kept" if unit == "players" else f"share of the {unit} (budget)"
            lines += [f"retrain = {mode}: test accuracy, mean +- std over seeds (and retraining seeds), by {by};"
                      " mean parameters / MFLOPs" + (" / latency in ms (batch 256)" if timed else "")
                      + " of the pruned network below each", "",
                      "| method | " + " | ".join(str(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
            for m in methods:
                cells = []
                for s in sizes:
                    cell = [r for r in sub if r["method"] == m and _target(r) == s]
                    if not cell:
                        cells.append("")
                        continue
                    acc = _mean_std([r["accuracy"] for r in cell])
                    latency = f" / {np.mean([r['latency_ms'] for r in cell]):.2f}" if timed else ""
                    cells.append(f"{acc}<br>{np.mean([r['params'] for r in cell]):,.0f} / "
                                 f"{np.mean([r['flops'] for r in cell]) / 1e6:.2f}{latency}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
            if view in args.descriptive and mode == "none" and all("selection_accuracy" in r for r in sub):
                lines += _selection_table(sub, sizes, methods)
            if timed:
                dense = np.mean([r["latency_ms_total"] for r in sub])
                lines += [f"Latency of the unpruned network: {dense:.2f} ms (batch 256, mean over runs).", ""]
        axes = (("params", ""), ("flops", "_flops"))
        if any(np.isfinite(r.get("latency_ms", np.nan)) for r in rows):
            axes += (("latency_ms", "_latency"),)
        for axis, suffix in axes:
            plot_curves(rows, None, None, args.doc.parent / f"reproduction_{config}_{view}{suffix}.png", band="std",
                        title=f"{config} ({view}), ", axis=axis)
            lines += [f"![{config} {view}, against {axis}](reproduction_{config}_{view}{suffix}.png)", ""]
    text = args.doc.read_text() if args.doc.exists() else ""
    marker = "<!-- tables from benchmarks/reproduction.py report -->"
    head = text.split(marker)[0] if marker in text else text
    args.doc.write_text(head.rstrip() + "\n\n" + marker + "\n\n" + "\n".join(lines))
    print(f"wrote {args.doc}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--configs", nargs="+", default=PAPER, choices=list(CONFIGS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--layerwise", action="store_true")
    r.add_argument("--variant", default="", help="a config variant (`config.py:VARIANT`), e.g. verdict; it names the"
                   " runs <config>-s<seed>-VARIANT")
    r.add_argument("--suffix", default="", help="names the runs <config>-s<seed>-SUFFIX instead (a view of its own"
                   " in the report), e.g. for a variant run with other --set overrides")
    r.add_argument("--text-data", type=Path, default=None, help="a folder holding emotion/ and"
                   " twitter_financial_news_topic/ with the tweet CSVs (default: the configs' Hugging Face source)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for every run, e.g. game.eval_examples=500")
    p = sub.add_parser("report")
    p.add_argument("--out", type=Path, nargs="+", required=True, help="run folders, or folders of results.json"
                   " copies named <config>-s<seed>[-layerwise].json")
    p.add_argument("--doc", type=Path, default=Path("docs/reproduction.md"))
    p.add_argument("--readme", type=Path, default=None, help="a file (README.md) whose verdict tables, between"
                   " its markers, are rewritten")
    p.add_argument("--merge", nargs="*", default=[], metavar="VIEW+VIEW",
                   help="views whose runs (one per config and seed) the verdicts judge as one: the selection set"
                        " chooses among the variants of all of them, e.g. verdict+verdict-mean")
    p.add_argument("--descriptive", nargs="*", default=[], metavar="VIEW",
                   help="views reported (their tables, and accuracy on the selection set without retraining) but"
                        " left out of the verdicts: variants tried after the verdicts' candidates were fixed")
    args = parser.parse_args()
    run(args) if args.what == "run" else report(args)


if __name__ == "__main__":
    main()
