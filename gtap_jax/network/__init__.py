"""The network side: one model adapter and what is built on it.

``adapter`` declares what the rest asks of a trained network (:class:`Network`);
``staged``, ``linen`` and ``nnx`` implement it for the built-in models, any Linen
module and any NNX module, and ``adapt`` picks one. On top: the neuron game
(``game``), compaction (``slicing`` for the built-in models, ``chain`` for Flax
chains), masked weights, and training of the built-in models (``train``).
"""

from gtap_jax.network.adapt import (
    Compacted,
    CompactModel,
    accuracy,
    adapt,
    compact,
    compact_flax,
    masked_weights,
    mean_fills,
    restore,
)
from gtap_jax.network.adapter import Network, SizeReport, count_params, size_report
from gtap_jax.network.game import DTYPES, MASKED_VALUES, METRICS, metric_value, network_game
from gtap_jax.network.linen import LinenNetwork, masked_apply, masked_variables
from gtap_jax.network.nnx import NNXNetwork, masked_clone, masked_model, unmasked
from gtap_jax.network.staged import SiteSpec, StagedModel, StagedNetwork, apply_site, layout_for
from gtap_jax.network.train import TrainResult, init_params, load_params, save_params, train

__all__ = [
    "DTYPES",
    "MASKED_VALUES",
    "METRICS",
    "CompactModel",
    "Compacted",
    "LinenNetwork",
    "NNXNetwork",
    "Network",
    "SiteSpec",
    "SizeReport",
    "StagedModel",
    "StagedNetwork",
    "TrainResult",
    "accuracy",
    "adapt",
    "apply_site",
    "compact",
    "compact_flax",
    "count_params",
    "init_params",
    "layout_for",
    "load_params",
    "masked_apply",
    "masked_clone",
    "masked_model",
    "masked_variables",
    "masked_weights",
    "mean_fills",
    "metric_value",
    "network_game",
    "restore",
    "save_params",
    "size_report",
    "train",
    "unmasked",
]
