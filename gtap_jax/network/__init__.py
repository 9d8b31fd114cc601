"""The network side: the model contract, its adapters, and what is built on them, with no framework in its face.

``contract`` declares what the rest asks of a trained network (:class:`Network`, :class:`Shrinkable`,
:class:`Trainable`); ``any_model`` holds :data:`ADAPTERS`, the registry of adapters by model type
(``staged/`` for the built-in models, ``linen/`` for any Linen module, ``nnx/`` for any NNX module; what
any Flax module's adapter shares is in ``modules/``). On top: the neuron game (``game``), one way to make
any model smaller (``shrink``: :func:`compact`), and training of the built-in models (``train``).
Linen- and NNX-only helpers are imported from ``gtap_jax.network.linen`` and ``gtap_jax.network.nnx``.
"""

from gtap_jax.network import moved
from gtap_jax.network.any_model import ADAPTERS, accuracy, adapt, adapter_for, masked_weights, mean_fills, restore
from gtap_jax.network.contract import (
    Adapter,
    Network,
    Shrinkable,
    SizeReport,
    Trainable,
    count_params,
    size_report,
)
from gtap_jax.network.game import DTYPES, MASKED_VALUES, METRICS, metric_value, network_game
from gtap_jax.network.shrink import Compacted, CompactModel, compact, compact_flax
from gtap_jax.network.train import TrainResult, init_params, load_params, save_params, train

# names this package exported before the adapters had folders: they keep working one release, with a warning
_MOVED_NAMES = {
    "LinenNetwork": "gtap_jax.network.linen",
    "masked_apply": "gtap_jax.network.linen",
    "masked_variables": "gtap_jax.network.linen",
    "NNXNetwork": "gtap_jax.network.nnx",
    "masked_clone": "gtap_jax.network.nnx",
    "masked_model": "gtap_jax.network.nnx",
    "unmasked": "gtap_jax.network.nnx",
    "SiteSpec": "gtap_jax.network.staged",
    "StagedModel": "gtap_jax.network.staged",
    "StagedNetwork": "gtap_jax.network.staged",
    "apply_site": "gtap_jax.network.staged",
    "layout_for": "gtap_jax.network.staged",
}
moved.install(__name__)


def __getattr__(name):
    return moved.moved_name(__name__, name, _MOVED_NAMES)


__all__ = [
    "ADAPTERS",
    "DTYPES",
    "MASKED_VALUES",
    "METRICS",
    "Adapter",
    "CompactModel",
    "Compacted",
    "Network",
    "Shrinkable",
    "SizeReport",
    "TrainResult",
    "Trainable",
    "accuracy",
    "adapt",
    "adapter_for",
    "compact",
    "compact_flax",
    "count_params",
    "init_params",
    "load_params",
    "masked_weights",
    "mean_fills",
    "metric_value",
    "network_game",
    "restore",
    "save_params",
    "size_report",
    "train",
]
