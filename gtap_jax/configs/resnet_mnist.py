"""A small ResNet on MNIST: the channels of its residual streams and of its blocks, one-shot (no retraining).

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/resnet_mnist.py --workdir runs/resnet

Runtime on 2 CPU cores: about 4 minutes (measured 3 min 39 s, 2026-12-02; the ResNet trains to 0.947 test
accuracy in 10 epochs, about 80 coalition values per second on 256 images); ``:smoke`` under a minute.

Players are coupled groups (``gtap_jax.network.coupling``): a stage's residual-stream channel is one
player, silenced in every module that writes it and absent from every module that reads it; a
block's inner channel is another. Every pruned network is compacted (channels removed from the
stem, the blocks, the projection and the head) and must compute what the masked one does. Without
retraining, as large models are pruned: ``retrain.modes = ("none",)``. The lottery ticket needs
masked retraining, which the built-in Linen models do not do.
"""

from gtap_jax.configs import common
from gtap_jax.models import MODELS


def get_config(arg=None):
    c = common.base_config()
    c.model.name = "resnet"
    c.game.layers = MODELS["resnet"](10).groups()  # 2 streams of 8 and 16 channels, 4 blocks' inner channels
    c.game.masked_value = "zero"  # a group's channel is absent, not a mean
    c.train.epochs = 10
    # every coalition runs the whole ResNet (no chains): on a CPU, fewer images, fewer band samples, a lower
    # cap and two strategies
    c.game.eval_examples = 256
    c.bands.num_samples = 64
    c.gtap.strategies = ("top_n", "iterated_pruning")
    c.gtap.indices = ("shapley", "banzhaf")
    c.gtap.max_evaluations = 2048
    c.baselines = ("wmp", "gate", "loo", "random")
    c.retrain.modes = ("none",)
    c.latency = True  # each pruned network's measured latency beside the dense one's (results.csv)
    c.targets = (0.9, 0.8, 0.7)  # one-shot channel pruning of a net this small: 70% of its channels is near chance
    if arg == "smoke":
        common.smoke(c)
        c.model.options = {"widths": (4, 8), "blocks": 1}
        c.game.layers = MODELS["resnet"](10, widths=(4, 8), blocks=1).groups()
        c.targets = (0.5,)
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
