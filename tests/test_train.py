import jax
import numpy as np
import pytest

from gtap_jax import data
from gtap_jax.models import LeNet5, lenet300
from gtap_jax.network import accuracy, load_params, save_params, train


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist")


def test_lenet300_reaches_90_percent(mnist):
    model = lenet300()
    res = train(jax.random.key(0), model, mnist.x_train, mnist.y_train, epochs=8, x_val=mnist.x_val,
                y_val=mnist.y_val, progress=False)
    assert accuracy(model, res.params, mnist.x_test, mnist.y_test) >= 0.90
    assert len(res.history) == 8 and res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_lenet5_reaches_93_percent(mnist):
    model = LeNet5()
    res = train(jax.random.key(0), model, mnist.x_train, mnist.y_train, epochs=6, progress=False)
    assert accuracy(model, res.params, mnist.x_test, mnist.y_test) >= 0.93


def test_deterministic_and_resumable(mnist, tmp_path):
    model = lenet300()
    x, y = mnist.x_train[:600], mnist.y_train[:600]
    whole = train(jax.random.key(1), model, x, y, epochs=3, progress=False)
    again = train(jax.random.key(1), model, x, y, epochs=3, progress=False)
    train(jax.random.key(1), model, x, y, epochs=2, checkpoint_dir=tmp_path / "ckpt", progress=False)
    resumed = train(jax.random.key(1), model, x, y, epochs=3, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert len(resumed.history) == 1  # only epoch 3 ran
    for a, b, c in zip(*(jax.tree.leaves(r.params) for r in (whole, again, resumed)), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    save_params(tmp_path / "params", whole.params)
    restored = load_params(tmp_path / "params", whole.params)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_of_token_ids_trains_from_fresh_parameters():
    """Without ``params``, train() initialises the model on an example of the data's own dtype (integer ids)."""
    from gtap_jax.models import text_transformer

    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (256, 6)).astype(np.int32)
    y = (x[:, 0] < 15).astype(np.int32)  # the first token decides
    model = text_transformer(2, vocab_size=30, width=8, depth=1, heads=2, hidden=16)
    result = train(jax.random.key(0), model, x, y, epochs=20, learning_rate=1e-2, progress=False, state={})
    assert result.params["embed"]["embedding"].shape == (30, 8)
    assert accuracy(model, {"params": result.params}, x, y) > 0.9
