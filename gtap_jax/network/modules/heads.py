"""Attention heads found in a traced pass, however the attention is written.

An attention module splits a projection's output features into heads (a reshape of
``[..., heads * head_dim]`` to ``[..., heads, head_dim]``), contracts queries with keys and the
weights with values head by head (``dot_general`` batched over the head axis), and merges the heads
back (a reshape to ``[..., heads * head_dim]``) into the input of an output projection. The same
jaxpr that :mod:`gtap_jax.network.modules.coupling` reads (every leaf module's input and output named)
is followed by this module:

- a module's output carries its features (``(module, offset)``: a slice or split along the feature
  axis, as GPT-2's one ``c_attn`` for queries, keys and values, shifts the offset);
- a reshape of features into ``(heads, head_dim)`` starts a head axis, which transposes, broadcasts,
  elementwise operations, reductions over other axes and ``dot_general`` batch or free dimensions keep;
  two head axes that meet (queries and keys, weights and values) are one attention;
- the reshape that merges the head axis with the one after it gives the merged heads, and the first
  module whose input carries them is the attention's output projection (its *consumer*).

A projection whose kernel holds the head axis (an ``Einsum`` to ``[..., heads, head_dim]``, as gemma's) starts a
head axis at its output, and a module whose input is ``[..., heads, head_dim]`` (its ``Einsum`` contracting both)
is the consumer (:attr:`Attention.split`). Splits and concatenations along ``head_dim`` (rotary embeddings) keep the
head axis. A head is then silenced by zeroing its ``head_dim`` inputs of the output projection: its context vector,
what Hugging Face's ``head_mask`` and Michel et al.'s gate do. An attention whose key and value heads
are fewer than its query heads (grouped- or multi-query) has one player per key / value head: dropping it drops the
query heads that read it (:attr:`Attention.group`; query head n reads key / value head n // group, as a repeat of the
keys or a split of the queries into (key / value heads, group) lays them out).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

from gtap_jax.network.modules.coupling import ELEMENTWISE, MARK, MARK_IN, REDUCTIONS, tag_of, walk


class Attention(NamedTuple):
    """The heads of one attention, found in a traced pass.

    Attributes:
        sources: ``(module, feature offset)`` of each projection split into heads (queries, keys, values).
        consumers: the modules whose input carries the merged heads (the output projection).
        head_dim: each head's features at the consumer's input.
        num_heads: the players: the heads, or where keys and values have fewer heads than queries (grouped- or
            multi-query attention) the key / value heads, each with the ``group`` query heads that read it.
        group: query heads per key / value head (1: every head its own).
        source_heads: each source's heads, in the order of ``sources``.
        unsupported: why heads of this attention cannot be players (counts that do not divide), or "".
        split: whether the projections output ``[..., heads, head_dim]`` themselves (an ``Einsum`` whose kernel holds
            the head axis, as gemma's) and the consumers read them so, with no reshape in between.
    """

    sources: tuple[tuple[str, int], ...]
    consumers: tuple[str, ...]
    num_heads: int
    head_dim: int
    group: int = 1
    split: bool = False
    source_heads: tuple[int, ...] = ()
    unsupported: str = ""

    def heads_of(self, i: int) -> int:
        """The heads of source ``i`` (``num_heads`` key / value heads, or ``group`` times as many query heads)."""
        return self.source_heads[i] if self.source_heads else self.num_heads

    @property
    def owner(self) -> str:
        """The deepest module that holds every source projection (BERT's ``attention/self``, GPT-2's ``attn``)."""
        parents = {m.rsplit("/", 1)[0] if "/" in m else "" for m, _ in self.sources}
        return os.path.commonpath(sorted(parents)) if len(parents) > 1 else parents.pop()


class _Split(NamedTuple):
    module: str
    offset: int
    heads: int
    dim: int
    split: bool = False  # the module's output is [..., heads, head_dim] itself


class _Tokens:
    """Union-find over head splits, with what met and what read the merged heads."""

    def __init__(self):
        self.splits: list[_Split] = []
        self.parent: list[int] = []
        self.met: set[int] = set()
        self.consumers: dict[int, list[str]] = {}

    def new(self, split: _Split) -> int:
        self.splits.append(split)
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int, contracted: bool = True) -> int:
        """One attention of ``a`` and ``b``; ``contracted``: they met in a contraction batched over heads (what makes
        an attention; an elementwise meeting alone, as a group norm's statistics, does not)."""
        a, b = self.find(a), self.find(b)
        root = min(a, b)
        self.parent[max(a, b)] = root
        if contracted or a in self.met or b in self.met:
            self.met.add(root)
        return root


# labels: ("F", module, offset) features of a module's output on the last axis; ("H", token, axis) a head axis;
# ("M", token) merged heads on the last axis


def _shape(v) -> tuple:
    return tuple(getattr(getattr(v, "aval", None), "shape", ()))


def _reshaped(label, shape_in, shape_out, tokens: _Tokens):
    kind = label[0]
    if kind == "F":
        if shape_out[-1:] == shape_in[-1:] and math.prod(shape_out) == math.prod(shape_in):
            return label
        if (len(shape_out) >= 2 and shape_out[-2] * shape_out[-1] == shape_in[-1] and shape_out[-1] != shape_in[-1]
                and shape_out[-2] > 1):
            return ("H", tokens.new(_Split(label[1], label[2], shape_out[-2], shape_out[-1])), len(shape_out) - 2)
        return None
    if kind == "H":
        axis = label[2]
        if axis == len(shape_in) - 2 and shape_out[-1:] == (shape_in[-2] * shape_in[-1],) \
                and math.prod(shape_out[:-1]) == math.prod(shape_in[:-2]):
            return ("M", label[1])
        before = math.prod(shape_in[:axis])
        for j, size in enumerate(shape_out):
            if size == shape_in[axis] and math.prod(shape_out[:j]) == before:
                return ("H", label[1], j)
            if math.prod(shape_out[:j]) != before:
                continue
            if axis < len(shape_in) - 2 and size == shape_in[axis] * shape_in[axis + 1]:
                return ("H", label[1], j)  # key / value heads repeated, each for a group of query heads
            if j + 1 < len(shape_out) - 1 and size * shape_out[j + 1] == shape_in[axis] and size > 1:
                return ("H", label[1], j)  # query heads split into (key / value heads, group)
        return None
    return label if shape_out[-1:] == shape_in[-1:] else None


def _dot_general(eqn, labels, tokens: _Tokens):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    ndims = [len(_shape(v)) for v in eqn.invars[:2]]
    lhs_free = [d for d in range(ndims[0]) if d not in lc and d not in lb]
    rhs_free = [d for d in range(ndims[1]) if d not in rc and d not in rb]
    placed = []
    for side, (label, contract, batch, free, shift) in enumerate(
            ((labels[0], lc, lb, lhs_free, len(lb)), (labels[1], rc, rb, rhs_free, len(lb) + len(lhs_free)))):
        del side
        if label is None or label[0] != "H" or label[2] in contract:
            continue
        axis = batch.index(label[2]) if label[2] in batch else shift + free.index(label[2])
        placed.append((label[1], axis))
    if not placed:
        return None
    token, axis = placed[0]
    if len(placed) == 2 and placed[1][1] == axis:
        token = tokens.union(token, placed[1][0])
    return ("H", token, axis)


def _follow(eqn, labels, tokens: _Tokens):
    """The label of ``eqn``'s outputs from its inputs' ``labels``."""
    name, params = eqn.primitive.name, eqn.params
    shape_out = _shape(eqn.outvars[0])
    shape_in = _shape(eqn.invars[0]) if eqn.invars else ()
    first = labels[0] if labels else None
    if name == "dot_general":
        return _dot_general(eqn, labels, tokens)
    if name in ELEMENTWISE:
        same = [lab for lab, v in zip(labels, eqn.invars, strict=True)
                if lab is not None and len(_shape(v)) == len(shape_out) and _shape(v)[-1:] == shape_out[-1:]]
        heads = [lab for lab in same if lab[0] == "H"]
        if heads:
            token = heads[0][1]
            for other in heads[1:]:
                if other[2] == heads[0][2]:
                    token = tokens.union(token, other[1], contracted=False)
            return ("H", token, heads[0][2])
        return same[0] if same else None
    if first is None:
        return None
    if name == "reshape":
        return _reshaped(first, shape_in, shape_out, tokens)
    if name == "transpose":
        perm = params["permutation"]
        if first[0] == "H":
            return ("H", first[1], list(perm).index(first[2]))
        return first if perm[-1] == len(perm) - 1 else None
    if name == "broadcast_in_dim":
        dims = params["broadcast_dimensions"]
        if first[0] == "H":
            return ("H", first[1], dims[first[2]])
        return first if dims and dims[-1] == len(shape_out) - 1 and shape_in[-1:] == shape_out[-1:] else None
    if name in REDUCTIONS or name == "squeeze":
        axes = params.get("axes", params.get("dimensions", (params.get("axis"),)))
        if first[0] == "H":
            return None if first[2] in axes else ("H", first[1], first[2] - sum(a < first[2] for a in axes))
        return first if len(shape_in) - 1 not in axes else None
    if name == "slice":
        starts, limits = params["start_indices"], params["limit_indices"]
        sliced = [d for d, (s, e, n) in enumerate(zip(starts, limits, shape_in, strict=True)) if (s, e) != (0, n)]
        if first[0] == "F" and sliced == [len(shape_in) - 1]:
            return ("F", first[1], first[2] + starts[-1])
        if first[0] == "H":
            return first if first[2] not in sliced else None
        return first if len(shape_in) - 1 not in sliced else None
    if name in ("copy", "copy_p", "reduce_precision", "optimization_barrier"):
        return first
    if name == "concatenate" and first[0] == "H" and params["dimension"] != first[2]:
        return first  # parts of each head put together (rotary embeddings' halves)
    return None


def _split_outputs(eqn, first):
    """A ``split`` along the feature axis: each part's offset."""
    axis, sizes = eqn.params["axis"], eqn.params["sizes"]
    if first is None:
        return [None] * len(sizes)
    last = len(_shape(eqn.invars[0])) - 1
    if first[0] == "H":  # parts of each head (rotary embeddings' halves), or of other axes
        return [first if first[2] != axis % (last + 1) else None] * len(sizes)
    if axis % (last + 1) != last:
        return [first] * len(sizes)
    if first[0] != "F":
        return [None] * len(sizes)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return [("F", first[1], first[2] + off) for off in offsets]


def _step(tokens: _Tokens, head_outputs: frozenset):
    def step(eqn, args):
        tag = tag_of(eqn)
        if tag.startswith(MARK):
            module, shape = tag[len(MARK):], _shape(eqn.outvars[0])
            if module in head_outputs and len(shape) >= 2:
                return [("H", tokens.new(_Split(module, 0, shape[-2], shape[-1], True)), len(shape) - 2)]
            keep = args[0] is not None and args[0][0] in ("H", "M")
            return [args[0] if keep else ("F", module, 0)]
        if tag.startswith(MARK_IN):
            arg, shape = args[0], _shape(eqn.invars[0])
            if arg is not None and (arg[0] == "M" or (arg[0] == "H" and arg[2] == len(shape) - 2
                                                       and shape[-1] == tokens.splits[arg[1]].dim)):
                tokens.consumers.setdefault(tokens.find(arg[1]), []).append(tag[len(MARK_IN):])
            return args[:1]
        if eqn.primitive.name == "split":
            return _split_outputs(eqn, args[0])
        return [_follow(eqn, args, tokens)] * len(eqn.outvars)

    return step


def traced_attentions(closed_jaxpr, head_outputs=frozenset(), has_kernel=None) -> list[Attention]:
    """The attentions of a jaxpr traced with :func:`gtap_jax.network.modules.coupling.marked` inputs and outputs, in
    the order of their first head split: head splits that met one another and whose merged heads a module reads.
    ``head_outputs``: the modules whose outputs are ``[..., heads, head_dim]`` already (kernels holding the heads);
    ``has_kernel``: ``module -> bool``, which may be an output projection (a rotary embedding that reads the heads is
    not)."""
    tokens = _Tokens()
    jaxpr = closed_jaxpr.jaxpr
    walk(jaxpr, [None] * len(jaxpr.invars), _step(tokens, frozenset(head_outputs)))
    found = []
    for root in sorted({tokens.find(t) for t in range(len(tokens.splits))}):
        consumers = tuple(dict.fromkeys(c for t, cs in tokens.consumers.items() if tokens.find(t) == root for c in cs
                                        if has_kernel is None or has_kernel(c)))
        if root not in tokens.met or not consumers:
            continue
        splits = list({(s.module, int(s.offset)): s for t, s in enumerate(tokens.splits)
                       if tokens.find(t) == root}.values())
        fewest, most = min(s.heads for s in splits), max(s.heads for s in splits)
        odd = most % fewest or any(s.heads not in (fewest, most) for s in splits)
        found.append(Attention(tuple((s.module, int(s.offset)) for s in splits), consumers, fewest, splits[0].dim,
                               most // fewest, splits[0].split, tuple(s.heads for s in splits),
                               f"head counts {sorted({s.heads for s in splits})} that do not divide" if odd else ""))
    return found


def attention_at(attentions: list[Attention], path: str) -> Attention | None:
    """The one attention whose projections all lie under the module at ``path`` (None where none does).

    Raises:
        ValueError: where several do (naming each one's module).
    """
    under = [a for a in attentions if all(m == path or m.startswith(path + "/") or not path for m, _ in a.sources)]
    if len(under) > 1:
        raise ValueError(f"{path!r} holds {len(under)} attentions; name one of {[a.owner for a in under]}")
    return under[0] if under else None


__all__ = ["Attention", "attention_at", "traced_attentions"]
