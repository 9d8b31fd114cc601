"""Small files in the real on-disk formats, for the local-path loaders and smoke runs.

Their content is synthetic (these tests check the pipeline, not the science),
but the files are read by the same code as real downloads.
"""

import numpy as np


def write_text_folder(folder, n=60, words=None):
    """train.csv (3/4) and test.jsonl (1/4): texts whose first words give the label (3 classes)."""
    import pandas as pd

    words = words or {0: "market stocks rally", 1: "storm rain weather", 2: "goal match team"}
    rows = [{"text": f"{words[i % 3]} item{i}", "label": i % 3} for i in range(n)]
    cut = 3 * n // 4
    pd.DataFrame(rows[:cut]).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(rows[cut:]).to_json(folder / "test.jsonl", orient="records", lines=True)
    return rows


def write_tiny_imagenet(folder, classes=2, per_class=10, val=4):
    """A tiny-imagenet-200-style folder: wnids.txt, train/<wnid>/images, val/images + annotations."""
    from PIL import Image

    wnids = [f"n{i:02d}" for i in range(1, classes + 1)]
    (folder / "wnids.txt").write_text("\n".join(wnids))
    rng = np.random.default_rng(0)
    for c, w in enumerate(wnids):
        (folder / "train" / w / "images").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            img[..., c % 3] = 255  # a class-dependent colour, so a network can learn something
            Image.fromarray(img).save(folder / "train" / w / "images" / f"{w}_{i}.JPEG")
    (folder / "val" / "images").mkdir(parents=True)
    ann = []
    for i in range(val):
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        img[..., (i % classes) % 3] = 255
        Image.fromarray(img).save(folder / "val" / "images" / f"v{i}.JPEG")
        ann.append(f"v{i}.JPEG\t{wnids[i % classes]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(ann))
    return wnids
