"""Data sets as numpy splits: MNIST (embedded offline default), tweet sets, Tiny ImageNet.

Missing data raises :class:`DataUnavailableError` naming the source and how to
provide it; nothing falls back to synthetic data. :func:`synthetic` is for
tests and benchmarks only and says so in its name and ``source``.
"""

from __future__ import annotations

import struct
import zipfile

import numpy as np

from gtap_jax.data.base import DataFormatError, Dataset, DataUnavailableError, check_dataset, stratified_split
from gtap_jax.data.mnist import load_embedded, load_path, load_tfds
from gtap_jax.data.text import DEFAULT_VOCAB_SIZE, TEXT_SETS, load_text, vectorize
from gtap_jax.data.tiny_imagenet import load_tiny_imagenet

SOURCES = {
    "mnist": ("embedded", "tfds", "path"),
    "twitter_financial_news_topic": ("hf", "path"),
    "emotion": ("hf", "path"),
    "tiny_imagenet": ("path", "hf"),
}


def load(name: str, *, source: str | None = None, path: str | None = None, seed: int = 0, **kwargs) -> Dataset:
    """Loads a data set by name.

    Args:
        name: ``"mnist"``, ``"twitter_financial_news_topic"``, ``"emotion"`` or ``"tiny_imagenet"``.
        source: where from (default: the first of ``SOURCES[name]``; for MNIST the
            embedded offline subset).
        path: the local file or folder for ``source="path"``.
        seed: fixes the split.
        **kwargs: passed on (``vocab_size``, ``val_fraction``, ``data_dir``).

    Raises:
        ValueError: for an unknown name or source.
        DataUnavailableError: when the data is not there, with how to provide it;
            ``DataFormatError`` (a subclass) when it is there but unreadable,
            too small to split, or labelled outside [0, num_classes).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(SOURCES)}")
    source = SOURCES[name][0] if source is None else source
    if source not in SOURCES[name]:
        raise ValueError(f"unknown source {source!r} for {name}; expected one of {SOURCES[name]}")
    if source != "path":
        return check_dataset(_load(name, source, path, seed, **kwargs))
    try:
        ds = _load(name, source, path, seed, **kwargs)
    except DataUnavailableError:
        raise
    except (ValueError, OSError, KeyError, EOFError, IndexError, struct.error, zipfile.BadZipFile) as e:
        # A file the user pointed at that cannot be parsed: say which and why, without a traceback.
        raise DataFormatError(f"cannot read {name} from {path}: {type(e).__name__}: {e}") from e
    return check_dataset(ds)


def _load(name: str, source: str, path, seed: int, **kwargs) -> Dataset:
    if name == "mnist":
        if source == "embedded":
            return load_embedded(seed)
        if source == "tfds":
            return load_tfds(seed=seed, **kwargs)
        if path is None:
            raise DataUnavailableError("source='path' for mnist needs path= (.npz or a folder of IDX files)")
        return load_path(path, seed=seed, **kwargs)
    if name == "tiny_imagenet":
        return load_tiny_imagenet(source=source, path=path, seed=seed, **kwargs)
    return load_text(name, source=source, path=path, seed=seed, **kwargs)


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
    "DEFAULT_VOCAB_SIZE",
    "SOURCES",
    "TEXT_SETS",
    "DataFormatError",
    "DataUnavailableError",
    "Dataset",
    "check_dataset",
    "load",
    "load_embedded",
    "load_path",
    "load_text",
    "load_tfds",
    "load_tiny_imagenet",
    "stratified_split",
    "synthetic",
    "vectorize",
]
