"""One process of the two-process test (tests/test_distributed.py); also run in-process there.

Usage: python tests/distributed_worker.py COORDINATOR PROCESS_ID OUT_DIR
"""

import os
import sys

import numpy as np


def compute():
    """Indices and values of a small network game on the default mesh."""
    import jax

    from gtap_jax import by_estimate, estimate, evaluate_coalitions, exact, iterated_pruning, network_game, restrict
    from gtap_jax.data import synthetic
    from gtap_jax.models import lenet300
    from gtap_jax.network import init_params

    model = lenet300()
    params = init_params(jax.random.key(0), model, (28, 28, 1))
    ds = synthetic(0, (28, 28, 1), 10, n_train=8, n_test=64)
    value, layout = network_game(model, params, ds.x_test, ds.y_test, layers=["fc2"], metric="neg_loss")
    p = layout.num_players
    masks = np.random.default_rng(0).random((77, p)) < 0.5
    free = np.zeros(p, bool)
    free[:10] = True
    sub, _ = restrict(value, ~free, free)
    key = jax.random.key(1)
    pruned = iterated_pruning(key, value, p, p // 2, by_estimate("banzhaf", evaluations=64), step=p // 4)
    shapley = estimate(key, value, p, "shapley", evaluations=20 * (p + 1))
    return {
        "values": np.asarray(evaluate_coalitions(value, masks)),
        "exact_banzhaf": np.asarray(exact(sub, 10, "banzhaf")),
        "shapley": np.asarray(shapley.values),
        "shapley_stderr": np.asarray(shapley.stderr),
        "pruned_mask": np.asarray(pruned.mask),
    }


def main(coordinator, process_id, out_dir):
    os.environ["JAX_PLATFORMS"] = "cpu"
    from gtap_jax.engine import distributed

    mesh = distributed.initialize(coordinator, 2, process_id, cpu_devices=2, timeout_s=120)
    import jax

    assert jax.process_count() == 2 and mesh.devices.size == 4 and len(jax.local_devices()) == 2
    results = compute()
    np.savez(os.path.join(out_dir, f"process{process_id}.npz"), **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
