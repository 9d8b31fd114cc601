"""Data loaders: the embedded MNIST subset, and every local-file path on files written here."""

import gzip
import struct

import numpy as np
import pytest
from local_files import write_text_folder, write_tiny_imagenet

from gtap_jax import data
from gtap_jax.data import DataUnavailableError


def test_embedded_mnist():
    d = data.load("mnist")
    assert d.source == "embedded" and d.num_classes == 10
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (3500, 500, 1000)
    assert d.x_train.shape[1:] == (28, 28, 1) and d.x_train.dtype == np.float32
    assert 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(d.y_test), np.full(10, 100))
    # Real digits, not noise: mean images of two classes differ clearly, and the split is fixed.
    assert np.abs(d.x_train[d.y_train == 0].mean(0) - d.x_train[d.y_train == 1].mean(0)).max() > 0.5
    np.testing.assert_array_equal(data.load("mnist").y_train, d.y_train)


def _write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_from_idx_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (100, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    ytr, yte = np.repeat(np.arange(10), 10), np.arange(20) % 10
    for name, arr in [("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                      ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)]:
        _write_idx(tmp_path / f"{name}.gz", arr)
    d = data.load("mnist", source="path", path=str(tmp_path))
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (90, 10, 20)
    np.testing.assert_allclose(d.x_test[..., 0], xte / 255.0, rtol=1e-6)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d2 = data.load("mnist", source="path", path=str(tmp_path / "mnist.npz"))
    np.testing.assert_array_equal(d2.y_test, yte)


def test_text_from_csv_folder(tmp_path):
    rows = write_text_folder(tmp_path, n=60)
    d = data.load("emotion", source="path", path=str(tmp_path), vocab_size=20)
    assert d.x_train.shape[1] == 20 and set(np.unique(d.x_train)) <= {0.0, 1.0}
    assert len(d.y_test) == 15 and d.num_classes == 6
    # "market" is one feature, present exactly in the label-0 texts.
    from gtap_jax.data.text import vectorize

    (xtr,), vocab = vectorize([r["text"] for r in rows[:45]], vocab_size=20)
    col = list(vocab).index("market")
    np.testing.assert_array_equal(xtr[:, col], [float(i % 3 == 0) for i in range(45)])


def test_text_as_token_ids(tmp_path):
    write_text_folder(tmp_path, n=60)
    d = data.load("emotion", source="path", path=str(tmp_path), vocab_size=6, sequence_length=4)
    assert d.x_train.dtype == np.int32 and d.x_train.shape[1:] == (4,) and d.example.dtype == np.int32
    assert 0 <= d.x_train.min() and d.x_test.max() < 6
    # the 4 most frequent training words get ids 2..5, any other word 1, padding 0; texts are cut after 4 words
    (train, other) = data.tokenize(["the cat sat", "the the cat dog"], ["a cat the bird ran away now"],
                                   vocab_size=4, length=4)
    ids = {"cat": 2, "the": 3}  # the two most frequent words, in the vectorizer's (alphabetical) order
    np.testing.assert_array_equal(train, [[3, 2, 1, 0], [3, 3, 2, 1]])
    np.testing.assert_array_equal(other, [[ids["cat"], ids["the"], 1, 1]])  # "a" is no word token
    with pytest.raises(ValueError, match="sequence_length"):
        data.tokenize(["x y"], vocab_size=2, length=4)


def test_tiny_imagenet_folder(tmp_path):
    write_tiny_imagenet(tmp_path, classes=2, per_class=10, val=4)
    d = data.load("tiny_imagenet", path=str(tmp_path))
    assert d.x_train.shape[1:] == (64, 64, 3) and len(d.y_train) + len(d.y_val) == 20
    np.testing.assert_array_equal(d.y_test, [0, 1, 0, 1])


@pytest.mark.parametrize("name,kwargs,match", [
    ("mnist", {"source": "path", "path": "/nonexistent/mnist.npz"}, "no MNIST at"),
    ("mnist", {"source": "path"}, "needs path="),
    ("tiny_imagenet", {}, "tiny-imagenet-200"),
    ("emotion", {"source": "path", "path": "/nonexistent"}, "no data at"),
])
def test_missing_data_says_how_to_provide_it(name, kwargs, match):
    with pytest.raises(DataUnavailableError, match=match):
        data.load(name, **kwargs)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar10")
    with pytest.raises(ValueError, match="unknown source"):
        data.load("mnist", source="web")
