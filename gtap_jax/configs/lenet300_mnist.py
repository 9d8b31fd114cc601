"""LeNet-300-100 on MNIST: the hidden units of fc1 and fc2 (400 players) in one game.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/lenet300_mnist.py --workdir runs/lenet300

Runtime on 2 CPU cores: about 6.5 minutes (measured 6 min 27 s, 2026-12-05, with complementary stars for
Banzhaf); ``:smoke`` under a minute; ``:verdict`` (budgets of parameters, every allocation, choices on a
selection set, fine-tuning: ``common.dense_verdict``) about 3 minutes (178-203 s, 2026-12-05). Full MNIST:
``--config.data.source=tfds`` (online once) or ``--config.data.source=path --config.data.path=DIR``.
"""

from gtap_jax.configs import common


def get_config(arg=None):
    c = common.base_config()
    c.model.name = "lenet300"
    c.game.layers = ("fc1", "fc2")
    # fc1 feeds a Dense layer: permutations and paired draws are valued incrementally, about 20x the
    # values per second of whole coalitions, so a round may spend 16x the usual cap of 8,192 values
    # in about the time; focused draws would compile anew for each sub-game of the iterated
    # strategies, which costs more than they save here (benchmarks/RESULTS.md, "Settled decisions on a CPU")
    c.gtap.max_evaluations = 1 << 17
    c.gtap.focus = False
    if arg == "smoke":
        common.smoke(c)
        c.gtap.indices = ("shapley", "beta")  # the CLI smoke test runs every strategy with both kinds of index
    elif arg == "verdict":
        common.dense_verdict(c, targets=(0.5, 0.3, 0.2, 0.1, 0.05))
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '', 'verdict' or 'smoke'")
    c.lock()
    return c
