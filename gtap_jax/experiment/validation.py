"""Checks of a config before any work, target sizes, and the workdir's config record."""

from __future__ import annotations

import json
from pathlib import Path

from gtap_jax import data as data_lib
from gtap_jax.baselines import BASELINES
from gtap_jax.experiment.steps import write_json
from gtap_jax.games.network import DTYPES, MASKED_VALUES, METRICS
from gtap_jax.indices import INDICES, methods_for
from gtap_jax.models import MODELS
from gtap_jax.strategies import STRATEGIES
from gtap_jax.uncertainty import D_RULES

RETRAIN_MODES = ("none", "scratch", "finetune")
# Fields that may change between runs sharing a workdir: they do not affect results.
RUN_ONLY_FIELDS = ("progress",)


class ConfigError(ValueError):
    """A config that cannot be run; the message says what to change."""


def _one_of(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not one of {sorted(allowed)}")


def _some_of(field: str, values, registry, kind: str) -> None:
    for v in values:
        if v not in registry:
            raise ConfigError(f"unknown {kind} {v!r} in {field}; expected some of {sorted(registry)}")


def validate(config) -> None:
    """Checks a config before any work is done.

    Raises:
        ConfigError: naming the field and what it accepts.
    """
    if config.data.name not in data_lib.SOURCES:
        raise ConfigError(f"unknown dataset {config.data.name!r}; expected one of {list(data_lib.SOURCES)}")
    sources = data_lib.SOURCES[config.data.name]
    if config.data.source and config.data.source not in sources:
        raise ConfigError(f"data.source {config.data.source!r} is not one of {sources} for {config.data.name}")
    if config.model.name not in MODELS:
        raise ConfigError(f"unknown model {config.model.name!r}; expected one of {list(MODELS)}")
    if not config.game.layers:
        raise ConfigError("game.layers is empty; name at least one prunable layer")
    _one_of("game.metric", config.game.metric, METRICS)
    _one_of("game.masked_value", config.game.masked_value, MASKED_VALUES)
    _one_of("game.dtype", config.game.dtype, DTYPES)
    _some_of("gtap.strategies", config.gtap.strategies, STRATEGIES, "strategy")
    _some_of("gtap.indices", config.gtap.indices, INDICES, "index")
    for i in config.gtap.indices:
        method = config.gtap.methods.get(i, "")
        if method and method not in methods_for(i):
            raise ConfigError(f"gtap.methods.{i}={method!r}; expected one of {methods_for(i)}")
    _some_of("baselines", config.baselines, BASELINES, "baseline method")
    d = config.gtap.d
    if d is not None and d != 0 and not 0 < d < 1:
        raise ConfigError(f"gtap.d must be in (0, 1) (or 0 to choose it from the bands), got {d}")
    _one_of("bands.rule", config.bands.rule, D_RULES)
    if not config.targets:
        raise ConfigError("targets is empty; give keep fractions in (0, 1] or neuron counts")
    _some_of("retrain.modes", config.retrain.modes, RETRAIN_MODES, "retrain mode")
    if config.gtap.evaluations < 1:
        raise ConfigError(f"gtap.evaluations must be >= 1, got {config.gtap.evaluations}")


def target_sizes(targets, num_players: int, min_size: int = 1) -> list[int]:
    """Neuron counts from a grid of keep fractions (floats in (0, 1]) or counts (ints).

    Raises:
        ConfigError: for a size outside [min_size, num_players].
    """
    out = []
    for t in targets:
        if isinstance(t, float) and not float(t).is_integer():
            if not 0 < t <= 1:
                raise ConfigError(f"target keep fraction {t} is not in (0, 1]")
            size = max(min_size, round(t * num_players))
        else:
            size = int(t)
        if not min_size <= size <= num_players:
            raise ConfigError(f"target size {size} is not in [{min_size}, {num_players}] (the number of players)")
        out.append(size)
    return sorted(set(out), reverse=True)


def check_workdir(config, workdir: Path) -> None:
    """Refuses a workdir holding another config's results; records this config there.

    Raises:
        ConfigError: when ``workdir/config.json`` differs in a field that affects results.
    """
    saved = workdir / "config.json"
    now = json.loads(config.to_json_best_effort())
    if saved.exists():
        before = json.loads(saved.read_text())
        diff = [k for k in sorted(set(before) | set(now)) if k not in RUN_ONLY_FIELDS and before.get(k) != now.get(k)]
        if diff:
            raise ConfigError(
                f"workdir {workdir} holds the results of another config (fields differ: {', '.join(diff)});"
                " use a new --workdir or the same config"
            )
    write_json(saved, now)


__all__ = ["RETRAIN_MODES", "ConfigError", "check_workdir", "target_sizes", "validate"]
