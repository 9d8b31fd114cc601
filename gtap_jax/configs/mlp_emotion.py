"""The 3 x 256 text MLP on binary term-frequency vectors of emotion (6 emotions (CARER)).

Players: the 768 hidden units of the three layers, in one game. Needs the data:
online through Hugging Face (``data.source=hf``, the default; ``pip install -e ".[hf]"``),
or a local CSV / JSON / parquet file or folder
(``--config.data.source=path --config.data.path=...``).

    python -m gtap_jax.prune --config gtap_jax/configs/mlp_emotion.py --workdir runs/mlp_emotion

Runtime: the full run is not measured yet (no data offline here). ``:smoke`` runs
in under a minute on 2 CPU cores; it needs the data too (nothing falls back to
synthetic inputs).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    return common.text_mlp_config("emotion", arg)
