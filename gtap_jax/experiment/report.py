"""What a run reports: which variants (:func:`select`), and for people results.csv, the summary table, compression
curves and bands plots.

Which variant of GTAP, and which baseline, a run reports is chosen on the selection set, never on the test
set. The validation split is cut in two: the game's evaluation examples and a selection set the game never
sees (``game.selection_examples``). Every pruned network is scored on both the selection set and the
test set, but :func:`select` is handed only the selection scores: for each retraining regime and target,
the GTAP method (strategy, index, d, allocation) and the baseline (score, allocation) of highest
selection accuracy. Their test accuracies are then the run's verdict; every other variant stays in
the full table, marked as not selected.
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from gtap_jax.uncertainty import Bands

SELECTION_RULE = ("highest mean accuracy on the selection set (validation examples the game does not use), per"
                  " retraining regime and target, for GTAP and for the baselines separately; ties: the earlier"
                  " method in config order")


def select(candidates: Sequence[dict]) -> list[dict]:
    """The selected GTAP method and baseline per regime and target.

    Args:
        candidates: one dict per pruned network and retraining seed with exactly ``method``, ``family``,
            ``retrain``, ``target`` and ``selection_accuracy`` (the caller passes nothing of the test set).

    Returns:
        ``[{"retrain", "target", "gtap", "baseline", "selection_accuracy": {method: mean}}]``, a family's
        entry None where it has no candidate.
    """
    means: dict[tuple, dict[str, list[float]]] = {}
    families: dict[str, str] = {}
    for c in candidates:
        if set(c) != {"method", "family", "retrain", "target", "selection_accuracy"}:
            raise ValueError(f"a selection candidate holds {sorted(c)}; it must hold only the method, its family,"
                             " the regime, the target and the selection accuracy")
        means.setdefault((c["retrain"], c["target"]), {}).setdefault(c["method"], []).append(c["selection_accuracy"])
        families[c["method"]] = c["family"]
    out = []
    for (regime, target), by_method in means.items():
        mean = {m: sum(v) / len(v) for m, v in by_method.items()}
        best = {}
        for family in ("gtap", "baseline"):
            ranked = [m for m in by_method if families[m] == family]  # config order (insertion order)
            best[family] = max(ranked, key=lambda m: mean[m]) if ranked else None
        out.append({"retrain": regime, "target": target, **best, "selection_accuracy": mean})
    return out


def select_rows(rows: Sequence[dict]) -> list[dict]:
    """:func:`select` over result rows: each row that has a selection accuracy is handed over with its method,
    family, regime, target and that accuracy only (nothing of the test set)."""
    keys = ("method", "family", "retrain", "target", "selection_accuracy")
    return select([{k: r[k] for k in keys} for r in rows if r.get("selection_accuracy") is not None])


CSV_FIELDS = (
    "method", "family", "strategy", "index", "d", "allocation", "target", "target_unit", "selected", "neurons",
    "neurons_total", "keep_fraction", "params",
    "params_total", "flops", "flops_total", "latency_ms", "latency_ms_total", "retrain", "seed", "accuracy",
    "selection_accuracy", "evaluations", "settled_share", "seconds", "train_seconds",
)


PACKAGES = ("gtap_jax", "jax", "jaxlib", "flax", "optax", "numpy")


def software() -> dict:
    """What produced a run's numbers: the versions of the packages that compute them, Python, the device, the date
    (UTC), and the git commit of the package's checkout (``+dirty`` with uncommitted changes; None outside one)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    device = jax.devices()[0]
    return {"versions": {**versions, "python": platform.python_version()},
            "device": f"{device.platform}: {device.device_kind} x {jax.device_count()}", "machine": platform.machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "commit": _commit()}


def _commit() -> str | None:
    root = Path(__file__).resolve().parents[2]  # the checkout holding gtap_jax/, if it is one

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:  # an installed copy inside another repository
            return None
        return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _target(r: dict):
    """A row's target: its player count, or its share of the network's cost (rows of older runs: neurons)."""
    return r.get("target", r["neurons"])


def summary_table(rows: list[dict], full_accuracy: float) -> str:
    """Test accuracy per method (rows) and target (columns: neurons kept, or a share of the parameters or
    FLOPs), one block per retrain mode; a ``*`` marks the variants the selection set chose.

    Retrained cells are the mean over seeds. ``evals`` is the most coalition
    values a method spent to reach a size; ``settled`` the least share of a
    GTAP method's decisions that was settled on the way (1.00: every round's
    choice was certain at 1 - delta up to epsilon; blank for baselines).
    """
    lines = [f"trained network: test accuracy {full_accuracy:.4f}"]
    for mode in dict.fromkeys(r["retrain"] for r in rows):
        sub = [r for r in rows if r["retrain"] == mode]
        sizes = sorted({_target(r) for r in sub}, reverse=True)
        unit = sub[0].get("target_unit", "players")
        methods = list(dict.fromkeys(r["method"] for r in sub))
        width = max(len(m) for m in methods) + 2
        by = "neurons kept" if unit == "players" else f"share of the network's {unit} (budget)"
        lines.append(f"\nretrain = {mode}: test accuracy (mean over seeds) by {by}")
        lines.append("method".ljust(width) + "".join(f"{s:>9}" for s in sizes) + "     evals  settled")
        for m in methods:
            cells = []
            for s in sizes:
                cell = [r for r in sub if r["method"] == m and _target(r) == s]
                acc = np.mean([r["accuracy"] for r in cell]) if cell else None
                if not any(r.get("selected") for r in sub):
                    cells.append(f"{acc:9.4f}" if cell else " " * 9)
                else:
                    mark = "*" if any(r.get("selected") for r in cell) else " "
                    cells.append(f"{acc:8.4f}{mark}" if cell else " " * 9)
            evals = max((r["evaluations"] for r in sub if r["method"] == m), default=0)
            shares = [r["settled_share"] for r in sub if r["method"] == m and r.get("settled_share") is not None]
            settled = f"{min(shares):9.2f}" if shares else ""
            lines.append(m.ljust(width) + "".join(cells) + f"{evals:10d}" + settled)
    return "\n".join(lines)


def plot_curves(rows, full_accuracy, full_params, path: Path, *, band: str = "std", title: str = "",
                axis: str = "params") -> None:
    """Test accuracy against the pruned network's parameters (``axis="params"``), FLOPs per
    example (``axis="flops"``) or measured latency (``axis="latency_ms"``), one panel per retrain mode.

    Points are a method's sizes (neurons kept), at the mean parameters (FLOPs) of its
    networks of that size; the band is +- 1 population std (``band="std"``, ddof = 0, as the
    tables) or the min-max (``"minmax"``) of the accuracies at that size (retraining seeds, or
    runs of several seeds). ``full_accuracy`` / ``full_params`` (None: not drawn) mark
    the unpruned network (its parameters only on the parameter axis).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["retrain"] for r in rows))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False, sharey=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cmap = plt.get_cmap("tab20")
    for ax, mode in zip(axes[0], modes, strict=True):
        several = False  # whether any point of the panel has several runs (a band to draw)
        for j, m in enumerate(methods):
            sub = [r for r in rows if r["retrain"] == mode and r["method"] == m]
            sizes = {r["neurons"] for r in sub}
            points = sorted((np.mean([r[axis] for r in sub if r["neurons"] == s]), s) for s in sizes)
            xs = [x for x, _ in points]
            acc = [[r["accuracy"] for r in sub if r["neurons"] == s] for _, s in points]
            several |= any(len(a) > 1 for a in acc)
            mean = np.array([np.mean(a) for a in acc])
            style = "-" if m.count("/") else "--"
            ax.plot(xs, mean, style, marker="o", ms=3, color=cmap(j % 20), label=m)
            if band == "std":
                std = np.array([np.std(a) for a in acc])
                ax.fill_between(xs, mean - std, mean + std, color=cmap(j % 20), alpha=0.15)
            elif any(len(a) > 1 for a in acc):
                ax.fill_between(xs, [min(a) for a in acc], [max(a) for a in acc], color=cmap(j % 20), alpha=0.15)
        if full_accuracy is not None:
            ax.axhline(full_accuracy, color="k", lw=0.8, ls=":", label="unpruned")
        if axis != "latency_ms" and any(np.isfinite(r[axis]) and r[axis] > 0 for r in rows if r["retrain"] == mode):
            ax.set_xscale("log")  # else no network was compacted: no sizes to draw; latency spans less than 10x
        label = {"params": "parameters", "flops": "FLOPs per example", "latency_ms": "latency (ms, batch of 256)"}[
            axis] + " of the compacted network"
        ax.set_xlabel(label + (f" (unpruned: {full_params:,})" if axis == "params" and full_params is not None else ""))
        note = "" if not several else " (band: +- 1 std over seeds)" if band == "std" else " (band: min-max over seeds)"
        ax.set_title(f"{title}retrain: {mode}{note}", **({"fontsize": 9} if title else {}))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bands(bands: Bands, d: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = np.asarray(bands.keep_fractions)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(q, bands.mean, "o-", label="mean v over Bernoulli(q) coalitions")
    ax.fill_between(q, bands.mean - bands.std, bands.mean + bands.std, alpha=0.25, label="± 1 std")
    qs = np.asarray(bands.quantiles)
    ax.fill_between(q, qs[:, 0], qs[:, -1], alpha=0.1, color="C0",
                    label=f"quantiles {bands.quantile_levels[0]:g}-{bands.quantile_levels[-1]:g}")
    ax.axvline(d, color="C3", ls="--", label=f"chosen d = {d:.2f}")
    ax.axhline(bands.full_value, color="k", ls=":", lw=0.8, label="v(all)")
    ax.set_xlabel("keep fraction q")
    ax.set_ylabel("coalition value")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["CSV_FIELDS", "SELECTION_RULE", "plot_bands", "plot_curves", "select", "select_rows", "summary_table",
           "write_csv"]
