"""Which variant of GTAP, and which baseline, a run reports: chosen on the selection set, never on the test set.

The validation split is cut in two: the game's evaluation examples and a selection set the game never
sees (``game.selection_examples``). Every pruned network is scored on both the selection set and the
test set, but :func:`select` is handed only the selection scores: for each retraining regime and target,
the GTAP method (strategy, index, d, allocation) and the baseline (score, allocation) of highest
selection accuracy. Their test accuracies are then the run's verdict; every other variant stays in
the full table, marked as not selected.
"""

from __future__ import annotations

from collections.abc import Sequence

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


__all__ = ["SELECTION_RULE", "select"]
