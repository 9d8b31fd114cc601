"""Checks of a config before any work, target sizes, and the workdir's config record."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from gtap_jax import data as data_lib
from gtap_jax.baselines import BASELINES
from gtap_jax.experiment.progress import split_index
from gtap_jax.experiment.steps import write_json
from gtap_jax.indices import INDICES, estimators_for
from gtap_jax.indices.pilot import PILOT
from gtap_jax.models import MODELS
from gtap_jax.network import DTYPES, MASKED_VALUES, METRICS
from gtap_jax.strategies import STRATEGIES
from gtap_jax.strategies.allocation import ALLOCATIONS
from gtap_jax.uncertainty import D_RULES

log = logging.getLogger("gtap_jax")

RETRAIN_MODES = ("none", "scratch", "finetune")
TARGET_UNITS = ("players", "params", "flops")
# Fields that may change between runs sharing a workdir: they do not affect results.
RUN_ONLY_FIELDS = ("progress", "latency")
# Fields that were renamed: a config or override that still uses the old name is told the new one.
RENAMED_FIELDS = {"gtap.methods": "gtap.estimators"}


class ConfigError(ValueError):
    """A config that cannot be run; the message says what to change."""


def _get(config, field: str):
    node = config
    for part in field.split("."):
        node = node[part]
    return node


def _has(config, field: str) -> bool:
    try:
        _get(config, field)
    except (KeyError, AttributeError):
        return False
    return True


def renamed_field_hint(message: str) -> str | None:
    """``"gtap.methods is now gtap.estimators"`` when an error names a renamed field, else None."""
    for old, new in RENAMED_FIELDS.items():
        if old.rsplit(".", 1)[-1] in message:
            return f"the config field {old} is now {new}"
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _integer(lo: int):
    return lambda v: None if _is_int(v) and v >= lo else f"an integer >= {lo}"


def _number(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    def check(v):
        if not _is_number(v):
            return "a number"
        low_ok = v > lo if lo_open else v >= lo
        high_ok = hi is None or (v < hi if hi_open else v <= hi)
        if low_ok and high_ok:
            return None
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        return f"a number in {left}{lo}, {'inf' if hi is None else hi}{right}"

    return check


def _boolean(v):
    return None if isinstance(v, bool) else "True or False"


def _string(v):
    return None if isinstance(v, str) else "a string"


def _choice(choices):
    return lambda v: None if v in choices else f"one of {sorted(choices)}"


def _names(registry, kind: str, *, allow_empty: bool = True):
    def check(v):
        if not isinstance(v, tuple | list) or not all(isinstance(n, str) for n in v):
            return f"a tuple of {kind} names, some of {sorted(registry)}"
        if not v and not allow_empty:
            return f"a non-empty tuple of {kind} names, some of {sorted(registry)}"
        unknown = [n for n in v if n not in registry]
        return f"some of {sorted(registry)} (unknown {kind} {unknown[0]!r})" if unknown else None

    return check


def _target(v):
    if _is_int(v):
        return None if v >= 1 else "a neuron count >= 1"
    if isinstance(v, float):
        return None if 0 < v <= 1 else "a keep fraction in (0, 1]"
    return "a keep fraction (float in (0, 1]) or a neuron count (int)"


def _step(v):
    if _is_int(v):
        return None if v >= 1 else "an int >= 1 (neurons per round) or a fraction in (0, 1)"
    return None if isinstance(v, float) and 0 < v < 1 else "an int >= 1 (neurons per round) or a fraction in (0, 1)"


def _sequence_of(item_check, what: str):
    def check(v):
        if not isinstance(v, tuple | list) or not v:
            return f"a non-empty tuple of {what}"
        for item in v:
            problem = item_check(item)
            if problem:
                return f"a non-empty tuple of {what} (got {item!r}: expected {problem})"
        return None

    return check


def _indices(v):
    """Index names, ``beta`` also with its d (``beta_0.9``)."""
    names = sorted(INDICES) + ["beta_<d>"]
    if not isinstance(v, tuple | list) or not all(isinstance(n, str) for n in v):
        return f"a tuple of index names, some of {names}"
    unknown = [n for n in v if n not in INDICES and split_index(n)[1] is None]
    return f"some of {names} (unknown index {unknown[0]!r})" if unknown else None


def _d(v):
    return None if _is_number(v) and (v == 0 or 0 < v < 1) else "a number in (0, 1), or 0 to choose it from the bands"


# Every field of configs/common.py with what it accepts. Data, model and layers are
# checked against their registries below; sizes against the game once it is built.
FIELDS = {
    "seed": _integer(0),
    "progress": _boolean,
    "latency": _boolean,
    "data.source": _string,
    "data.path": _string,
    "model.factory": _string,
    "model.checkpoint": _string,
    "train.epochs": _integer(1),
    "train.batch_size": _integer(1),
    "train.learning_rate": _number(0, lo_open=True),
    "game.layers": _sequence_of(_string, "layer names"),
    "game.layerwise": _boolean,
    "game.metric": _choice(METRICS),
    "game.masked_value": _choice(MASKED_VALUES),
    "game.eval_examples": _integer(0),
    "game.selection_examples": _integer(0),
    "game.dtype": _choice(DTYPES),
    "game.chunk_size": _integer(0),
    "bands.keep_fractions": _sequence_of(_number(0, 1, lo_open=True), "keep fractions in (0, 1]"),
    "bands.num_samples": _integer(2),
    "bands.rule": _choice(D_RULES),
    "bands.tolerance": _number(0),
    "gtap.strategies": _names(STRATEGIES, "strategy"),
    "gtap.indices": _indices,
    "gtap.d": _d,
    "gtap.evaluations": _integer(0),
    "gtap.delta": _number(0, 1, lo_open=True, hi_open=True),
    "gtap.epsilon": _number(0),
    "gtap.max_evaluations": _integer(1),
    "gtap.focus": _boolean,
    "gtap.cost_rounds": _boolean,
    "gtap.stop_share": _number(0, 1, lo_open=True),
    "gtap.checkpoint_every": _integer(0),
    "gtap.step": _step,
    "baselines": _names(BASELINES, "baseline"),
    "allocations": _names(ALLOCATIONS, "allocation"),
    "targets": _sequence_of(_target, "keep fractions (floats in (0, 1]) or neuron counts (ints)"),
    "target_unit": _choice(TARGET_UNITS),
    "retrain.modes": _names(RETRAIN_MODES, "retrain mode", allow_empty=False),
    "retrain.seeds": _integer(1),
    "retrain.epochs": _integer(1),
    "retrain.finetune_epochs": _integer(1),
    "retrain.selected_only": _boolean,
}


def validate(config) -> None:
    """Checks every field of a config, its type and range, before any work is done.

    Raises:
        ConfigError: naming the first bad field, its value and what it accepts.
    """
    for old, new in RENAMED_FIELDS.items():
        if _has(config, old):
            raise ConfigError(f"the config field {old} is now {new}")
    if config.data.name not in data_lib.DATASETS:
        raise ConfigError(f"unknown dataset {config.data.name!r}; expected one of {list(data_lib.DATASETS)}")
    sources = data_lib.DATASETS[config.data.name].sources
    if config.data.source and config.data.source not in sources:
        raise ConfigError(f"data.source {config.data.source!r} is not one of {sources} for {config.data.name}")
    if config.get("model", {}).get("factory"):
        _validate_user_model(config)
    elif config.model.name not in MODELS:
        raise ConfigError(f"unknown model {config.model.name!r}; expected one of {list(MODELS)}")
    elif "lottery" in config.baselines and not MODELS[config.model.name].staged:
        raise ConfigError(f"baselines: the lottery ticket retrains under masks, which the built-in Linen model"
                          f" {config.model.name!r} does not do; drop it")
    if not config.game.layers:
        raise ConfigError("game.layers is empty; name at least one prunable layer")
    grouped = [layer for layer in config.game.layers if layer.endswith(":group")]
    if grouped and config.game.masked_value == "mean":
        raise ConfigError(f"game.masked_value='mean' with coupled groups {grouped}: their channels are absent"
                          " (zeros); use 'zero'")
    for field, check in FIELDS.items():
        try:
            value = _get(config, field)
        except (KeyError, AttributeError):
            raise ConfigError(f"the config has no field {field}; start from gtap_jax/configs/common.py") from None
        problem = check(value)
        if problem:
            raise ConfigError(f"{field}={value!r}: expected {problem}")
    for i in config.gtap.indices:
        estimator = config.gtap.estimators.get(i, "")
        if estimator == PILOT and i == "shapley":
            if config.gtap.evaluations:
                raise ConfigError(f"gtap.estimators.shapley={PILOT!r} needs settled rounds (gtap.evaluations=0);"
                                  f" with gtap.evaluations={config.gtap.evaluations} name an estimator")
        elif estimator and estimator not in estimators_for(i):
            raise ConfigError(f"gtap.estimators.{i}={estimator!r}; expected one of {estimators_for(i)}"
                              + (f" (or {PILOT!r})" if i == "shapley" else ""))
    if not (config.gtap.strategies and config.gtap.indices) and not config.baselines:
        raise ConfigError("no method to run: give gtap.strategies and gtap.indices, or baselines")
    if config.target_unit != "players" and not all(isinstance(t, float) for t in config.targets):
        raise ConfigError(f"targets={tuple(config.targets)!r} with target_unit={config.target_unit!r}: expected"
                          " fractions of the network's parameters or FLOPs (floats in (0, 1])")
    if config.gtap.cost_rounds and config.game.layerwise:
        raise ConfigError("gtap.cost_rounds=True needs one joint game (game.layerwise=False): in a game per layer"
                          " every method keeps each layer's share")
    if config.retrain.selected_only and not config.game.selection_examples:
        raise ConfigError("retrain.selected_only=True needs a selection set: set game.selection_examples")


def _validate_user_model(config) -> None:
    """A model from ``model.factory``: importable-looking, with a checkpoint, evaluated as trained."""
    spec, checkpoint = config.model.factory, config.model.checkpoint
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"model.factory={spec!r}: expected 'package.module:function'")
    if not checkpoint or not Path(checkpoint).is_dir():
        raise ConfigError(f"model.checkpoint={checkpoint!r}: a model from model.factory needs the folder of its"
                          " trained weights (orbax; gtap_jax.experiment.setup.save_checkpoint writes one)")
    if tuple(config.retrain.modes) != ("none",):
        raise ConfigError(f"retrain.modes={tuple(config.retrain.modes)!r}: a model from model.factory is evaluated"
                          " as trained (gtap_jax cannot train it); set retrain.modes=('none',)")
    if "lottery" in config.baselines:
        raise ConfigError("baselines: the lottery ticket retrains, which gtap_jax cannot do for a model from"
                          " model.factory; drop it (gtap_jax.baselines.lottery_ticket takes your training function)")


def target_sizes(targets, num_players: int, min_size: int = 1) -> list[int]:
    """Neuron counts from a grid of keep fractions (floats in (0, 1]: 1.0 is every neuron) or counts (ints).

    Raises:
        ConfigError: for a size outside [min_size, num_players].
    """
    out = []
    for t in targets:
        if isinstance(t, float):
            if not 0 < t <= 1:
                raise ConfigError(f"target keep fraction {t} is not in (0, 1]")
            size = max(min_size, round(t * num_players))
        else:
            size = int(t)
        if not min_size <= size <= num_players:
            raise ConfigError(f"target size {size} is not in [{min_size}, {num_players}] (the number of players)")
        out.append(size)
    return sorted(set(out), reverse=True)


def config_record(config) -> dict:
    """The config as JSON data, without the fields that do not affect results."""
    return {k: v for k, v in json.loads(config.to_json_best_effort()).items() if k not in RUN_ONLY_FIELDS}


def config_hash(config) -> str:
    """A short hash of everything in the config that affects results (step records carry it)."""
    return hashlib.sha256(json.dumps(config_record(config), sort_keys=True).encode()).hexdigest()[:16]


def check_workdir(config, workdir: Path) -> None:
    """Refuses a workdir holding another config's results; writes nothing.

    A damaged ``config.json`` is not a refusal: it is rewritten when the run
    starts, and every step record carries its own config hash.

    Raises:
        ConfigError: when ``workdir`` is not a usable folder, or its
            ``config.json`` differs in a field that affects results.
    """
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a folder")
    saved = workdir / "config.json"
    if not saved.is_file():
        return
    try:
        before = {k: v for k, v in json.loads(saved.read_text()).items() if k not in RUN_ONLY_FIELDS}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        log.warning("%s is damaged; it will be rewritten (step records carry their own config hash)", saved)
        return
    now = config_record(config)
    diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if diff:
        raise ConfigError(
            f"workdir {workdir} holds the results of another config (fields differ: {', '.join(diff)});"
            " use a new --workdir or the same config"
        )


def record_config(config, workdir: Path) -> None:
    """Writes ``workdir/config.json`` (once the config has passed every check)."""
    write_json(workdir / "config.json", json.loads(config.to_json_best_effort()))


__all__ = [
    "RENAMED_FIELDS", "RETRAIN_MODES", "ConfigError", "check_workdir", "config_hash", "record_config",
    "renamed_field_hint", "target_sizes", "validate",
]
