"""The estimators, one file per kind (KernelSHAP and Kernel Banzhaf, both regressions on complementary pairs,
share one), and their registry ``ESTIMATORS``.

An entry says what the rest of the library needs to know about an estimator
without building one: the indices it serves, the coalitions one draw costs for
P players, and the kind of focused draw (``gtap_jax.indices.focus``) that is an
unbiased sample of the index it estimates, or None where there is none.
Adding an estimator is one file with its factory ``(num_players, d) ->
Estimator`` and one line here; the contract tests then cover it.

References:
    Castro, Gomez, Tejada (2009), permutation sampling of the Shapley value.
    Okhrati, Lipani (2020), Owen sampling: the Shapley value from the multilinear extension.
    Wang, Jia (2023), "Data Banzhaf": maximum sample reuse (MSR).
    Fumagalli et al. (2024), shapiq: the pairing trick (a coalition with its complement).
    Hammer, Holzman (1992): the Banzhaf value is the least-squares linear fit of
    the game under the uniform distribution; Fumagalli et al. (2024), shapiq's
    Faith-Banzhaf regression; Liu et al. (2024), Kernel Banzhaf: the regression on complementary pairs.
    Diaz-Ortiz et al. (2024), "Pruning Neural Networks Using Cooperative Game
    Theory", arXiv:2311.10468: biased Banzhaf beta_d for pruning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from gtap_jax.engine import ChainValueFn
from gtap_jax.indices.base import INDICES
from gtap_jax.indices.estimators.antithetic import antithetic_shapley
from gtap_jax.indices.estimators.base import Estimator, EstimatorState, Moments, SampleState, sample_estimator
from gtap_jax.indices.estimators.complementary import OWEN_PAIRS, complementary_banzhaf, owen_shapley
from gtap_jax.indices.estimators.kernel import PAIRS_PER_DRAW, PairRegressionState, kernel_banzhaf, kernel_shapley
from gtap_jax.indices.estimators.msr import MSRState, msr_beta
from gtap_jax.indices.estimators.paired import paired_beta
from gtap_jax.indices.estimators.permutation import permutation_shapley
from gtap_jax.indices.estimators.regression import RegressionState, regression_beta
from gtap_jax.indices.focus import FOCUS_KINDS
from gtap_jax.registry import Registry

# Focused draws (gtap_jax.indices.focus.FOCUS_KINDS): "flip", a Bernoulli(d) coalition and its flip of each
# unsure player (beta_d and Banzhaf); "owen", the same with d drawn uniformly per draw (the Shapley value).


class EstimatorEntry(NamedTuple):
    """A registered estimator.

    Attributes:
        factory: ``(num_players, d) -> Estimator``.
        indices: the names in ``INDICES`` it serves.
        draw_size: ``num_players -> K``, coalitions evaluated per draw.
        focus: the kind of focused draw that samples the same index (one of ``FOCUS_KINDS``),
            or None: settled mode then never focuses this estimator's rounds.
        chains: a draw's coalitions are this many chains of equal length, each coalition one player
            away from the one before (a permutation's prefixes: 1); games that value chains
            incrementally then do (``gtap_jax.engine.ChainValueFn``). None: no such structure.
        star: each of those chains is a star instead: every coalition one player away from its first.
    """

    factory: Callable[[int, float | None], Estimator]
    indices: tuple[str, ...]
    draw_size: Callable[[int], int]
    focus: str | None = None
    chains: int | None = None
    star: bool = False

    def incremental_on(self, value_fn) -> bool:
        """Whether ``value_fn`` values this estimator's draws incrementally (chains or stars)."""
        return self.chains is not None and isinstance(value_fn, ChainValueFn)


ESTIMATORS = Registry(
    "estimator",
    {
        "permutation": EstimatorEntry(permutation_shapley, ("shapley",), lambda p: p + 1, "owen", chains=1),
        "antithetic": EstimatorEntry(antithetic_shapley, ("shapley",), lambda p: 2 * p + 2, "owen", chains=2),
        "owen": EstimatorEntry(owen_shapley, ("shapley",), lambda p: 2 * OWEN_PAIRS * (p + 1), "owen",
                               chains=2 * OWEN_PAIRS, star=True),
        "kernel": EstimatorEntry(kernel_shapley, ("shapley",), lambda p: 2 * PAIRS_PER_DRAW + 2, "owen"),
        "msr": EstimatorEntry(msr_beta, ("banzhaf", "beta"), lambda p: 1, "flip"),
        "paired": EstimatorEntry(paired_beta, ("banzhaf", "beta"), lambda p: p + 1, "flip", chains=1, star=True),
        "complementary": EstimatorEntry(complementary_banzhaf, ("banzhaf",), lambda p: 2 * p + 2, "flip", chains=2,
                                        star=True),
        "regression": EstimatorEntry(regression_beta, ("banzhaf", "beta"), lambda p: 1, "flip"),
        "kernel_banzhaf": EstimatorEntry(kernel_banzhaf, ("banzhaf",), lambda p: 2, "flip"),
    },
)


def estimators_for(index: str) -> tuple[str, ...]:
    """Names of the registered estimators that serve ``index``."""
    INDICES.check(index)
    return tuple(name for name, entry in ESTIMATORS.items() if index in entry.indices)


__all__ = [
    "ESTIMATORS",
    "FOCUS_KINDS",
    "Estimator",
    "EstimatorEntry",
    "EstimatorState",
    "MSRState",
    "Moments",
    "PairRegressionState",
    "RegressionState",
    "SampleState",
    "antithetic_shapley",
    "complementary_banzhaf",
    "estimators_for",
    "kernel_banzhaf",
    "kernel_shapley",
    "msr_beta",
    "owen_shapley",
    "paired_beta",
    "permutation_shapley",
    "regression_beta",
    "sample_estimator",
]
