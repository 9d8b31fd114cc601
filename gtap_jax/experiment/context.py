"""The one value a run's steps share: config, workdir, data, network, players and what earlier steps found."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import jax

from gtap_jax.data import Dataset
from gtap_jax.engine import Plan
from gtap_jax.experiment.steps import Steps
from gtap_jax.layout import PlayerLayout
from gtap_jax.network import Network


@dataclasses.dataclass
class Context:
    """State of a run, filled in step by step.

    Attributes:
        config, workdir, steps: what to do, where, and the finished steps.
        key: ``jax.random.key(config.seed)``; each step folds in its own number.
        ds, layout, sizes: the data, the players, the target sizes.
        network: the network (initial weights until ``train_network``, then trained).
        init: the network at its initial weights when gtap_jax trains it (None otherwise).
        trained: the training step's record (test and validation accuracy).
        games: ``[(name, value_fn, layout)]``: one joint game, or one per layer.
        value_fn: the joint game (bands are measured on it).
        game_data: ``(x, y)``, the validation examples the games are played on.
        plan: chunk size and mesh, decided once for every estimate of the run.
        d: the chosen d of beta_d.
        values_per_second: coalition values per second measured on the bands (for expected times).
        fills: ``{layer: float[units]}`` silenced neurons' outputs when ``game.masked_value="mean"``, else None.
        selection_data: ``(x, y)``, validation examples the game never sees, on which the reported variants are
            chosen (None without ``game.selection_examples``).
        cost: the network's parameters or FLOPs by kept players per group, where targets or allocations need it.
        targets: what to prune to: player counts, or budgets of ``cost``.
    """

    config: Any
    workdir: Path
    steps: Steps
    key: Any
    ds: Dataset
    network: Network
    layout: PlayerLayout
    sizes: list[int]
    init: Network | None = None
    trained: dict | None = None
    games: list | None = None
    value_fn: Any = None
    game_data: tuple | None = None
    plan: Plan | None = None
    d: float | None = None
    values_per_second: float | None = None
    fills: dict | None = None
    selection_data: tuple | None = None
    cost: Any = None
    targets: list | None = None

    @property
    def progress(self) -> bool:
        return bool(self.config.progress)

    def fit(self, key, network: Network, *, masks=None, epochs=None, checkpoint_dir=None) -> Network:
        """``network`` trained on the training split with the config's optimiser settings."""
        tr = self.config.train
        return network.fit(key, self.ds.x_train, self.ds.y_train, epochs=tr.epochs if epochs is None else epochs,
                           batch_size=tr.batch_size, learning_rate=tr.learning_rate, masks=masks,
                           checkpoint_dir=checkpoint_dir, progress=self.progress)


def stable_id(name: str) -> int:
    """A number for a method name that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def method_key(ctx: Context, step: int, name: str):
    """The key of one method's work: step number and method name folded into the run's key."""
    return jax.random.fold_in(jax.random.fold_in(ctx.key, step), stable_id(name))


__all__ = ["Context", "method_key", "stable_id"]
