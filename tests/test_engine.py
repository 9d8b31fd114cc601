import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gtap_jax import engine, evaluate_coalitions, make_plan
from gtap_jax.engine import evaluate as evaluate_module
from gtap_jax.engine import memory
from gtap_jax.games import additive_game, lookup_game, random_lookup_table


def _random_masks(seed, c, p):
    return np.random.default_rng(seed).random((c, p)) < 0.5


def _tanh_net_game(p=12, n=64):
    """A small masked two-layer net: exercises matmuls, where results could depend on batching."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, 5)), jnp.float32)
    w1 = jnp.asarray(rng.normal(size=(5, p)), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(p, 3)), jnp.float32)

    def value(mask):
        h = jnp.where(mask, jnp.tanh(x @ w1), 0.0)
        return jnp.mean(jax.nn.logsumexp(h @ w2, axis=-1))

    return value


def test_matches_one_by_one():
    w = np.linspace(-1, 2, 9).astype(np.float32)
    masks = _random_masks(0, 37, 9)
    got = evaluate_coalitions(additive_game(w), masks, plan=make_plan(chunk_size=8))
    want = (masks * w).sum(1)
    assert got.shape == (37,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_compiles_once_per_chunk_size():
    traces = []
    w = jnp.arange(6.0)

    def value(mask):
        traces.append(1)  # runs only while JAX traces
        return jnp.sum(jnp.where(mask, w, 0.0))

    for c in (3, 64, 100, 257, 1000):
        out = evaluate_coalitions(value, _random_masks(c, c, 6), plan=make_plan(chunk_size=64))
        assert out.shape == (c,)
    assert len(traces) == 2  # one shape check (eval_shape) and one compilation, for every C


@pytest.mark.parametrize("make_game", [lambda: lookup_game(random_lookup_table(1, 10)), lambda: _tanh_net_game(10)])
def test_sharded_equals_unsharded(mesh, one_device, make_game):
    game = make_game()
    masks = _random_masks(2, 1003, 10)
    plain = evaluate_coalitions(game, masks, plan=make_plan(chunk_size=256, mesh=one_device))
    sharded = evaluate_coalitions(game, masks, plan=make_plan(chunk_size=256, mesh=mesh))
    default = evaluate_coalitions(game, masks)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(sharded))
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(default))


def test_default_mesh_is_every_device():
    mesh = engine.default_mesh()
    assert mesh.devices.size == 4 and mesh.axis_names == (engine.COALITION_AXIS,)
    plan = engine.make_plan()
    assert plan.shards == 4 and plan.chunk(10) == 16 and engine.make_plan(chunk_size=5).chunk(10) == 8
    with pytest.raises(ValueError, match="device"):
        engine.coalition_mesh([])
    # With one device there is no mesh: plain jit.
    code = "from gtap_jax import engine; import jax; print(jax.device_count(), engine.default_mesh())"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "None"]


def test_two_axis_mesh(one_device):
    mesh2 = jax.make_mesh((2, 2), ("a", "b"))
    game = lookup_game(random_lookup_table(3, 8))
    masks = _random_masks(3, 50, 8)
    np.testing.assert_array_equal(
        np.asarray(evaluate_coalitions(game, masks, plan=make_plan(chunk_size=6, mesh=mesh2))),
        np.asarray(evaluate_coalitions(game, masks, plan=make_plan(mesh=one_device))),
    )


def test_empty_and_bad_input():
    game = additive_game(np.ones(3))
    assert evaluate_coalitions(game, np.zeros((0, 3), bool)).shape == (0,)
    with pytest.raises(ValueError, match="bool\\[C, P\\]"):
        evaluate_coalitions(game, np.ones(3, bool))
    with pytest.raises(ValueError, match="chunk_size"):
        make_plan(chunk_size=0)
    np.testing.assert_array_equal(evaluate_coalitions(game, np.array([[1, 0, 1]])), [2.0])  # 0/1 integers
    for bad in (np.full((1, 3), 0.5), np.array([[2, 0, 1]]), np.array([[-1, 0, 1]])):
        with pytest.raises(ValueError, match="boolean"):
            evaluate_coalitions(game, bad)
    with pytest.raises(ValueError, match=r"one scalar per coalition, got shape \(1,\)"):
        evaluate_coalitions(lambda s: jnp.sum(s, keepdims=True).astype(jnp.float32), np.ones((2, 3), bool))


def test_one_plan_serves_many_calls(monkeypatch):
    """A plan decided once is reused: no call measures the game's memory again."""
    game = _heavy_game()
    plan = engine.make_plan(game, 6)  # measures the footprint here, once
    measured = []
    monkeypatch.setattr(memory, "coalition_footprint", lambda *a: measured.append(a) or 1)
    masks = _random_masks(2, 100, 6)
    np.testing.assert_allclose(
        np.asarray(evaluate_coalitions(game, masks, plan=plan)), np.asarray(jax.vmap(game)(jnp.asarray(masks))),
        rtol=1e-5, atol=1e-6,
    )
    assert measured == [] and plan.chunk(100) == 128 and not plan.fixed
    with pytest.raises(TypeError, match=r"takes plan=make_plan\(chunk_size=...\) instead of chunk_size="):
        evaluate_coalitions(game, masks, plan=plan, chunk_size=8)


def _heavy_game(n=2000, h=64):
    w = jax.random.normal(jax.random.key(3), (6, h))
    w2 = jax.random.normal(jax.random.key(5), (h, 3))
    x = jax.random.normal(jax.random.key(4), (n, 6))

    def value(mask):
        hidden = jnp.tanh(jnp.where(mask, x, 0.0) @ w)  # [n, h] per coalition, a matmul input
        return jnp.mean(jax.nn.logsumexp(hidden @ w2, axis=-1))

    return value


def test_footprint_measures_per_coalition_activations():
    per = memory.coalition_footprint(_heavy_game(), 6)
    # the [2000, 64] float32 hidden activation feeds a matmul, so it must be materialised
    assert 2000 * 64 * 4 <= per <= 4 * 2000 * 64 * 4


def test_chunk_size_follows_free_memory(monkeypatch):
    game = _heavy_game()
    per = memory.coalition_footprint(game, 6)
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device=None: int(per * 100 / memory.MEMORY_FRACTION))
    assert memory.max_chunk_size(game, 6) == 64
    masks = _random_masks(1, 300, 6)
    calls = []
    real = evaluate_module.batched_value_fn

    def spy(fn, mesh=None):
        batched = real(fn, mesh)
        return lambda m: (calls.append(m.shape[0]), batched(m))[1]

    monkeypatch.setattr(evaluate_module, "batched_value_fn", spy)
    got = evaluate_coalitions(game, masks)
    assert set(calls) == {64}
    np.testing.assert_allclose(np.asarray(got), np.asarray(jax.vmap(game)(jnp.asarray(masks))), rtol=1e-5, atol=1e-6)


def test_a_small_game_takes_the_largest_chunk_without_compiling_probes(monkeypatch):
    """Where every traced intermediate of the largest chunk fits 1 / TRACED_MARGIN of the memory, the probe chunks
    are not compiled; a game whose intermediates do not is measured, and its measurement bounds the chunk."""
    small, heavy = additive_game(np.linspace(-1, 1, 6)), _heavy_game()
    largest, every = memory.traced_footprint(heavy, 6)
    assert 2000 * 64 * 4 <= largest <= every  # the hidden activation, per coalition
    measured = []
    real = memory.coalition_footprint
    monkeypatch.setattr(memory, "coalition_footprint", lambda *a: measured.append(a) or real(*a))
    free = int(memory.TRACED_MARGIN * memory.DEFAULT_CHUNK_SIZE * every / memory.MEMORY_FRACTION) - 1  # just too little
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device=None: free)
    assert memory.max_chunk_size(small, 6) == memory.DEFAULT_CHUNK_SIZE and measured == []
    per = real(heavy, 6)
    fits = 1 << int(np.log2(memory.MEMORY_FRACTION * free // per))
    assert memory.max_chunk_size(heavy, 6) == min(memory.DEFAULT_CHUNK_SIZE, fits) and len(measured) == 1


def test_non_finite_values_and_a_wrong_player_count_are_errors():
    import gtap_jax as g

    def nan_when_first(s):
        return jnp.where(s[0], jnp.nan, jnp.sum(s).astype(jnp.float32))

    with pytest.raises(ValueError, match="1 of 2 coalition values are NaN or infinite"):
        evaluate_coalitions(nan_when_first, np.array([[1, 0, 0], [0, 1, 1]], bool))
    with pytest.raises(ValueError, match="of 64 coalition values are NaN or infinite"):
        g.estimate(jax.random.key(0), nan_when_first, 3, "banzhaf", evaluations=64)
    with pytest.raises(ValueError, match="4 of 8 coalition values"):
        g.exact(nan_when_first, 3, "shapley")
    with pytest.raises(ValueError, match="fails on a coalition of 4 players.*does num_players match"):
        g.exact(additive_game(np.ones(5)), 4, "shapley")
