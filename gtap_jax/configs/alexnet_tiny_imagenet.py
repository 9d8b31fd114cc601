"""AlexNet on Tiny ImageNet (64 x 64 x 3, 200 classes), played layer by layer (our reconstruction of the paper's setup).

Players: the channels of conv1-conv5 and the units of fc6-fc7, one game per layer
(the other layers intact). Needs the data: a local folder in the standard
``tiny-imagenet-200`` layout (the default, ``data.path``), or ``data.source=hf`` online.

    python -m gtap_jax.prune --config gtap_jax/configs/alexnet_tiny_imagenet.py \
        --workdir runs/alexnet --config.data.path=/data/tiny-imagenet-200

Runtime: the full run (full width, 100k training images, 30 epochs) is not measured
yet and is meant for a GPU; ``:smoke`` (width 1/16, two layers, few samples) runs in
under a minute on 2 CPU cores given a small folder.
"""

from gtap_jax.configs import common


def get_config(arg=None):
    c = common.base_config()
    c.data.name = "tiny_imagenet"
    c.data.source = "path"
    c.data.path = "tiny-imagenet-200"  # folder with train/, val/ and wnids.txt
    c.model.name = "alexnet"
    c.model.options = {"width": 1.0}  # every layer's width scaled by this
    c.game.layers = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
    c.game.layerwise = True
    c.game.eval_examples = 1000
    c.train.epochs = 30
    c.gtap.max_evaluations = 4096  # settled mode (the default), at most 4,096 values a round
    c.targets = (0.5, 0.3, 0.2, 0.1)
    if arg == "smoke":
        common.smoke(c)
        c.model.options = {"width": 1 / 16}
        c.game.layers = ("conv5", "fc6")
        c.game.eval_examples = 64
        c.gtap.evaluations = 64
        c.gtap.strategies = ("top_n", "iterated_pruning")
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
