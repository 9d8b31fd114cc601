"""A small ResNet on MNIST: the channels of its residual streams and of its blocks, one-shot and fine-tuned.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/resnet_mnist.py --workdir runs/resnet

Runtime on 2 CPU cores: the config of 2026-12-02 (6 GTAP methods, proportional baselines, no budgets) took
272-287 s over 3 seeds; the ResNet trains to 0.939-0.947 test accuracy in 10 epochs, about 80 coalition
values per second on 256 images. The current one (8 GTAP methods, every allocation, the selected pair
fine-tuned) took 524 s alone and 1,123-1,128 s two at a time on the same cores (2026-12-05,
``latency=False``; docs/reproduction.md); ``:smoke`` about a minute.

Players are coupled groups (``gtap_jax.network.modules.coupling``): a stage's residual-stream channel is one
player, silenced in every module that writes it and absent from every module that reads it; a
block's inner channel is another. Every pruned network is compacted (channels removed from the
stem, the blocks, the projection and the head) and must compute what the masked one does. Targets,
allocations, the selection set and fine-tuning: ``common.one_shot_config``. The lottery ticket needs
masked retraining, which the built-in Linen models do not do.
"""

from gtap_jax.configs import common


def get_config(arg=None):
    # players: 2 streams of 8 and 16 channels, 4 blocks' inner channels
    return common.one_shot_config("resnet", arg, epochs=10, baselines=("wmp", "gate", "loo", "random"),
                                  smoke_options={"widths": (4, 8), "blocks": 1})
