"""Test setup, before JAX initialises its backends (hence at import time).

Four simulated CPU devices and rank promotion as an error. Then two settings for speed only: the
tests' networks are small and many of their shapes are compiled once each, so compiling, not
running, is most of their time (benchmarks/RESULTS.md, "The test suite on 2 CPU cores").
XLA's CPU backend runs at ``-O0`` and with its older fusion emitters, not the MLIR ones (the older ones compile
these programs in about two thirds of the CPU time), and compiled programs go to a persistent cache
that the two xdist workers and the processes the tests start (which inherit the environment) share:
the end-to-end runs compile the same programs many times. The cache is a fresh folder per session,
removed at its end; a ``JAX_COMPILATION_CACHE_DIR`` set beforehand is used and kept; so is a value
of either XLA flag set beforehand.
"""

import os
import shutil
import tempfile
from collections import Counter

os.environ.setdefault("JAX_PLATFORMS", "cpu")
for _flag, _value in (("xla_backend_optimization_level", "0"), ("xla_cpu_use_fusion_emitters", "false")):
    if f"--{_flag}" not in os.environ.get("XLA_FLAGS", ""):  # a value set beforehand is kept
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{_flag}={_value}".strip()
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the xdist controller (or a serial run): workers inherit it
    _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gtap-jax-test-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

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


def pytest_sessionfinish(session):
    """The session's own compilation cache goes when the session ends (the controller's, after its workers)."""
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
