"""The dataset container and the error for data that is not there."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class DataUnavailableError(RuntimeError):
    """Requested data is not on this machine; the message says how to provide it."""


class DataFormatError(DataUnavailableError):
    """The data is there but cannot be used (unreadable file, bad labels, too few examples)."""


class Dataset(NamedTuple):
    """Train / validation / test splits as numpy arrays.

    Images are float32 ``[N, H, W, C]`` in [0, 1]; text is float32 ``[N, V]``
    binary term-frequency vectors or int32 ``[N, L]`` token ids; labels are int32 ``[N]``.
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

    @property
    def example(self) -> jax.ShapeDtypeStruct:
        """One input example's shape and dtype (what a model is initialised, costed and timed on)."""
        return jax.ShapeDtypeStruct(self.input_shape, self.x_train.dtype)

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


def check_dataset(ds: Dataset) -> Dataset:
    """Checks what training and the games assume of a data set.

    Raises:
        DataFormatError: for an empty split, inputs and labels of different
            lengths, labels that are not integers in [0, num_classes), or
            inputs that are not finite.
    """
    total = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        where = f"{ds.name} ({ds.source}), {split} split"
        if len(y) == 0:
            raise DataFormatError(f"{where} is empty ({total} examples in all): too few examples to split")
        if len(x) != len(y):
            raise DataFormatError(f"{where}: {len(x)} inputs but {len(y)} labels")
        if not np.issubdtype(np.asarray(y).dtype, np.integer):
            raise DataFormatError(f"{where}: labels must be integer class ids, got dtype {np.asarray(y).dtype}")
        if y.min() < 0 or y.max() >= ds.num_classes:
            raise DataFormatError(
                f"{where}: labels must lie in [0, {ds.num_classes}) for {ds.num_classes} classes, found"
                f" {int(y.min())}..{int(y.max())}"
            )
        if not np.all(np.isfinite(x)):
            raise DataFormatError(f"{where}: inputs contain NaN or infinite values")
    return ds
