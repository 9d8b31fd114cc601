"""Experiment configs: one ``get_config(arg)`` file per experiment of the paper.

Run one with ``python -m gtap_jax.prune --config gtap_jax/configs/NAME.py[:smoke] --workdir DIR``.
"""

CONFIGS = ("lenet300_mnist", "lenet5_mnist", "mlp_twitter_topic", "mlp_emotion", "alexnet_tiny_imagenet")
