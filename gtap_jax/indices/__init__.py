"""Power indices: exact enumeration and Monte Carlo estimators with standard errors.

Two registries: ``INDICES`` (what is estimated: its weights and its d) and
``ESTIMATORS`` (how: a factory and the indices it serves).
"""

from gtap_jax.indices.base import INDICES, IndexSpec, bernoulli_weights, index_weights, resolve_d, shapley_weights
from gtap_jax.indices.estimate import (
    ESTIMATORS,
    REGRESSION_MAX_PLAYERS,
    REGRESSION_MIN_DRAWS_PER_PLAYER,
    Attribution,
    EstimateState,
    EstimatorEntry,
    attribution_of,
    default_method,
    draws_per_chunk,
    estimate,
    make_estimator,
    methods_for,
)
from gtap_jax.indices.estimators import (
    Estimator,
    EstimatorState,
    Moments,
    MSRState,
    SampleState,
    antithetic_shapley,
    msr_beta,
    paired_beta,
    permutation_shapley,
)
from gtap_jax.indices.exact import MAX_EXACT_PLAYERS, coalition_values, exact, indices_from_table
from gtap_jax.indices.kernel import kernel_shapley
from gtap_jax.indices.regression import RegressionState, regression_beta

__all__ = [
    "ESTIMATORS",
    "INDICES",
    "MAX_EXACT_PLAYERS",
    "REGRESSION_MAX_PLAYERS",
    "REGRESSION_MIN_DRAWS_PER_PLAYER",
    "Attribution",
    "EstimateState",
    "Estimator",
    "EstimatorEntry",
    "EstimatorState",
    "IndexSpec",
    "MSRState",
    "Moments",
    "RegressionState",
    "SampleState",
    "antithetic_shapley",
    "attribution_of",
    "bernoulli_weights",
    "coalition_values",
    "default_method",
    "draws_per_chunk",
    "estimate",
    "exact",
    "index_weights",
    "indices_from_table",
    "kernel_shapley",
    "make_estimator",
    "methods_for",
    "msr_beta",
    "paired_beta",
    "permutation_shapley",
    "regression_beta",
    "resolve_d",
    "shapley_weights",
]
