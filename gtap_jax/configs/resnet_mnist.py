"""A small ResNet on MNIST: the channels of its residual streams and of its blocks, one-shot (no retraining).

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/resnet_mnist.py --workdir runs/resnet

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
    c.game.layers = MODELS["resnet"](10).groups()  # 2 streams of 16 and 32 channels, 4 blocks' inner channels
    c.game.masked_value = "zero"  # a group's channel is absent, not a mean
    c.train.epochs = 5
    c.game.eval_examples = 256  # every coalition runs the whole ResNet (no chains): fewer images, cheaper values
    c.gtap.indices = ("shapley", "banzhaf")
    c.gtap.max_evaluations = 4096
    c.baselines = ("wmp", "gate", "loo", "random")
    c.retrain.modes = ("none",)
    c.targets = (0.7, 0.5, 0.3)
    if arg == "smoke":
        common.smoke(c)
        c.model.options = {"widths": (4, 8), "blocks": 1}
        c.game.layers = MODELS["resnet"](10, widths=(4, 8), blocks=1).groups()
        c.targets = (0.5,)
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
