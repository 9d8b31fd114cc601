"""Data sets as numpy splits: MNIST (embedded offline default), tweet sets, Tiny ImageNet.

Missing data raises :class:`DataUnavailableError` naming the source and how to
provide it; nothing falls back to synthetic data. :func:`synthetic` is for
tests and benchmarks only and says so in its name and ``source``.
"""

from __future__ import annotations

import functools
import struct
import zipfile
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gtap_jax.data.base import DataFormatError, Dataset, DataUnavailableError, check_dataset, stratified_split
from gtap_jax.data.mnist import load_embedded, load_mnist, load_path, load_tfds
from gtap_jax.data.text import DEFAULT_VOCAB_SIZE, TEXT_SETS, load_text, tokenize, vectorize
from gtap_jax.data.tiny_imagenet import load_tiny_imagenet
from gtap_jax.registry import Registry


class DatasetEntry(NamedTuple):
    """A registered data set: ``load(*, source, path, seed, **options) -> Dataset`` and its sources (default first)."""

    load: Callable[..., Dataset]
    sources: tuple[str, ...]


# Adding a data set: its loader and one line here.
DATASETS = Registry(
    "dataset",
    {
        "mnist": DatasetEntry(load_mnist, ("embedded", "tfds", "path")),
        "twitter_financial_news_topic": DatasetEntry(
            functools.partial(load_text, "twitter_financial_news_topic"), ("hf", "path")),
        "emotion": DatasetEntry(functools.partial(load_text, "emotion"), ("hf", "path")),
        "tiny_imagenet": DatasetEntry(load_tiny_imagenet, ("path", "hf")),
    },
)


def load(name: str, *, source: str | None = None, path: str | None = None, seed: int = 0, **kwargs) -> Dataset:
    """Loads a data set by name.

    Args:
        name: ``"mnist"``, ``"twitter_financial_news_topic"``, ``"emotion"`` or ``"tiny_imagenet"``.
        source: where from (default: the first of ``DATASETS[name].sources``; for MNIST the
            embedded offline subset).
        path: the local file or folder for ``source="path"``.
        seed: fixes the split.
        **kwargs: passed on (``vocab_size``, ``sequence_length``, ``val_fraction``, ``data_dir``).

    Raises:
        ValueError: for an unknown name or source.
        DataUnavailableError: when the data is not there, with how to provide it;
            ``DataFormatError`` (a subclass) when it is there but unreadable,
            too small to split, or labelled outside [0, num_classes).
    """
    entry = DATASETS[name]
    source = entry.sources[0] if source is None else source
    if source not in entry.sources:
        raise ValueError(f"unknown source {source!r} for {name}; expected one of {entry.sources}")
    if source != "path":
        return check_dataset(entry.load(source=source, path=path, seed=seed, **kwargs))
    try:
        ds = entry.load(source=source, path=path, seed=seed, **kwargs)
    except DataUnavailableError:
        raise
    except (ValueError, OSError, KeyError, EOFError, IndexError, struct.error, zipfile.BadZipFile) as e:
        # A file the user pointed at that cannot be parsed: say which and why, without a traceback.
        raise DataFormatError(f"cannot read {name} from {path}: {type(e).__name__}: {e}") from e
    return check_dataset(ds)


def synthetic(
    seed: int, input_shape: tuple[int, ...], num_classes: int, n_train: int = 256, n_test: int = 128
) -> Dataset:
    """Random inputs with labels from a random linear teacher. Tests and benchmarks only."""
    rng = np.random.default_rng(seed)
    n = n_train + 2 * n_test
    x = rng.random((n, *input_shape), dtype=np.float32)
    w = rng.normal(size=(int(np.prod(input_shape)), num_classes)).astype(np.float32)
    y = np.argmax(x.reshape(n, -1) @ w, axis=1).astype(np.int32)
    a, b = n_train, n_train + n_test
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], num_classes, "synthetic", "synthetic")


__all__ = [
    "DATASETS",
    "DEFAULT_VOCAB_SIZE",
    "DatasetEntry",
    "TEXT_SETS",
    "DataFormatError",
    "DataUnavailableError",
    "Dataset",
    "check_dataset",
    "load",
    "load_embedded",
    "load_mnist",
    "load_path",
    "load_text",
    "load_tfds",
    "load_tiny_imagenet",
    "stratified_split",
    "synthetic",
    "tokenize",
    "vectorize",
]
