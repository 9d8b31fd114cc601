"""A small vision transformer on MNIST: its residual stream, heads and feed-forward units, one-shot.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/vit_mnist.py --workdir runs/vit

Runtime on 2 CPU cores: about 4 minutes (measured 3 min 37 s, 2026-12-02; the transformer trains to 0.868
test accuracy in 20 epochs, about 66 coalition values per second on 256 images); ``:smoke`` under a minute.

Players: the residual stream's features (one coupled group, ``gtap_jax.network.coupling``: the patch
embedding, the position embedding, every LayerNorm, each attention's output projection and each
feed-forward output write or read it), each block's heads and each block's feed-forward units. A
dropped stream feature is absent everywhere (the LayerNorms normalise over the kept ones), a dropped
head leaves its query, key and value slices and its rows of the output projection. Every pruned
network is compacted and must compute what the masked one does. Without retraining:
``retrain.modes = ("none",)``. Weight magnitude has no kernel per head: the baselines are a gate's
gradient, leave-one-out and random.
"""

from gtap_jax.configs import common
from gtap_jax.models import MODELS


def get_config(arg=None):
    c = common.base_config()
    c.model.name = "vit"
    c.game.layers = MODELS["vit"](10).groups()  # 32 stream features, 2 x 4 heads, 2 x 64 feed-forward units
    c.game.masked_value = "zero"  # a group's feature is absent, not a mean
    c.train.epochs = 20
    # every coalition runs the whole transformer (no chains): on a CPU, fewer images, fewer band samples, a
    # lower cap and two strategies
    c.game.eval_examples = 256
    c.bands.num_samples = 64
    c.gtap.strategies = ("top_n", "iterated_pruning")
    c.gtap.indices = ("shapley", "banzhaf")
    c.gtap.max_evaluations = 2048
    c.baselines = ("gate", "loo", "random")
    c.retrain.modes = ("none",)
    c.latency = True  # each pruned network's measured latency beside the dense one's (results.csv)
    c.targets = (0.9, 0.8, 0.7)
    if arg == "smoke":
        common.smoke(c)
        c.model.options = {"width": 8, "depth": 1, "heads": 2, "hidden": 16}
        c.game.layers = MODELS["vit"](10, **c.model.options).groups()
        c.targets = (0.5,)
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
