"""Are the error bars and the settled decisions right? Three checks on small games with exact values.

1. Standard errors: coverage of 95% intervals and E[z^2] of every estimator of beta_d (d = 0.1,
   0.25, 0.5, 0.8) on a near-additive 12-player game, v(S) = sum of w over S + 0.1 sin(3 |S|),
   w = linspace(-1.5, 1.5, 12), 2,304 evaluations, 60 keys; and how many errors are exactly 0.
2. Settled decisions: top 4 of a near tie (w = 3, 2.6, 2.2, 1.80, 1.79, 1.2, ..., 0, plus
   0.3 sin(3 |S|)) with delta 0.05, epsilon 0.005, at most 65,536 evaluations, 40 keys, every
   estimator and index: how many keys settle, and how many of those decisions are wrong by more
   than epsilon.
3. Values returned by settled rounds with focused draws: per player, the mean error over 150 keys
   in units of its standard error (t), Banzhaf / Shapley / beta_0.25 on the near-tie game.

    python benchmarks/calibration.py            # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import platform
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

import gtap_jax as g
from gtap_jax.games import lookup_game
from gtap_jax.indices import ESTIMATORS, INDICES, default_estimator

P = 12


def _table(w, wave):
    members = (np.arange(1 << P)[:, None] >> np.arange(P)) & 1
    return (members @ np.asarray(w) + wave * np.sin(3.0 * members.sum(1))).astype(np.float32)


NEAR_ADDITIVE = lookup_game(_table(np.linspace(-1.5, 1.5, P), 0.1))
NEAR_TIE = lookup_game(_table([3, 2.6, 2.2, 1.80, 1.79, 1.2, 1.0, 0.8, 0.6, 0.4, 0.2, 0], 0.3))


def standard_errors():
    print("| estimator | d | errors exactly 0 | 95% coverage | E[z^2] |\n|---|---|---|---|---|")
    for name in g.indices.estimators_for("beta"):
        for d in (0.1, 0.25, 0.5, 0.8):
            truth = g.exact(NEAR_ADDITIVE, P, "beta", d=d)
            runs = [g.estimate(jax.random.key(k), NEAR_ADDITIVE, P, "beta", d=d, evaluations=2304, estimator=name)
                    for k in range(60)]
            err = np.stack([np.asarray(a.values) - truth for a in runs])
            se = np.stack([np.asarray(a.stderr) for a in runs])
            z = err / np.where(se > 0, se, np.nan)
            print(f"| {name} | {d} | {int(np.sum(se == 0))} / {se.size} | {np.mean(np.abs(err) <= 1.96 * se):.3f} |"
                  f" {np.nanmean(z**2):.2f} |", flush=True)


def settled_decisions():
    print("\n| index | estimator | keys settled | settled and wrong |\n|---|---|---|---|")
    for index, spec in INDICES.items():
        d = None if not spec.takes_d or spec.fixed_d else 0.25
        truth = g.exact(NEAR_TIE, P, index, d=d)
        for name, entry in ESTIMATORS.items():
            if index not in entry.indices:
                continue
            attribute = g.by_estimate(index, d=d, estimator=name, settle=g.Settle(0.05, 0.005, 1 << 16))
            settled = wrong = 0
            for k in range(40):
                res = g.top_n(jax.random.key(k), NEAR_TIE, P, 4, attribute)
                if res.history[0].scores.settled:
                    settled += 1
                    wrong += truth[res.mask].min() < truth[~res.mask].max() - 0.005
            print(f"| {index} | {name} | {settled} / 40 | {wrong} |", flush=True)


def focused_values():
    print("\n| index | estimator | max abs t, focus on | max abs t, focus off |\n|---|---|---|---|")
    for index, d in (("banzhaf", None), ("shapley", None), ("beta", 0.25)):
        truth = g.exact(NEAR_TIE, P, index, d=d)
        name = default_estimator(index, P, 1 << 14)
        cells = []
        for focus in (True, False):
            attribute = g.by_estimate(index, d=d, estimator=name, settle=g.Settle(0.05, 0.05, 1 << 14, focus))
            err = np.stack([attribute(jax.random.key(k), NEAR_TIE, P, (4,)).values - truth for k in range(150)])
            cells.append(np.max(np.abs(err.mean(0) / (err.std(0) / np.sqrt(len(err))))))
        print(f"| {index} | {name} | {cells[0]:.1f} | {cells[1]:.1f} |", flush=True)


def main():
    jnp.zeros(1).block_until_ready()
    print(f"{date.today()}, {jax.devices()[0].device_kind}, jax {jax.__version__}, {platform.machine()}\n")
    standard_errors()
    settled_decisions()
    focused_values()


if __name__ == "__main__":
    main()
