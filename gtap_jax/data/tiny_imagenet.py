"""Tiny ImageNet (64x64x3, 200 classes): a local folder in the standard layout, or Hugging Face.

Standard layout (as ``tiny-imagenet-200.zip`` unpacks): ``wnids.txt``,
``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` with
``val/val_annotations.txt``. The official test split has no labels, so the
labelled validation set is the test split here and a stratified fraction of
the training set is the validation split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gtap_jax.data.base import Dataset, DataUnavailableError, stratified_split

HF_NAME = "zh-plus/tiny-imagenet"


def _read_images(files) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(f).convert("RGB"), np.uint8) for f in files])


def _images(x) -> np.ndarray:
    return np.asarray(x, np.float32) / 255.0


def load_tiny_imagenet(
    *, source: str = "path", path: str | os.PathLike | None = None, val_fraction: float = 0.1, seed: int = 0
) -> Dataset:
    """Tiny ImageNet from ``path`` (standard layout) or ``source="hf"``."""
    if source == "hf":
        try:
            import datasets

            ds = datasets.load_dataset(HF_NAME)
        except Exception as e:
            raise DataUnavailableError(
                f"could not load {HF_NAME} from Hugging Face ({type(e).__name__}: {e}); "
                "download tiny-imagenet-200 and use source='path'"
            ) from e
        xtr = np.stack([np.asarray(im.convert("RGB")) for im in ds["train"]["image"]])
        ytr = np.asarray(ds["train"]["label"], np.int32)
        xte = np.stack([np.asarray(im.convert("RGB")) for im in ds["valid"]["image"]])
        yte = np.asarray(ds["valid"]["label"], np.int32)
    elif source == "path":
        root = Path(path).expanduser() if path is not None else None
        if root is None or not (root / "wnids.txt").exists():
            raise DataUnavailableError(
                f"no Tiny ImageNet at {root}: pass path= to an unpacked tiny-imagenet-200 folder "
                "(wnids.txt, train/, val/)"
            )
        wnids = (root / "wnids.txt").read_text().split()
        label = {w: i for i, w in enumerate(wnids)}
        train = sorted((f, label[w]) for w in wnids for f in (root / "train" / w / "images").glob("*.JPEG"))
        ann = [line.split("\t")[:2] for line in (root / "val" / "val_annotations.txt").read_text().splitlines()]
        val = sorted((root / "val" / "images" / f, label[w]) for f, w in ann)
        xtr, ytr = _read_images([f for f, _ in train]), np.array([c for _, c in train], np.int32)
        xte, yte = _read_images([f for f, _ in val]), np.array([c for _, c in val], np.int32)
    else:
        raise ValueError(f"unknown source {source!r} for tiny_imagenet; expected 'path' or 'hf'")
    tr, va = stratified_split(ytr, (1 - val_fraction, val_fraction), seed)
    return Dataset(
        _images(xtr[tr]), ytr[tr], _images(xtr[va]), ytr[va], _images(xte), yte, 200, "tiny_imagenet", source
    )
