"""Players numbered flat, layer by layer, and the per-layer helpers built on that numbering.

Ground floor: imports nothing of gtap_jax and no neural-network library, so the
core (strategies), the baselines, the models and the experiment all share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import Array, Bool


class PlayerLayout(NamedTuple):
    """Players numbered flat, layer by layer: ``((layer, size), ...)``."""

    layers: tuple[tuple[str, int], ...]

    @property
    def num_players(self) -> int:
        return sum(size for _, size in self.layers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.layers)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """``{layer: (start, stop)}`` in the flat player numbering."""
        out, start = {}, 0
        for name, size in self.layers:
            out[name] = (start, start + size)
            start += size
        return out

    def split(self, mask: Bool[Array, " P"]) -> dict[str, Bool[Array, " _"]]:
        """Per-layer masks from a flat ``bool[P]``."""
        if mask.shape[-1] != self.num_players:
            raise ValueError(f"mask has {mask.shape[-1]} players, layout has {self.num_players}")
        return {name: mask[..., a:b] for name, (a, b) in self.offsets().items()}

    def join(self, masks: Mapping[str, Bool[Array, " _"]]) -> np.ndarray:
        """Flat ``bool[P]`` from per-layer masks (a missing layer is all kept)."""
        return np.concatenate([np.asarray(masks.get(n, np.ones(s, bool)), bool) for n, s in self.layers])

    def player_names(self) -> list[str]:
        """``"layer:index"`` of every player, in flat order."""
        return [f"{n}:{i}" for n, s in self.layers for i in range(s)]


def layout_of(sizes: Mapping[str, int], layers: Sequence[str] | None, *, ordered: bool = True) -> PlayerLayout:
    """The layout of ``layers`` among a model's prunable ``sizes`` (``{layer: players}``); default: all of them.

    With ``ordered``, players follow the model's order of ``sizes``; otherwise the order of ``layers``.

    Raises:
        ValueError: for an empty list, an unknown or a repeated layer (naming the model's layers).
    """
    layers = list(sizes) if layers is None else list(layers)
    if not layers:
        raise ValueError("the list of player layers is empty; name at least one of " + ", ".join(list(sizes)[:10]))
    unknown = [n for n in layers if n not in sizes]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the model's layers are {list(sizes)}")
    repeated = sorted({n for n in layers if layers.count(n) > 1})
    if repeated:
        raise ValueError(f"layer(s) {repeated} named more than once in {layers}: each layer's players count once")
    names = [n for n in sizes if n in layers] if ordered else layers
    return PlayerLayout(tuple((n, int(sizes[n])) for n in names))


def as_masks(masks) -> np.ndarray:
    """``bool[C, P]`` from booleans or 0/1 integers.

    Raises:
        ValueError: for another rank, or values that are not booleans or 0/1 integers (a float is not a mask).
    """
    arr = np.asarray(masks)
    if arr.ndim != 2:
        raise ValueError(f"masks must be bool[C, P], got shape {arr.shape}")
    return _boolean(arr, "masks")


def as_mask(mask, num_players: int) -> np.ndarray:
    """``bool[P]`` from a boolean or 0/1 integer mask of ``num_players`` players.

    Raises:
        ValueError: for another shape, or values that are not booleans or 0/1 integers (0.3 is not "kept").
    """
    arr = np.asarray(mask)
    if arr.shape != (num_players,):
        raise ValueError(f"a mask must be bool[{num_players}] (one entry per player), got shape {arr.shape}")
    return _boolean(arr, "a mask")


def _boolean(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise ValueError(f"{what} must be boolean (or 0/1 integers), got dtype {arr.dtype} with values"
                     f" {np.unique(arr)[:5]}")


def strongest_first(values: np.ndarray) -> np.ndarray:
    """Positions sorted by decreasing value; ties broken by position (deterministic)."""
    values = np.asarray(values)
    return np.lexsort((np.arange(values.size), -values))


def mask_of(indices, num_players: int) -> np.ndarray:
    """``bool[P]``, True at ``indices``."""
    mask = np.zeros(num_players, bool)
    mask[np.asarray(indices, int)] = True
    return mask


def allocate(layout: PlayerLayout, r: int) -> dict[str, int]:
    """Splits ``r`` kept neurons over the layers in proportion to their sizes.

    Largest remainders; every layer keeps at least one neuron.

    Raises:
        ValueError: if r is not in [number of layers, P].
    """
    sizes = dict(layout.layers)
    if not len(sizes) <= r <= layout.num_players:
        raise ValueError(f"target size r must be in [{len(sizes)}, {layout.num_players}], got {r}")
    exact = {n: r * s / layout.num_players for n, s in sizes.items()}
    out = {n: max(1, int(np.floor(e))) for n, e in exact.items()}
    by_remainder = sorted(sizes, key=lambda n: (-(exact[n] - np.floor(exact[n])), list(sizes).index(n)))
    i = 0
    while sum(out.values()) < r:
        n = by_remainder[i % len(by_remainder)]
        if out[n] < sizes[n]:
            out[n] += 1
        i += 1
    while sum(out.values()) > r:  # the at-least-one floor overshot: take from the largest
        n = max(out, key=lambda k: out[k])
        out[n] -= 1
    return out


def keep_per_layer(
    scores: np.ndarray, layout: PlayerLayout, r: int, *, within: np.ndarray | None = None
) -> np.ndarray:
    """Keeps the highest-scoring neurons of each layer, ``allocate(layout, r)`` per layer.

    Args:
        scores: ``float[P]``; ties broken by position.
        layout: the players.
        r: neurons to keep in all.
        within: optional ``bool[P]``: choose only among these (iterative
            pruning); each layer keeps at most its survivors.

    Returns:
        ``bool[P]``.
    """
    scores = np.asarray(scores, np.float64)
    within = np.ones(layout.num_players, bool) if within is None else np.asarray(within, bool)
    keep = np.zeros(layout.num_players, bool)
    for name, count in allocate(layout, r).items():
        a, b = layout.offsets()[name]
        order = strongest_first(np.where(within[a:b], scores[a:b], -np.inf))
        keep[a + order[: min(count, int(within[a:b].sum()))]] = True
    return keep


def masks_dict(layout: PlayerLayout, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer numpy masks from a flat ``bool[P]`` (or 0/1 integers; anything else is an error)."""
    return {n: np.asarray(m) for n, m in layout.split(as_mask(mask, layout.num_players)).items()}


__all__ = [
    "PlayerLayout", "allocate", "as_mask", "as_masks", "keep_per_layer", "layout_of", "mask_of", "masks_dict",
    "strongest_first",
]
