"""The 3 x 256 text MLP on binary term-frequency vectors of emotion (6 emotions (CARER)).

Players: the 768 hidden units of the three layers, in one game. Needs the data:
online through Hugging Face (``data.source=hf``, the default; ``pip install -e ".[hf]"``),
or a local CSV / JSON / parquet file or folder
(``--config.data.source=path --config.data.path=...``).

    python -m gtap_jax.prune --config gtap_jax/configs/mlp_emotion.py --workdir runs/mlp_emotion

Runtime: the full run is not measured to the end. On 2 CPU cores (2026-11-25, the
real CSVs) training took 7 s and each 8,192-value GTAP round 35-48 s (about 180
coalition values/s on the 2,000 validation tweets), so the 30-odd rounds of the nine
GTAP methods alone take over 20 minutes: use a GPU, or fewer ``game.eval_examples``.
With ``game.eval_examples=500`` (2026-12-01, a slower day, sharing the cores) the
8,192-value top_n rounds took 49-57 s and the first iterated-pruning method 31,920 values
in 226 s; with the iterated-building methods (up to 98,304 values each) a seed spends up
to about 416,000 values (docs/reproduction.md).
``:smoke`` runs in under a minute on 2 CPU cores; it needs the data too (nothing falls
back to synthetic inputs).
"""

from gtap_jax.configs import common


def get_config(arg=None):
    return common.text_mlp_config("emotion", arg)
