"""LeNet-300-100 on MNIST: the hidden units of fc1 and fc2 (400 players) in one game.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/lenet300_mnist.py --workdir runs/lenet300

Runtime on 2 CPU cores: about 10 minutes (measured 9 min 54 s, 2026-11-25); ``:smoke`` under a minute. Full MNIST:
``--config.data.source=tfds`` (online once) or ``--config.data.source=path --config.data.path=DIR``.
"""

from gtap_jax.configs import common


def get_config(arg=None):
    c = common.base_config()
    c.model.name = "lenet300"
    c.game.layers = ("fc1", "fc2")
    if arg == "smoke":
        common.smoke(c)
        c.gtap.indices = ("shapley", "beta")  # the CLI smoke test runs every strategy with both kinds of index
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
