"""A small vision transformer on MNIST: its residual stream, heads and feed-forward units, one-shot.

Command (offline, the embedded 5,000-image MNIST subset):

    python -m gtap_jax.prune --config gtap_jax/configs/vit_mnist.py --workdir runs/vit

Runtime on 2 CPU cores: 17-23 minutes (1,027-1,386 s over 5 seeds, 2026-12-05 and 06, beside other processes
on the same cores; without latency); the transformer trains to 0.848-0.880 test accuracy in 20 epochs, about
66 coalition values per second on 256 images alone. ``:smoke`` about two minutes. Results over seeds:
docs/reproduction.md.

Players: the residual stream's features (one coupled group, ``gtap_jax.network.modules.coupling``: the patch
embedding, the position embedding, every LayerNorm, each attention's output projection and each
feed-forward output write or read it), each block's heads and each block's feed-forward units. A
dropped stream feature is absent everywhere (the LayerNorms normalise over the kept ones), a dropped
head leaves its query, key and value slices and its rows of the output projection. Every pruned
network is compacted and must compute what the masked one does. Targets, allocations, the selection
set and fine-tuning: ``common.one_shot_config``. Weight magnitude has no kernel per head: the baselines
are a gate's gradient, leave-one-out and random.
"""

from gtap_jax.configs import common


def get_config(arg=None):
    # players: 32 stream features, 2 x 4 heads, 2 x 64 feed-forward units (no kernel per head: no wmp)
    c = common.one_shot_config("vit", arg, epochs=20, baselines=("gate", "loo", "random"),
                               smoke_options={"width": 8, "depth": 1, "heads": 2, "hidden": 16})
    if arg == "smoke":  # the one-shot smoke run that covers every allocation and the selected pair's fine-tuning
        c.unlock()
        c.allocations = ("proportional", "global", "cost")
        c.retrain.modes = ("none", "finetune")
        c.retrain.selected_only = True
        c.lock()
    return c
