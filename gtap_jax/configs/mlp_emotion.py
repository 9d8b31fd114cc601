"""The 3 x 256 text MLP on binary term-frequency vectors of emotion (6 emotions (CARER)).

Players: the 768 hidden units of the three layers, in one game. Needs the data:
online through Hugging Face (``data.source=hf``, the default; ``pip install -e ".[hf]"``),
or a local CSV / JSON / parquet file or folder
(``--config.data.source=path --config.data.path=...``).

    python -m gtap_jax.prune --config gtap_jax/configs/mlp_emotion.py --workdir runs/mlp_emotion

Runtime: with ``game.eval_examples=500`` a seed took 46 minutes alone on 2 CPU cores
(2026-12-01, the real CSVs; seed 1 of docs/reproduction.md): training 16 s, the game 27
minutes (310-380 coalition values/s in the top_n methods, 230-280/s in the iterated ones,
up to 98,304 values per method and about 416,000 in all), the 104 retrainings and the
lottery tickets 18 minutes. On all 2,000 validation tweets (the default) the top_n rounds
ran at about 180 values/s (2026-11-25): use a GPU, or fewer ``game.eval_examples``.
``:smoke`` runs in under a minute on 2 CPU cores; it needs the data too (nothing falls
back to synthetic inputs).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    return common.text_mlp_config("emotion", arg)
