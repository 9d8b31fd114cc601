"""The dataset container and the error for data that is not there."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DataUnavailableError(RuntimeError):
    """Requested data is not on this machine; the message says how to provide it."""


class Dataset(NamedTuple):
    """Train / validation / test splits as numpy arrays.

    Images are float32 ``[N, H, W, C]`` in [0, 1]; text is float32 ``[N, V]``
    binary term-frequency vectors; labels are int32 ``[N]``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    source: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        return (
            f"{self.name} ({self.source}): train {len(self.y_train)}, val {len(self.y_val)}, "
            f"test {len(self.y_test)}, input {self.input_shape}, {self.num_classes} classes"
        )


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> list[np.ndarray]:
    """Indices of a deterministic class-stratified split into len(fractions) parts."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for part, chunk in zip(parts, np.split(idx, (bounds * len(idx)).round().astype(int)), strict=True):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]
