"""A smaller network without the dropped features of coupled groups (:mod:`gtap_jax.network.modules.coupling`) and the
dropped heads of attention modules.

Each group's dropped features leave its members' outputs (a Dense's or Conv's kernel columns and
bias, a norm's scale, bias and statistics), its consumers' inputs (a Dense's kernel rows, a Conv's
input channels) and every variable that carries them (a position embedding added to the stream).
The masked game silences exactly these (:func:`gtap_jax.network.modules.masking.expand`: members' outputs
and consumers' inputs 0, a norm among the members over the kept features only), so the smaller
network computes what the masked one does; :func:`checked` requires it on the evaluation inputs. A dropped
head leaves its query, key and value projections (kernel and bias slices) and its rows of the output
projection; the attention module then has fewer heads of the same size (flax's attention through its
``num_heads``; an attention found in the trace, :mod:`gtap_jax.network.modules.heads`, through the attributes of
it or its config that hold the head count and width, :func:`fewer_heads`, or through its kernels' head axis).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout, as_mask
from gtap_jax.network.modules.coupling import key_path
from gtap_jax.network.modules.masking import GROUP, HEADS, Grouping

INSTEAD = "evaluate the masked game, or keep the model as it is"


def slices(layout: PlayerLayout, mask, grouped: Grouping | None, variable: Callable,
           kinds: dict[str, str], kernel_axes=None) -> dict[str, list[tuple[int, np.ndarray, bool]]]:
    """``{variable key path: [(axis, keep, dead), ...]}``: what a smaller network keeps of each variable (``dead``:
    kept as zeros, the one head of an attention that keeps none).

    Args:
        variable: ``(module path, name) -> key path`` of that variable (``"kernel"``, ``"bias"``), or None.
        kinds: ``{module path: kind}`` of the leaf modules (:class:`gtap_jax.network.modules.shrink_chain.Call`).
        kernel_axes: ``{module: (input axis, output axis[, input head axis, output head axis])}`` of the kernels not
            laid out ``[..., in, out]``: a Dense stored ``[out, in]`` (Hugging Face's ``FlaxConv1D``), an ``Einsum``
            (from its equation: :func:`~gtap_jax.network.modules.weights.einsum_axes`).

    Raises:
        ValueError: for a layer that is neither a group nor heads, a group that keeps nothing, or a consumer with no
            kernel.
    """
    plain = [layer for layer in layout.names if not layer.endswith((GROUP, HEADS))]
    if plain:
        raise ValueError(f"a smaller network of coupled groups needs every layer to be one ('path:group') or heads;"
                         f" {plain} are single modules")
    keep = {p: np.asarray(k) for p, k in layout.split(as_mask(mask, layout.num_players)).items()}
    for layer, k in keep.items():
        if not k.any() and not layer.endswith(HEADS):
            raise ValueError(f"layer {layer!r} keeps none of its {k.size} players: a smaller network keeps one at"
                             " least")
    out: dict[str, list] = {}

    def add(key, axis, k, dead=False):
        if key is not None:
            out.setdefault(key, []).append((axis, k, dead))

    axes = _KernelAxes(kernel_axes or {}, kinds)
    traced = grouped.attentions if grouped else {}
    for layer, attention in traced.items():
        for key, axis, k, dead in _head_cuts(attention, keep[layer], variable, axes):
            add(key, axis, k, dead)
    for layer in layout.names:
        if layer in traced:
            continue
        if layer.endswith(HEADS):  # q/k/v kernels [in, heads, head_dim] and biases [heads, head_dim]; out [heads, ...]
            attn, k = layer[: -len(HEADS)], keep[layer]
            if variable(f"{attn}/query", "kernel") is None:
                raise ValueError(f"layer {layer!r}: no query / key / value projections at {attn!r} ({INSTEAD})")
            dead = not k.any()  # no head left: one stays, its output rows 0 (the output projection's bias remains)
            k = np.eye(k.size, dtype=bool)[0] if dead else k
            for proj in ("query", "key", "value"):
                add(variable(f"{attn}/{proj}", "kernel"), -2, k)
                add(variable(f"{attn}/{proj}", "bias"), -2, k)
            add(variable(f"{attn}/out", "kernel"), 0, k, dead)
    for layer, group in (grouped.groups if grouped else {}).items():
        k = keep[layer]
        for name in group.params:
            add(name, -1, k)
        for member in group.members:
            add(variable(member, "kernel"), axes.out(member), k)
        for consumer in group.consumers:
            key = variable(consumer, "kernel")
            if key is None and consumer not in group.members:
                raise ValueError(f"{consumer!r} takes the features of {layer!r} but has no kernel to drop them from"
                                 f" ({INSTEAD})")
            add(key, axes.into(consumer), k)
    return out


class _KernelAxes(NamedTuple):
    """Which axis of a module's kernel holds its inputs, outputs or heads (``kernel_axes`` as :func:`slices` takes
    it; a Dense's ``[..., in, out]`` and a Conv's ``[..., in, out]`` otherwise)."""

    given: dict
    kinds: dict

    def out(self, module) -> int:
        return self.given[module][1] if module in self.given else -1

    def into(self, module) -> int:
        return self.given[module][0] if module in self.given else -2 if self.kinds.get(module) == "conv" else 0

    def heads(self, module, output: bool) -> int:
        """An Einsum kernel's axis of its output's (or input's) heads."""
        axes = self.given.get(module, ())
        if len(axes) != 4 or axes[2 + output] is None:
            raise ValueError(f"{module!r} takes or makes heads, but no axis of its kernel holds them ({INSTEAD})")
        return axes[2 + output]


def _head_cuts(attention, keep: np.ndarray, variable: Callable, axes: _KernelAxes) -> list[tuple]:
    """``[(variable key, axis, keep, dead)]`` of a traced attention keeping the heads ``keep`` (one, silent, where none
    is): its projections' head features (or their kernels' head axis) and its output projection's head inputs."""
    dead = not keep.any()
    keep = np.eye(keep.size, dtype=bool)[0] if dead else keep
    queries = np.repeat(keep, attention.group)  # the output projection reads every query head
    if attention.split:  # the kernels hold the heads: cut along that axis
        return ([(variable(m, "kernel"), axes.heads(m, True), np.repeat(keep, attention.heads_of(i) // keep.size),
                  False) for i, (m, _) in enumerate(attention.sources)]
                + [(variable(c, "kernel"), axes.heads(c, False), queries, dead) for c in attention.consumers])
    cuts = [(variable(m, name), axes.out(m) if name == "kernel" else -1, cut, False)
            for m, cut in _source_keeps(attention, keep).items() for name in ("kernel", "bias")]
    return cuts + [(variable(c, "kernel"), axes.into(c), np.repeat(queries, attention.head_dim), dead)
                   for c in attention.consumers]


def _source_keeps(attention, keep: np.ndarray) -> dict[str, np.ndarray]:
    """``{projection: its output features kept}`` of a traced attention keeping the players ``keep`` (a source of
    query heads keeps each kept key / value head's group)."""
    parts = [(m, o, np.repeat(np.repeat(keep, attention.heads_of(i) // keep.size), attention.head_dim))
             for i, (m, o) in enumerate(attention.sources)]
    out: dict[str, np.ndarray] = {}
    for module, offset, per_feature in parts:
        width = max(o + f.size for m, o, f in parts if m == module)
        cut = out.setdefault(module, np.ones(width, bool))
        cut[offset: offset + per_feature.size] = per_feature
    return out


def kept_heads(layout: PlayerLayout, mask) -> dict[str, int]:
    """``{attention module path: heads kept}`` for the layers ``"attn:heads"`` (one, silent, where none is)."""
    keep = layout.split(as_mask(mask, layout.num_players))
    return {layer[: -len(HEADS)]: max(1, int(np.sum(k))) for layer, k in keep.items() if layer.endswith(HEADS)}


def traced_heads(layout: PlayerLayout, mask, grouped: Grouping | None) -> dict[str, tuple]:
    """``{attention's owner module: (Attention, heads kept)}`` for the heads found in the trace (one where none is)."""
    keep = layout.split(as_mask(mask, layout.num_players))
    traced = grouped.attentions if grouped else {}
    return {a.owner: (a, max(1, int(np.sum(keep[layer])))) for layer, a in traced.items()}


def sliced(tree, cuts: dict[str, list[tuple[int, np.ndarray, bool]]]):
    """``tree`` (variables, an NNX state) with each leaf named in ``cuts`` cut along its axes (``dead``: what is
    kept along that axis set to 0)."""

    def cut(path, value):
        for axis, keep, dead in cuts.get(key_path(path), ()):
            if np.shape(value)[axis] != keep.size:
                raise ValueError(f"{key_path(path)!r} has {np.shape(value)[axis]} entries on axis {axis}, not the"
                                 f" {keep.size} features of its group ({INSTEAD})")
            value = np.take(np.asarray(value), np.flatnonzero(keep), axis=axis)
            value = jnp.asarray(np.zeros_like(value) if dead else value)
        return value

    return jax.tree_util.tree_map_with_path(cut, tree)


def kept_widths(layout: PlayerLayout, mask, grouped: Grouping | None,
                has_kernel: Callable) -> dict[str, tuple[int, int]]:
    """``{member with a kernel: (features before, kept)}``: the new output width of each producing member."""
    keep = layout.split(as_mask(mask, layout.num_players))
    widths = {m: (int(np.size(keep[layer])), int(np.sum(keep[layer])))
              for layer, group in (grouped.groups if grouped else {}).items() for m in group.members if has_kernel(m)}
    for layer, attention in (grouped.attentions if grouped else {}).items():
        if attention.split:  # the projections keep their widths; their kernels lose heads
            continue
        k = np.asarray(keep[layer])
        for module, cut in _source_keeps(attention, k if k.any() else np.eye(k.size, dtype=bool)[0]).items():
            widths[module] = (cut.size, int(cut.sum()))
    return widths


class GroupCuts(NamedTuple):
    """What a smaller network keeps: ``cuts`` (:func:`slices`), ``widths`` (``{member with a kernel or an embedding,
    or a traced attention's projection: (features before, kept)}``), ``heads`` (``{flax attention module path: heads
    kept}``), ``traced`` (:func:`traced_heads`) and ``holders`` (:func:`holders`)."""

    cuts: dict
    widths: dict
    heads: dict
    traced: dict
    holders: dict


def produces(variable: Callable, path: str) -> bool:
    """Whether the module at ``path`` makes its own features (a Dense's or Conv's kernel, an embedding table), as
    opposed to passing them on (a norm, an activation); ``variable`` as :func:`slices` takes it."""
    return (variable(path, "kernel") or variable(path, "embedding")) is not None


def group_cuts(layout: PlayerLayout, mask, grouped: Grouping | None, variable: Callable,
               kinds: dict[str, str], kernel_axes=None) -> GroupCuts:
    """The :class:`GroupCuts` of a smaller network; ``variable``, ``kinds`` and ``kernel_axes`` as :func:`slices`
    takes them."""
    widths = kept_widths(layout, mask, grouped, lambda path: produces(variable, path))
    traced = traced_heads(layout, mask, grouped)
    flax_heads = {attn: n for attn, n in kept_heads(layout, mask).items()
                  if attn + HEADS not in (grouped.attentions if grouped else {})}
    return GroupCuts(slices(layout, mask, grouped, variable, kinds, kernel_axes), widths, flax_heads, traced,
                     holders(layout, mask, grouped, lambda path: produces(variable, path)))


def holders(layout: PlayerLayout, mask, grouped: Grouping | None, has_kernel: Callable) -> dict[str, tuple[int, int]]:
    """``{module: (features before, kept)}`` for each module, not a producing member, that holds a variable of a group
    (a class token, a position table: ``params/vit/embeddings/cls_token``): its shape may be fixed by the module's
    width attribute or config (:func:`narrower`), which a smaller network then narrows."""
    keep = layout.split(as_mask(mask, layout.num_players))
    out = {}
    for layer, group in (grouped.groups if grouped else {}).items():
        for name in group.params:
            module = name.removeprefix("params/").rpartition("/")[0]
            if module not in group.members or not has_kernel(module):
                out[module] = (int(np.size(keep[layer])), int(np.sum(keep[layer])))
    return out


# Names of an attention's (or its config's) attribute that fixes its heads' total width.
WIDTH_NAMES = ("hidden_size", "embed_dim", "emb_dim", "n_embd", "d_model", "qkv_features", "all_head_size",
               "inner_dim", "num_features")


def _config_changed(module, changed: Callable) -> dict:
    """``{"config": a copy}`` of ``module``'s config with the attributes that ``changed(fields)`` gives, or ``{}``."""
    config = getattr(module, "config", None)
    new = changed(vars(config)) if config is not None and hasattr(config, "__dict__") else {}
    if not new:
        return {}
    config = copy.deepcopy(config)
    for name, value in new.items():
        setattr(config, name, value)
    return {"config": config}


def _fields(module) -> dict:
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


def narrower(module, before: int, kept: int) -> dict:
    """``{attribute: new value}`` for a module that holds a stream's variable (:func:`holders`): each width attribute
    (:data:`WIDTH_NAMES`) of it or of a copy of its config that equals ``before`` becomes ``kept``."""

    def changed(fields):
        return {n: kept for n, v in fields.items() if n in WIDTH_NAMES and v == before and not isinstance(v, bool)}

    return {**changed(_fields(module)), **_config_changed(module, changed)}


def fewer_heads(module, attention, kept: int) -> dict:
    """``{attribute: new value}`` for the attention module ``module`` (its traced :class:`Attention`) to compute
    ``kept`` heads (key / value heads with their groups of query heads) of the same size: each attribute of the
    module, or of a copy of its ``config``, that equals a head count (a name with "head", not a size or dim) or the
    query heads' total width (:data:`WIDTH_NAMES`).

    Raises:
        ValueError: where no attribute holds the head count (the count is fixed in the module's code).
    """
    heads, dim, group = attention.num_heads, attention.head_dim, attention.group
    counts = {heads * group: kept * group, heads: kept}  # query heads, then key / value heads (one where group is 1)

    def changed(fields):
        out = {}
        for name, value in fields.items():
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            if value in counts and "head" in name and not any(w in name for w in ("dim", "size")):
                out[name] = counts[value]
            elif value == heads * group * dim and name in WIDTH_NAMES:
                out[name] = kept * group * dim
        return out

    found = {**changed(_fields(module)), **_config_changed(module, changed)}
    if not any(k == "config" or "head" in k for k in found):
        raise ValueError(f"the attention at {attention.owner!r} ({type(module).__name__}) holds its head count"
                         f" ({heads}) in no attribute of its own or of its config: a smaller network cannot have fewer"
                         f" heads ({INSTEAD})")
    return found


def traces(small, x) -> bool:
    """Whether ``small.predict(x)`` traces: its shapes fit (nothing is compiled or run)."""
    try:
        jax.eval_shape(small.predict, x)
    except Exception:  # a width fixed in the model's code still expects the old one
        return False
    return True


def checked(small, reference, x, atol: float = 1e-4):
    """``(small, largest difference)``, if ``small.predict(x)`` reproduces ``reference`` (the masked logits).

    Raises:
        ValueError: when it fails or differs.
    """
    try:
        out = np.asarray(small.predict(x))
    except Exception as e:  # a width fixed in the model's code (a parameter's shape) still expects the old one
        raise ValueError(f"the smaller network fails ({type(e).__name__}: {str(e).splitlines()[0]}): a width fixed in"
                         " the model's code still expects the old one (a parameter's shape or a reshape written with"
                         f" a number: derive it from an attribute of the module or its config, e.g. hidden_size);"
                         f" {INSTEAD}") from e
    error = float(np.max(np.abs(out - reference))) if out.shape == reference.shape else np.inf
    if not error <= atol * max(1.0, float(np.max(np.abs(reference)))):
        raise ValueError(f"the smaller network does not reproduce the masked one (largest difference {error:.3g}):"
                         " something in the model's code depends on the width itself (a sinusoidal position table"
                         " or a sqrt(width) scale computed from it, a norm of its own class that averages over every"
                         f" feature, zeros included); {INSTEAD}")
    return small, error


__all__ = ["GroupCuts", "checked", "fewer_heads", "group_cuts", "holders", "kept_heads", "kept_widths", "narrower",
           "produces", "sliced", "slices", "traced_heads", "traces"]
