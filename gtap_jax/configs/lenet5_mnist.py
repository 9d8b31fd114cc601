"""LeNet5 on MNIST: conv channels and dense units (6 + 16 + 120 + 84 = 226 players) in one game.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/lenet5_mnist.py --workdir runs/lenet5

Runtime on 2 CPU cores, with ``--config.game.eval_examples=250 --config.retrain.seeds=1``:
56-72 minutes a seed (2026-12-01, a day the machine ran about 2x slower than usual, most of it
sharing the cores with another run); the bands and the 33 GTAP rounds (at most 2,048 values
each) took about half of it, the 65 clean-slate retrainings and the lottery ticket the rest.
A coalition value runs conv2 over the evaluation set (84 values/s with 250 images that day):
the default, all 500 validation images and 2 retraining seeds, costs about twice that; use a
GPU. ``:smoke`` (dense layers only) takes about half a minute (28 s, 2026-12-02). ``:verdict`` (budgets of
parameters, every allocation, choices on a selection set, fine-tuning: ``common.dense_verdict``; steps of conv1's
players valued incrementally at conv2) took 341-586 s a seed (2026-12-05; the longer ones beside another run).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    c = common.base_config()
    c.model.name = "lenet5"
    c.train.epochs = 8
    c.game.layers = ("conv1", "conv2", "fc1", "fc2")
    # settled mode (the default) with a lower cap per round: a coalition value runs conv2 over the
    # evaluation set, about 20x the cost of a LeNet-300-100 value per image on a CPU (benchmarks/RESULTS.md)
    c.gtap.max_evaluations = 2048
    if arg == "smoke":
        common.smoke(c)
        c.game.layers = ("fc1", "fc2")  # a conv suffix per coalition compiles too slowly for a smoke run
    elif arg == "verdict":
        common.dense_verdict(c, targets=(0.5, 0.3, 0.2, 0.1, 0.05))
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '', 'verdict' or 'smoke'")
    c.lock()
    return c
