"""The 3 x 256 text MLP on binary term-frequency vectors of twitter_financial_news_topic (20 topics).

Players: the 768 hidden units of the three layers, in one game. Needs the data:
online through Hugging Face (``data.source=hf``, the default; ``pip install -e ".[hf]"``),
or a local CSV / JSON / parquet file or folder
(``--config.data.source=path --config.data.path=...``).

    python -m gtap_jax.prune --config gtap_jax/configs/mlp_twitter_topic.py --workdir runs/mlp_twitter_topic

Runtime on 2 CPU cores with ``--config.game.eval_examples=500`` (the real CSVs, 2026-11-25):
27-40 minutes a seed, two runs sharing the cores (docs/reproduction.md). The default plays
the game on all 1,699 validation tweets, each coalition value 3.4x the examples. ``:smoke`` runs in under a
minute on 2 CPU cores; it needs the data too (nothing falls back to synthetic inputs).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    return common.text_mlp_config("twitter_financial_news_topic", arg)
