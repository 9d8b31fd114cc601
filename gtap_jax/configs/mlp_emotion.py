"""The 3 x 256 text MLP on binary term-frequency vectors of emotion (6 emotions (CARER)).

Players: the 768 hidden units of the three layers, in one game. Needs the data:
online through Hugging Face (``data.source=hf``, the default), or a local CSV /
JSON / parquet file or folder (``--config.data.source=path --config.data.path=...``).

    python -m gtap_jax.prune --config gtap_jax/configs/mlp_emotion.py --workdir runs/mlp_emotion

Runtime on 2 CPU cores: about 20 minutes; ``:smoke`` under a minute (it needs
the data too; it never falls back to synthetic inputs).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    c = common.base_config()
    c.data.name = "emotion"
    c.data.source = "hf"
    c.data.options = {"vocab_size": 5000}  # binary term-frequency vocabulary size
    c.model.name = "text_mlp"
    c.game.layers = ("fc1", "fc2", "fc3")
    c.train.epochs = 5
    c.targets = (0.5, 0.3, 0.2, 0.1)
    if arg == "smoke":
        common.smoke(c)
        c.data.options = {"vocab_size": 1000}
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
