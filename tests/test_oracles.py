"""Oracles that catch wrong answers: definitions at P = 17, hand-computed baseline scores, the
lottery ticket's rewinding. (The bands rules' fallbacks are in test_uncertainty.py.)"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gtap_jax import adapt, exact, make_plan
from gtap_jax.baselines import lottery_ticket, magnitude_scores, taylor_scores
from gtap_jax.games import lookup_game, random_lookup_table, weighted_majority_game
from gtap_jax.indices import INDICES
from gtap_jax.layout import allocate
from gtap_jax.models import MLP, layout_for

P = 17
MAJORITY = np.array([9, 8, 8, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 1])


def _definition(table: np.ndarray, p: int, weight) -> np.ndarray:
    """phi_i = sum over S without i of w(|S|) [v(S + i) - v(S)], straight from the definition."""
    codes = np.arange(1 << p)
    size = np.array([bin(c).count("1") for c in codes])
    phi = np.zeros(p)
    for i in range(p):
        without = codes[((codes >> i) & 1) == 0]
        phi[i] = np.sum(weight(size[without]) * (table[without | (1 << i)] - table[without]))
    return phi


def _weight(index, d):
    if index == "shapley":
        return lambda s: np.array([math.factorial(k) * math.factorial(P - 1 - k) / math.factorial(P) for k in s])
    return lambda s: d ** s * (1 - d) ** (P - 1 - s)


def _majority_table():
    codes = np.arange(1 << P)
    members = (codes[:, None] >> np.arange(P)) & 1
    return (members @ MAJORITY >= MAJORITY.sum() // 2 + 1).astype(np.float32)


CASES = [("shapley", None), ("banzhaf", 0.5), ("beta", 0.25), ("beta", 0.8)]


def test_every_registered_index_is_covered():
    assert {i for i, _ in CASES} == set(INDICES)


@pytest.mark.parametrize("index,d", CASES)
@pytest.mark.parametrize("game", ["lookup", "majority"])
def test_exact_equals_the_definition_at_17_players(index, d, game):
    """2^17 coalitions in 32 chunks of 4,096 over 4 devices, on non-additive games."""
    if game == "lookup":
        table = random_lookup_table(7, P)
        value = lookup_game(table)
    else:
        table = _majority_table()
        value = weighted_majority_game(MAJORITY, MAJORITY.sum() // 2 + 1)
    got = exact(value, P, index, d=None if index == "shapley" else d, plan=make_plan(chunk_size=4096))
    want = _definition(table.astype(np.float64), P, _weight(index, d))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.ptp(want) > 1e-3  # the players really differ: a wrong permutation of them would show


def _tiny():
    """A 2 -> 2 -> 2 -> 2 MLP with hand-set weights."""
    model = MLP(hidden=(2, 2), num_classes=2)
    params = {
        "fc1": {"kernel": jnp.array([[3.0, 1.0], [4.0, 0.0]]), "bias": jnp.array([0.1, -0.2])},
        "fc2": {"kernel": jnp.array([[6.0, 1.0], [8.0, -1.0]]), "bias": jnp.array([0.0, 0.3])},
        "out": {"kernel": jnp.array([[0.2, -0.1], [-0.3, 0.4]]), "bias": jnp.array([0.05, 0.0])},
    }
    return model, params, layout_for(model)


def test_weight_magnitude_by_hand():
    model, params, layout = _tiny()
    # incoming weights of fc1 units: (3, 4) and (1, 0); of fc2 units: (6, 8) and (1, -1)
    np.testing.assert_allclose(magnitude_scores(model, params, layout), [5.0, 1.0, 10.0, np.sqrt(2.0)])


def _loss64(params, x, y):
    """Mean cross-entropy of the tiny MLP in float64 numpy: an implementation apart from flax and jax.grad."""
    h = np.maximum(x @ params["fc1"]["kernel"] + params["fc1"]["bias"], 0)
    h = np.maximum(h @ params["fc2"]["kernel"] + params["fc2"]["bias"], 0)
    z = h @ params["out"]["kernel"] + params["out"]["bias"]
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def test_weight_times_gradient_by_finite_differences():
    model, params, layout = _tiny()
    x = np.array([[0.5, 0.2], [0.1, 0.9], [0.7, 0.7], [0.3, 0.1]], np.float32)
    y = np.array([0, 1, 1, 0])
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    want = []
    for layer in ("fc1", "fc2"):
        kernel = p64[layer]["kernel"]
        grad = np.zeros_like(kernel)
        for idx in np.ndindex(kernel.shape):
            for sign in (1, -1):
                q = jax.tree.map(np.copy, p64)
                q[layer]["kernel"][idx] += sign * 1e-6
                grad[idx] += sign * _loss64(q, x.astype(np.float64), y) / 2e-6
        want.extend(np.sum(np.abs(kernel * grad), axis=0))
    got = taylor_scores(model, params, x, y, layout)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(want) > 0)


def test_lottery_ticket_rewinds_survivors_to_their_initial_weights():
    model = MLP(hidden=(4, 4), num_classes=2)
    layout = layout_for(model)
    init = jax.tree.map(np.asarray, model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"])
    trained = jax.tree.map(lambda a: a * 3.0, init)
    calls = []

    def train_fn(net, masks):
        calls.append((net.params, {k: np.asarray(v) for k, v in masks.items()}))
        # A "trained" ticket whose fc1 column norms are reversed from unit order: unit 3 strongest.
        out = jax.tree.map(np.copy, net.params)
        out["fc1"]["kernel"] = np.tile(np.array([1.0, 2.0, 3.0, 4.0]), (2, 1))
        out["fc2"]["kernel"] = np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (4, 1))
        return adapt(model, out)

    tickets = lottery_ticket(model, init, trained, layout, [6, 2], train_fn)
    assert len(calls) == 2
    for params, _ in calls:  # every level starts from the initial weights: the rewind
        jax.tree.map(np.testing.assert_array_equal, params, init)
    # Level 1 ranks by the trained weights; level 2 by level 1's ticket, within its survivors.
    norms = {n: np.linalg.norm(np.asarray(trained[n]["kernel"]), axis=0) for n in ("fc1", "fc2")}
    first = tickets[6]
    for name, (a, b) in layout.offsets().items():
        assert set(np.flatnonzero(first[a:b])) == set(np.argsort(-norms[name])[: allocate(layout, 6)[name]])
    np.testing.assert_array_equal(calls[0][1]["fc1"], first[:4])
    second = tickets[2]
    assert not np.any(second & ~first)  # nested
    fc1_alive = np.flatnonzero(first[:4])
    assert np.flatnonzero(second[:4]).tolist() == [fc1_alive.max()]  # the ticket's strongest fc1 survivor
    assert np.flatnonzero(second[4:]).tolist() == [np.flatnonzero(first[4:]).min()]


def test_the_experiments_lottery_levels_train_for_retrain_epochs():
    """configs/common.py: retrain.epochs is the epochs of clean-slate retraining and of each lottery level."""
    from types import SimpleNamespace

    import ml_collections

    from gtap_jax.experiment.methods import Target, scores_record

    model = MLP(hidden=(4, 4), num_classes=2)
    init = jax.tree.map(np.asarray, model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"])
    epochs_seen = []

    def fit(key, network, *, masks=None, epochs=None, **kw):
        epochs_seen.append(epochs)
        return network

    config = ml_collections.ConfigDict({"train": {"epochs": 7}, "retrain": {"epochs": 2}})
    net = adapt(model, init)
    ctx = SimpleNamespace(key=jax.random.key(0), network=net, init=net, layout=layout_for(model),
                          game_data=(np.zeros((4, 2)), np.zeros(4, int)), sizes=[6, 2], config=config, fit=fit,
                          targets=[Target("6", players=6), Target("2", players=2)])
    record = scores_record(ctx, "lottery")
    assert set(record["masks"]) == {"6", "2"} and epochs_seen == [2, 2]
