"""A small transformer encoder on the emotion tweets: its residual stream, heads and feed-forward units, one-shot.

The tweets as token ids (``data.options.sequence_length``: each tweet's first 32 words, a vocabulary
of the 4,998 most frequent training words, ids below ``vocab_size`` = the embedding table's rows).
Needs the data: online through Hugging Face (``data.source=hf``, the default; ``pip install -e
".[hf]"``), or a local CSV / JSON / parquet file or folder::

    python -m gtap_jax.prune --config gtap_jax/configs/transformer_emotion.py --workdir runs/transformer \\
        --config.data.source=path --config.data.path=DATA/emotion

Players: as in ``vit_mnist`` (the stream, each block's heads and each block's feed-forward units);
the stream's group holds the token embedding's table, which loses a dropped feature's column.
Every pruned network is compacted and must compute what the masked one does. Targets, allocations, the
selection set and fine-tuning: ``common.one_shot_config``.

Runtime on 2 CPU cores with the local CSVs: the config of 2026-12-02 (6 GTAP methods, proportional
baselines) took 449-490 s over 3 seeds (the encoder trains to 0.861-0.874 test accuracy in 5 epochs,
about 50 coalition values per second on 256 tweets); the current one runs 8 GTAP methods and every
allocation (docs/reproduction.md gives its wall times). Results over seeds: docs/reproduction.md.
``:smoke`` runs a 1-block model on a 1,000-word vocabulary in under a minute on 2 CPU cores; it needs
the data too (nothing falls back to synthetic inputs).
"""

from gtap_jax.configs import common

VOCAB = 5000  # token ids (data) and embedding rows (model)
SMOKE_VOCAB = 1000


def get_config(arg=None):
    c = common.one_shot_config(
        "text_transformer", arg, epochs=5, baselines=("gate", "loo", "random"),
        smoke_options={"vocab_size": SMOKE_VOCAB, "width": 8, "depth": 1, "heads": 2, "hidden": 16},
        options={"vocab_size": VOCAB})
    c.unlock()
    c.data.name = "emotion"
    c.data.source = "hf"
    c.data.options = {"vocab_size": SMOKE_VOCAB if arg == "smoke" else VOCAB, "sequence_length": 32}
    c.lock()
    return c
