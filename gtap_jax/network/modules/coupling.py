"""Coupled features: the modules whose output features must go together, found in one traced forward pass.

A residual add ``x + f(x)`` ties channel c of ``x`` to channel c of ``f(x)``: silencing the channel
in one of them leaves it alive in the sum. The adapters trace one forward pass with every leaf
module's output passed through a named identity (:func:`marked`); :func:`coupled_groups` then
follows the feature axis (the last) of every value of the jaxpr. It keeps its identity through
elementwise operations (activations, a BatchNorm's or LayerNorm's scale and bias, dropout's
multiply), broadcasts, reshapes and transposes that leave it last, reductions, pooling windows and
concatenations over other axes (a mean over positions, a max pool, a class token); a Dense or Conv (``dot_general``,
``conv_general_dilated``) starts a new one. Two values with feature identities that meet in one
elementwise operation (an add, a gating multiply) join their modules into one group. Every leaf
module is its own group until something joins it.

Not followed (the identity ends there): a concatenation or split along the feature axis, a
reshape of it (attention's ``[..., heads, head_dim]``). A gather keeps it where it keeps the last
axis's size (an embedding table's rows looked up). Heads have their own players (``"attn:heads"``).
A group whose features enter a concatenation along the feature axis is marked
(``Group.concatenated``): naming it is refused.

Each module's input is named too (:func:`marked` with ``"in"``): a Dense or Conv whose input
carries a group's features is one of the group's *consumers*. The model's variables enter the
traced pass as arguments, each with an identity of its own: a variable that meets a group in an
elementwise operation (a bias, a norm's scale, a position embedding added to the stream) carries
the group's features on its last axis. A smaller model drops a group's features from all three:
its members' outputs, its consumers' inputs, its variables (:mod:`gtap_jax.network.modules.shrink_groups`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax.extend import core as jex_core

MARK = "gtap_out|"
MARK_IN = "gtap_in|"
PARAM = "param:"  # the identity of a variable: "param:" and its key path ("params/stem/kernel")

ELEMENTWISE = frozenset("""
abs add add_any and atan2 cbrt ceil clamp convert_element_type copy copy_p cos cosh div eq erf erf_inv erfc exp exp2
expm1 floor ge gt integer_pow is_finite le log log1p logistic lt max min mul ne neg nextafter not or pow
reduce_precision rem round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan tanh xor
""".split())
REDUCTIONS = frozenset(("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin", "reduce_and",
                        "reduce_or", "cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp"))
SUB_JAXPRS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def marked(path: str, value, what: str = "out"):
    """``value`` through an identity that names module ``path``'s output (``what="in"``: its input) in a traced
    jaxpr (arrays only)."""
    if not hasattr(value, "ndim") or value.ndim < 1:
        return value

    def identity(y):
        return y

    identity.__name__ = (MARK if what == "out" else MARK_IN) + path
    return jax.jit(identity)(value)


class Group(NamedTuple):
    """Modules whose features go together.

    Attributes:
        members: the leaf modules whose outputs carry the features.
        consumers: the leaf modules whose inputs carry them (a member that also takes them, as a norm, is both).
        params: the key paths (``"params/pos"``) of variables that carry them on their last axis.
        concatenated: whether the features meet others in a concatenation along the feature axis, where the
            trace stops following them (silencing the group would miss what comes after).
    """

    members: tuple[str, ...]
    consumers: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    concatenated: bool = False


class _Groups:
    """Union-find over module paths."""

    def __init__(self):
        self.parent: dict[str, str] = {}
        self.concatenated: set[str] = set()  # labels that entered a concatenation along the feature axis

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, labels) -> str | None:
        roots = sorted({self.find(a) for a in labels if a is not None})
        for other in roots[1:]:
            self.parent[other] = roots[0]
        return roots[0] if roots else None


def _width(v) -> int | None:
    shape = getattr(getattr(v, "aval", None), "shape", ())
    return shape[-1] if len(shape) >= 1 else None


def _sub_jaxpr(eqn):
    for name in SUB_JAXPRS:
        sub = eqn.params.get(name)
        if sub is not None:
            return sub.jaxpr if hasattr(sub, "jaxpr") else sub
    return None


def _follow(eqn, ins, groups: _Groups):
    """The feature identity of ``eqn``'s outputs from its inputs' (``ins``), joining what meets."""
    name, params = eqn.primitive.name, eqn.params
    out = eqn.outvars[0]
    width = _width(out)
    if width is None or not any(ins):
        return None
    first = eqn.invars[0]
    keeps_last = _width(first) == width
    if name in ELEMENTWISE:
        ndim = len(out.aval.shape)
        return groups.union([a for a, v in zip(ins, eqn.invars, strict=True)
                             if a is not None and len(v.aval.shape) == ndim and _width(v) == width])
    if name == "broadcast_in_dim":
        dims = params["broadcast_dimensions"]
        return ins[0] if keeps_last and dims and dims[-1] == len(out.aval.shape) - 1 else None
    if name in ("reshape", "squeeze", "expand_dims", "pad", "slice", "dynamic_slice", "rev", "sort", "copy", "gather"):
        return ins[0] if keeps_last else None
    if name in REDUCTIONS:
        axes = params.get("axes", (params.get("axis"),))
        return ins[0] if keeps_last and len(first.aval.shape) - 1 not in axes else None
    if name.startswith("reduce_window"):  # pooling: a window over positions, one feature at a time
        window = params.get("window_dimensions", ())
        return ins[0] if keeps_last and window and window[-1] == 1 else None
    if name == "transpose":
        perm = params["permutation"]
        return ins[0] if perm[-1] == len(perm) - 1 else None
    if name == "concatenate":
        if params["dimension"] != len(out.aval.shape) - 1:
            return groups.union(ins)
        groups.concatenated.update(a for a in ins if a is not None)
    return None


def walk(jaxpr, labels_in: list, step) -> list:
    """The labels of a jaxpr's outputs from its inputs': each equation's output labels are ``step(eqn, args)``, its
    inputs' labels ``args`` (None for a literal), except a call of a sub-jaxpr (a jit, a custom derivative) that is not
    a :func:`marked` identity, which is walked through with the same step."""
    label = dict(zip(jaxpr.invars, labels_in, strict=True))

    def get(v):
        return None if isinstance(v, jex_core.Literal) else label.get(v)

    for eqn in jaxpr.eqns:
        args = [get(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub is not None and len(sub.invars) == len(args) and not tag_of(eqn).startswith((MARK, MARK_IN)):
            outs = walk(sub, args, step)
        else:
            outs = step(eqn, args)
        for v, a in zip(eqn.outvars, outs, strict=True):
            label[v] = a
    return [get(v) for v in jaxpr.outvars]


def tag_of(eqn) -> str:
    """The name of a called function (a :func:`marked` identity's says whose input or output it is)."""
    return str(eqn.params.get("name", ""))


def _step(groups: _Groups, consumers: dict):
    def step(eqn, args):
        tag = tag_of(eqn)
        if tag.startswith(MARK):
            path = tag[len(MARK):]
            groups.find(path)
            return [groups.union([path, args[0] if _width(eqn.invars[0]) == _width(eqn.outvars[0]) else None])]
        if tag.startswith(MARK_IN):
            if args[0] is not None:
                consumers.setdefault(tag[len(MARK_IN):], args[0])
            return args[:1]
        return [_follow(eqn, args, groups)] * len(eqn.outvars)

    return step


def coupled_groups(closed_jaxpr, params: list[str] | None = None) -> list[Group]:
    """The groups of coupled modules in a jaxpr traced with :func:`marked` outputs and inputs, in the order of their
    first member's output; a module joined to no other is a group of one.

    Args:
        closed_jaxpr: the traced pass.
        params: the key paths of its first ``len(params)`` arguments, the model's variables.
    """
    groups, consumers = _Groups(), {}
    jaxpr = closed_jaxpr.jaxpr
    names = [PARAM + p for p in params or ()]
    for name in names:
        groups.find(name)
    walk(jaxpr, names + [None] * (len(jaxpr.invars) - len(names)), _step(groups, consumers))
    found: dict[str, Group] = {}
    modules = [p for p in groups.parent if not p.startswith(PARAM)]  # in the order of their outputs in the pass
    for path in modules:
        group = found.setdefault(groups.find(path), Group(()))
        found[groups.find(path)] = group._replace(members=(*group.members, path))
    for name in names:
        root = groups.find(name)
        if root in found:
            found[root] = found[root]._replace(params=(*found[root].params, name[len(PARAM):]))
    for path, label in consumers.items():
        root = groups.find(label)
        if root in found:
            found[root] = found[root]._replace(consumers=(*found[root].consumers, path))
    concatenated = {groups.find(a) for a in groups.concatenated}
    return [Group(tuple(sorted(g.members)), tuple(sorted(g.consumers)), tuple(sorted(g.params)), root in concatenated)
            for root, g in found.items()]


def key_path(path) -> str:
    """``"params/stem/kernel"`` for a pytree key path (an NNX variable's ``.value`` left out)."""
    return jax.tree_util.keystr(path, simple=True, separator="/").removesuffix("/value")


__all__ = ["MARK", "MARK_IN", "PARAM", "Group", "coupled_groups", "key_path", "marked", "tag_of", "walk"]
