"""Power indices: exact enumeration and Monte Carlo estimators with standard errors.

Two registries: ``INDICES`` (what is estimated: its weights and its d) and
``ESTIMATORS`` (how: one file per estimator under ``estimators/``, each entry with
the indices it serves, its draw size and its kind of focused draw). ``estimate``
drives any of them; ``focus`` draws aimed at a few players.
"""

from gtap_jax.indices.base import INDICES, IndexSpec, bernoulli_weights, index_weights, resolve_d, shapley_weights
from gtap_jax.indices.estimate import (
    PAIRED_MIN_DRAWS,
    REGRESSION_MAX_PLAYERS,
    REGRESSION_MIN_DRAWS_PER_PLAYER,
    attribution_of,
    default_estimator,
    draw_size,
    draws_per_chunk,
    estimate,
    make_estimator,
    new_state,
)
from gtap_jax.indices.estimators import (
    ESTIMATORS,
    FOCUS_KINDS,
    Estimator,
    EstimatorEntry,
    EstimatorState,
    Moments,
    MSRState,
    RegressionState,
    SampleState,
    antithetic_shapley,
    estimators_for,
    kernel_shapley,
    msr_beta,
    paired_beta,
    permutation_shapley,
    regression_beta,
)
from gtap_jax.indices.exact import MAX_EXACT_PLAYERS, coalition_values, exact, indices_from_table
from gtap_jax.indices.result import Attribution, EstimateState

__all__ = [
    "ESTIMATORS",
    "FOCUS_KINDS",
    "INDICES",
    "MAX_EXACT_PLAYERS",
    "PAIRED_MIN_DRAWS",
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
    "default_estimator",
    "draw_size",
    "draws_per_chunk",
    "estimate",
    "estimators_for",
    "exact",
    "index_weights",
    "indices_from_table",
    "kernel_shapley",
    "make_estimator",
    "msr_beta",
    "new_state",
    "paired_beta",
    "permutation_shapley",
    "regression_beta",
    "resolve_d",
    "shapley_weights",
]
