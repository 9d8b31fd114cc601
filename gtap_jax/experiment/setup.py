"""From a config to a network: the built-in model it names, or your own trained Flax model.

This is the one place that reads ``model.factory``. A config with ``model.factory =
"package.module:function"`` plays the game on the Linen or NNX model that
``function(**model.options)`` returns, with the trained weights restored from
``model.checkpoint`` (an orbax checkpoint of the Linen variables, every collection, or
of the NNX model's state: :func:`save_checkpoint` writes one). ``game.layers`` are
module paths (:mod:`gtap_jax.network.modules.masking`) and ``model.apply_kwargs`` the keyword
arguments of every call (e.g. ``{"train": False}``).

gtap_jax does not train such a model, so it is evaluated as trained (retrain mode
``none``) and the lottery ticket (which retrains) is left to
:func:`gtap_jax.baselines.lottery_ticket` with your training function. Pruned sizes
come from the smaller model where the adapter can build one (a chain of Dense / Conv /
BatchNorm layers) and are NaN otherwise, the masked model's accuracy then reported.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import jax
import numpy as np

from gtap_jax.experiment.validation import ConfigError
from gtap_jax.models import MODELS
from gtap_jax.network import Network, adapt, restore


def save_checkpoint(directory: str | os.PathLike, model, variables=None) -> None:
    """Writes what ``model.checkpoint`` reads: a Linen model's ``variables`` or an NNX model's state."""
    adapt(model, variables).save(directory)


def load_network(config, ds, key) -> tuple[Network, bool]:
    """``(network, trainable)``: the config's network and whether gtap_jax trains it.

    A built-in model starts from random weights (``fold_in(key, 0)``); a model from
    ``model.factory`` is restored from ``model.checkpoint``.

    Raises:
        ConfigError: naming what is wrong with the model fields.
    """
    options = dict(config.model.options)
    if config.model.factory:
        return _user_network(config, ds.x_val[:1]), False
    try:
        model = MODELS[config.model.name](num_classes=ds.num_classes, **options)
    except TypeError as e:  # model.options that the factory does not take
        raise ConfigError(f"model.options {options} for model {config.model.name!r}: {e}") from None
    rows = getattr(model, "vocab_size", None)  # an embedding table's rows: token ids must lie below
    if rows is not None and np.issubdtype(ds.x_train.dtype, np.integer):
        largest = max(int(x.max()) for x in (ds.x_train, ds.x_val, ds.x_test))
        if largest >= rows:
            raise ConfigError(f"model.options.vocab_size={rows} embeds token ids below {rows}, but the data has "
                              f"id {largest}: give data.options.vocab_size <= {rows}")
    return adapt(model).initialized(jax.random.fold_in(key, 0), ds.example), True


def _user_network(config, example) -> Network:
    spec = config.model.factory
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"model.factory={spec!r}: cannot import it ({e})") from None
    try:
        model = factory(**dict(config.model.options))
    except TypeError as e:  # model.options that the factory does not take
        raise ConfigError(f"model.factory={spec!r} with model.options {dict(config.model.options)}: {e}") from None
    path = Path(config.model.checkpoint).resolve()
    try:
        return restore(model, path, example, apply_kwargs=dict(config.model.apply_kwargs))
    except TypeError as e:
        raise ConfigError(f"model.factory={spec!r} returned a {type(model).__name__}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"model.checkpoint={str(path)!r}: {e}") from None


__all__ = ["load_network", "save_checkpoint"]
