"""Test setup: four simulated CPU devices, and rank promotion as an error.

Both must be set before JAX initialises its backends, hence at import time.
"""

import os
from collections import Counter

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mesh():
    """A one-axis mesh over the four simulated CPU devices."""
    assert len(jax.devices()) == 4, "conftest must configure 4 CPU devices before JAX starts"
    return jax.make_mesh((4,), ("coalitions",))


@pytest.fixture(scope="session")
def one_device():
    """A mesh of one device: what ``mesh=None`` would be on a single-device machine."""
    from gtap_jax import engine

    return engine.coalition_mesh(jax.devices()[:1])


def pytest_collection_modifyitems(items):
    """Files with the most ``slow`` tests first, each file's tests kept together and in order.

    Under ``-n 2 --dist loadfile`` (pyproject.toml) the end-to-end file then starts at once on one
    worker while the other works through the rest, instead of starting last and running alone.
    """
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: a file's tests are contiguous, ties keep their order
