"""Power indices: exact enumeration and Monte Carlo estimators with standard errors."""

from gtap_jax.indices.estimate import (
    DEFAULT_METHODS,
    METHODS,
    Attribution,
    default_method,
    draws_per_chunk,
    estimate,
    make_estimator,
)
from gtap_jax.indices.estimators import (
    Estimator,
    EstimatorState,
    Moments,
    MSRState,
    RegressionState,
    SampleState,
    msr_beta,
    paired_beta,
    permutation_shapley,
    regression_beta,
)
from gtap_jax.indices.exact import (
    INDEX_NAMES,
    MAX_EXACT_PLAYERS,
    coalition_values,
    exact,
    indices_from_table,
    resolve_d,
)

INDICES = {"shapley": permutation_shapley, "banzhaf": msr_beta, "beta": msr_beta}

__all__ = [
    "DEFAULT_METHODS",
    "INDEX_NAMES",
    "INDICES",
    "MAX_EXACT_PLAYERS",
    "METHODS",
    "Attribution",
    "Estimator",
    "EstimatorState",
    "MSRState",
    "Moments",
    "RegressionState",
    "SampleState",
    "coalition_values",
    "default_method",
    "draws_per_chunk",
    "estimate",
    "exact",
    "indices_from_table",
    "make_estimator",
    "msr_beta",
    "paired_beta",
    "permutation_shapley",
    "regression_beta",
    "resolve_d",
]
