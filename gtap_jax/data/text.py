"""Tweet classification sets as binary term-frequency vectors or as token ids.

* ``twitter_financial_news_topic``: 20 topics (Hugging Face
  ``zeroshot/twitter-financial-news-topic``).
* ``emotion``: CARER, 6 emotions (Hugging Face ``dair-ai/emotion``).

Sources: ``"hf"`` (the ``datasets`` package, online or from its cache) or
``"path"``: one file (CSV, JSON, JSON lines or parquet with ``text`` and
``label`` columns) or a folder with ``train.*`` and ``test.*`` (and optionally
``validation.*``) files of that form.

Both representations are fitted on the training split only. Vectors (the default): the
``vocab_size`` most frequent lower-cased word tokens, each feature 1 if the token occurs in
the text. Token ids (``sequence_length > 0``, for sequence models): int32 ``[N, sequence_length]``,
the text's first ``sequence_length`` word tokens, each the id of one of the ``vocab_size - 2``
most frequent words (2 and up), 1 for any other word, 0 for padding; ids lie in
``[0, vocab_size)``, the size of the model's embedding table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gtap_jax.data.base import DataFormatError, Dataset, DataUnavailableError, stratified_split

DEFAULT_VOCAB_SIZE = 5000
TEXT_SETS = {
    "twitter_financial_news_topic": ("zeroshot/twitter-financial-news-topic", 20),
    "emotion": ("dair-ai/emotion", 6),
}
_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")


def _read_table(path: Path):
    import pandas as pd

    if path.suffix == ".csv":
        df = pd.read_csv(path)
    elif path.suffix in (".json", ".jsonl"):
        df = pd.read_json(path, lines=path.suffix == ".jsonl" or _is_json_lines(path))
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise DataUnavailableError(f"unsupported file {path}; use one of {_SUFFIXES}")
    if not {"text", "label"} <= set(df.columns):
        raise DataFormatError(f"{path} needs columns 'text' and 'label', has {list(df.columns)}")
    if len(df) == 0:
        raise DataFormatError(f"{path} has no rows")
    if not pd.api.types.is_integer_dtype(df["label"]):
        example = df["label"].iloc[0]
        raise DataFormatError(
            f"{path}: labels must be integer class ids, got {df['label'].dtype} values such as {example!r}"
        )
    return df["text"].astype(str).tolist(), df["label"].to_numpy(np.int32)


def _is_json_lines(path: Path) -> bool:
    with open(path) as f:
        return f.read(1) != "["


def _split_file(folder: Path, stem: str) -> Path | None:
    for suffix in _SUFFIXES:
        if (folder / (stem + suffix)).exists():
            return folder / (stem + suffix)
    return None


def _from_path(path: Path, val_fraction: float, seed: int):
    if path.is_file():
        texts, labels = _read_table(path)
        tr, va, te = stratified_split(labels, (0.8 - val_fraction, val_fraction, 0.2), seed)
        pick = lambda idx: ([texts[i] for i in idx], labels[idx])  # noqa: E731
        return pick(tr), pick(va), pick(te)
    if path.is_dir():
        train, test = _split_file(path, "train"), _split_file(path, "test")
        if train is None or test is None:
            raise DataUnavailableError(f"{path} needs train.* and test.* files ({', '.join(_SUFFIXES)})")
        train, test = _read_table(train), _read_table(test)
        val = _split_file(path, "validation") or _split_file(path, "val")
        if val is not None:
            return train, _read_table(val), test
        tr, va = stratified_split(train[1], (1 - val_fraction, val_fraction), seed)
        pick = lambda idx: ([train[0][i] for i in idx], train[1][idx])  # noqa: E731
        return pick(tr), pick(va), test
    raise DataUnavailableError(
        f"no data at {path}: give a CSV / JSON / JSON-lines / parquet file with 'text' and 'label'"
        " columns, or a folder with train.* and test.* (and optionally validation.*) files of that kind"
    )


def _from_hf(hub_name: str, val_fraction: float, seed: int):
    try:
        import datasets
    except ImportError as e:
        raise DataUnavailableError(
            "source='hf' needs the Hugging Face datasets package (pip install datasets) and the network "
            "once; or download the data and use source='path'"
        ) from e
    try:
        ds = datasets.load_dataset(hub_name)
    except Exception as e:
        raise DataUnavailableError(
            f"could not load {hub_name} from Hugging Face ({type(e).__name__}: {e}); use source='path' "
            "with a local CSV / JSON / parquet copy"
        ) from e
    get = lambda split: (list(ds[split]["text"]), np.asarray(ds[split]["label"], np.int32))  # noqa: E731
    if "test" in ds:
        return get("train"), get("validation"), get("test")
    train = get("train")  # twitter-financial-news-topic has train + validation only
    tr, va = stratified_split(train[1], (1 - val_fraction, val_fraction), seed)
    pick = lambda idx: ([train[0][i] for i in idx], train[1][idx])  # noqa: E731
    return pick(tr), pick(va), get("validation")


def vectorize(train_texts, *others, vocab_size: int = DEFAULT_VOCAB_SIZE):
    """Binary term-frequency vectors, vocabulary fitted on ``train_texts`` only."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, max_features=vocab_size, lowercase=True)
    out = [vec.fit_transform(train_texts)] + [vec.transform(t) for t in others]
    return [m.toarray().astype(np.float32) for m in out], vec.get_feature_names_out()


def tokenize(train_texts, *others, vocab_size: int, length: int) -> list[np.ndarray]:
    """Token ids ``int32 [N, length]`` of each text (module docstring), the vocabulary fitted on ``train_texts``."""
    from sklearn.feature_extraction.text import CountVectorizer

    if vocab_size < 3 or length < 1:
        raise ValueError(f"token ids need vocab_size >= 3 and sequence_length >= 1, got {vocab_size} and {length}")
    vec = CountVectorizer(max_features=vocab_size - 2, lowercase=True).fit(train_texts)
    ids = {word: i + 2 for i, word in enumerate(vec.get_feature_names_out())}
    words = vec.build_analyzer()

    def encode(texts):
        out = np.zeros((len(texts), length), np.int32)
        for row, text in zip(out, texts, strict=True):
            found = [ids.get(w, 1) for w in words(text)[:length]]
            row[: len(found)] = found
        return out

    return [encode(t) for t in (train_texts, *others)]


def load_text(
    name: str,
    *,
    source: str = "hf",
    path: str | os.PathLike | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sequence_length: int = 0,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """One of the two tweet sets as binary term-frequency vectors, or as token ids when ``sequence_length > 0``."""
    hub_name, num_classes = TEXT_SETS[name]
    if source == "path":
        if path is None:
            raise DataUnavailableError(f"source='path' for {name} needs path= (a file or folder)")
        splits = _from_path(Path(path).expanduser(), val_fraction, seed)
    elif source == "hf":
        splits = _from_hf(hub_name, val_fraction, seed)
    else:
        raise ValueError(f"unknown source {source!r} for {name}; expected 'hf' or 'path'")
    (tr_t, tr_y), (va_t, va_y), (te_t, te_y) = splits
    if sequence_length:
        xtr, xva, xte = tokenize(tr_t, va_t, te_t, vocab_size=vocab_size, length=sequence_length)
    else:
        (xtr, xva, xte), _ = vectorize(tr_t, va_t, te_t, vocab_size=vocab_size)
    return Dataset(xtr, tr_y, xva, va_y, xte, te_y, num_classes, name, source)
