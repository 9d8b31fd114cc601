"""What the Linen and NNX adapters share, written once: :class:`ModuleNetwork`.

Both mask named modules of a Flax model through :data:`~gtap_jax.network.modules.masking.ACTIVE`,
find coupled groups in one traced pass, record the leaf module calls of one masked pass, and make a
smaller network by one of two planners (:mod:`~gtap_jax.network.modules.shrink_chain` for chains,
:mod:`~gtap_jax.network.modules.shrink_groups` for coupled groups and heads). What differs, each
adapter gives through a few hooks: how a masked pass runs, which leaf calls it makes, where a
parameter lives, and how a smaller model is rebuilt from the planner's cuts.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout, as_mask
from gtap_jax.network.contract import cast_floats, count_params
from gtap_jax.network.modules import coupling, heads, incremental, shrink_chain, shrink_groups
from gtap_jax.network.modules.masking import (
    GROUP,
    HEADS,
    Grouping,
    expand,
    grouping,
    node_at,
    not_for_groups,
    sizes_of,
    warn_if_grouped,
    with_active,
)
from gtap_jax.network.modules.weights import kernel_of


class ModuleNetwork(abc.ABC):
    """The part of :class:`~gtap_jax.network.contract.Network` and ``Shrinkable`` common to Flax modules.

    A subclass sets ``model``, ``apply_kwargs``, ``widths`` (``{producer path: output features}`` of a
    smaller network) and ``_groups = {}``, and gives the hooks below.
    """

    _groups: dict  # layers -> their Grouping, traced once

    # --- hooks -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _runner(self, layers: Sequence[str], x, *, dtype: str = "float32", also: Sequence[str] = ()) -> Callable:
        """``run(x) -> logits``: one pass that masks ``layers`` (read from ``ACTIVE``); ``also``: further modules
        whose calls must be seen (a consumer whose output is overridden)."""

    @abc.abstractmethod
    def _leaf_calls(self, layers: Sequence[str], x, masks, fills) -> list[shrink_chain.Call]:
        """Leaf module calls (no module called inside) of one masked pass, in order, with their inputs."""

    @abc.abstractmethod
    def _param_dict(self, tree=None):
        """The parameters (or a tree shaped like them) as nested dicts keyed by module path."""

    @abc.abstractmethod
    def _variable(self, path: str, name: str) -> str | None:
        """The key path of the variable ``name`` of the module at ``path`` (None where it has none)."""

    @abc.abstractmethod
    def _sliced(self, cuts: shrink_groups.GroupCuts):
        """The smaller network of coupled groups and heads, unchecked."""

    @abc.abstractmethod
    def _rebuilt(self, cuts: shrink_chain.ChainCuts, calls):
        """The smaller network of a chain, unchecked."""

    @abc.abstractmethod
    def _trace(self, example) -> tuple:
        """``(closed jaxpr, variable key paths)``: one pass on ``example[:2]`` with every leaf module's input and output
        named (:func:`gtap_jax.network.modules.coupling.marked`), the model's variables its first arguments."""

    def _kernel_axes(self) -> dict[str, tuple]:
        """``{module: (input axis, output axis[, input head axis, output head axis])}`` of kernels that are neither a
        Dense's nor a Conv's (an Einsum's: :func:`~gtap_jax.network.modules.weights.einsum_axes`)."""
        return {}

    def _transposed(self) -> set[str]:
        """The modules whose kernels are stored ``[out, in]`` (:func:`~gtap_jax.network.modules.weights.dense_like`)."""
        return set()

    # --- the template ------------------------------------------------------------------------------------------
    def _traced(self, x) -> tuple:
        """:meth:`_trace`, once per network (what it finds does not depend on the batch)."""
        if "_trace_cache" not in vars(self):
            self._trace_cache = self._trace(x)
        return self._trace_cache

    def coupled(self, example) -> list:
        """The groups of leaf modules whose output features are coupled (:mod:`gtap_jax.network.modules.coupling`)."""
        return coupling.coupled_groups(*self._traced(example))

    def attentions(self, example) -> list[heads.Attention]:
        """The attentions whose heads the traced pass shows (:mod:`gtap_jax.network.modules.heads`), whatever their
        class; ``"<owner>:heads"`` names one's heads as players."""
        if "_attentions_cache" not in vars(self):  # from the one trace: found once per network
            head_outputs = {p for p, axes in self._kernel_axes().items() if len(axes) == 4 and axes[3] is not None}
            self._attentions_cache = heads.traced_attentions(self._traced(example)[0], head_outputs,
                                                             lambda path: self._variable(path, "kernel") is not None)
        return self._attentions_cache

    def _grouping(self, layers: Sequence[str], x) -> Grouping | None:
        """The coupled groups and traced heads that ``layers`` name (traced once on ``x``), or None."""
        if not any(layer.endswith((GROUP, HEADS)) for layer in layers):
            return None
        if tuple(layers) not in self._groups:
            groups = self.coupled(x) if any(layer.endswith(GROUP) for layer in layers) else []
            self._groups[tuple(layers)] = grouping(layers, groups, self._attentions_or_none(x))
        return self._groups[tuple(layers)]

    def _attentions_or_none(self, x) -> list:
        try:
            return self.attentions(x)
        except Exception:  # noqa: BLE001 (flax's own attention modules name their heads without the trace)
            return []

    def _sizes(self, layers: Sequence[str], outputs, x) -> dict[str, int]:
        """``{layer: players}``: traced heads from the trace, the rest from a recording pass's ``outputs``."""
        grouped = self._grouping(layers, x)
        traced = {layer: a.num_heads for layer, a in (grouped.attentions if grouped else {}).items()}
        return {**sizes_of(outputs, [layer for layer in layers if layer not in traced]), **traced}

    def _names(self, outputs, x) -> list[str]:
        """The layers a user may name: every recorded module, its group, and the traced attentions' heads."""
        return [*sorted(outputs), *(p + GROUP for p in sorted(outputs) if not p.endswith(HEADS)),
                *(a.owner + HEADS for a in self._attentions_or_none(x))]

    def _warn_if_grouped(self, layers: Sequence[str], x) -> None:
        """A warning for a plain layer that is one member of a coupled group of several producers, a residual
        stream (:func:`masking.warn_if_grouped`); a Dense or Conv with its norm is a chain, not warned about."""
        try:
            groups = self.coupled(x)
        except Exception:  # noqa: BLE001 (a warning only: a model the tracer cannot follow still plays its game)
            return

        producers = [sum(shrink_groups.produces(self._variable, m) for m in g.members) for g in groups]
        warn_if_grouped(layers, [g for g, n in zip(groups, producers, strict=True) if n > 1])

    def masked_logits(self, layout, x, *, dtype="float32", cache_prefix=True):
        x = jnp.asarray(x)
        grouped, run = self._grouping(layout.names, x), self._runner(layout.names, x, dtype=dtype)
        x = cast_floats(x, dtype)
        return lambda masks, fills: with_active((expand(masks, grouped), fills), run, x)

    def chain_fn(self, layout, x, reduce, *, dtype="float32"):
        x = jnp.asarray(x)
        grouped = self._grouping(layout.names, x)

        def forward(*consumers):
            run = self._runner(layout.names, x, also=consumers)
            return lambda x, masks, fills: with_active((expand(masks, grouped), fills), run, x)

        return intercepted_chain_fn(
            layout, x, reduce, calls=self._leaf_calls(layout.names, x[:2], {}, None), grouping=grouped, dtype=dtype,
            params_at=lambda path: node_at(self._param_dict(), path), forward=forward, transposed=self._transposed())

    def _single_modules(self, layout, what: str) -> None:
        """Raises ValueError where a layer is a coupled group or heads found in the trace: ``what`` (masked weights,
        masked training) silences single modules' outputs (and flax's own attention heads) only."""
        not_for_groups(layout.names, what)
        grouped = self._groups.get(tuple(layout.names))
        traced = list(grouped.attentions) if grouped else []
        if traced:
            raise ValueError(f"{what} is built for single modules and flax's own attention; {traced} are heads found"
                             " in the trace, silenced at their output projection's inputs (evaluate their game, or"
                             " make the network smaller)")

    def layer_outputs(self, x, layout):
        outputs: dict = {}
        x = jnp.asarray(x)
        with_active(outputs, self._runner(layout.names, x), x)
        traced = [p for p in layout.names if p not in outputs and p in (self._grouping(layout.names, x) or
                                                                        Grouping({}, {}, {}, {})).attentions]
        if traced:
            raise ValueError(f"layers {traced} are heads found in the trace: they are silenced with zeros"
                             " (masked_value='zero'), at their output projection's inputs")
        return {p: outputs[p] for p in layout.names}

    def player_kernels(self, layout, tree=None):
        grouped = self._groups.get(tuple(layout.names))
        if grouped is None and any(name.endswith((GROUP, HEADS)) for name in layout.names):
            raise ValueError("the kernels of coupled groups come from a traced pass: call layout(layers, x) on this"
                             " network first (the weight baselines take x= for it)")
        tree = self._param_dict(tree)
        return [kernel_of(tree, path, size, grouped, self._transposed(), self._kernel_axes())
                for path, size in layout.layers]

    def num_params(self) -> int:
        return count_params(self.params)

    def smaller(self, layout: PlayerLayout, mask, *, x=None, fills=None, atol: float = 1e-4, check: bool = True):
        """The smaller network, checked to reproduce the masked one on ``x`` (required: the constants folded
        into biases are read there). ``check=False`` skips the check; where it decides whether a module holding a
        stream's variable must be narrowed through its attributes, the smaller network's shapes decide (a trace)."""
        if x is None:
            raise ValueError("a smaller Flax model is built and checked on the evaluation inputs: pass x=")
        x = jnp.asarray(x)
        if any(layer.endswith((GROUP, HEADS)) for layer in layout.names):
            calls = self._leaf_calls(layout.names, x[:2], {}, None)
            cuts = shrink_groups.group_cuts(layout, mask, self._grouping(layout.names, x), self._variable,
                                            {c.path: c.kind for c in calls},
                                            {**self._kernel_axes(), **{c.path: (-1, 0) for c in calls if c.transposed}})
            if not check:  # shapes only: whether the holders must be narrowed is traced, nothing compiled or run
                small = self._sliced(cuts._replace(holders={}))
                return small if not cuts.holders or shrink_groups.traces(small, x) else self._sliced(cuts)
            masks = layout.split(as_mask(mask, layout.num_players))
            reference = np.asarray(self.predict(x, masks))  # jitted once per network, for every mask
            try:  # a module that holds a stream's variable is narrowed through its attributes only where it must be
                return shrink_groups.checked(self._sliced(cuts._replace(holders={})), reference, x, atol)[0]
            except ValueError:
                if not cuts.holders:
                    raise
            return shrink_groups.checked(self._sliced(cuts), reference, x, atol)[0]
        return shrink_chain.smaller_network(
            layout, mask, x, fills, forward=lambda m, f: self.predict(x, m, f),
            record=lambda m, f: self._leaf_calls(layout.names, x, m, f), rebuild=self._rebuilt, atol=atol,
            check=check)[0]


def intercepted_chain_fn(layout: PlayerLayout, x, reduce, *, calls, params_at, forward, grouping=None,
                         dtype: str = "float32", transposed=frozenset()):
    """The chain evaluator of a Linen or NNX model's game, or None where it does not apply.

    The consumer is the first Dense or Conv called after the first player layer (for a coupled group, the one
    module outside the group that reads it). Before it is offered, the evaluator must reproduce the masked
    pass on a few coalitions.

    Args:
        layout, x, reduce, dtype: as :meth:`gtap_jax.network.contract.Network.chain_fn`.
        calls: the leaf module calls of one pass, in order (:class:`gtap_jax.network.modules.shrink_chain.Call`).
        params_at: ``path -> {name: array}``, the parameters of the module at ``path`` (None if none).
        forward: ``(*consumers) -> ((x, masks, fills) -> logits)``, the masked model (it sets the coalition) with
            the modules at ``consumers`` open to the override.
        grouping: the coupled groups that the layout names (:class:`~gtap_jax.network.modules.masking.Grouping`).
        transposed: the Dense modules whose kernels are stored ``[out, in]``.
    """
    first, width = layout.layers[0]
    consumer = None if dtype != "float32" else _consumer(calls, first, grouping)
    if consumer is None:
        return None

    def parameters(path):
        node = params_at(path) or {}
        kernel = node.get("kernel")
        return np.asarray(kernel).T if path in transposed and kernel is not None else kernel, node.get("bias")

    kernel, bias = parameters(consumer)
    # the second player layer's consumer, where it is a Dense other than the first's (checked with the rest)
    path = _consumer(calls, layout.layers[1][0], grouping) if len(layout.layers) > 1 else None
    second = None if path in (None, consumer) else (path, *parameters(path))
    run = forward(consumer) if second is None else forward(consumer, path)
    return incremental.consumer_chain_fn(layout, x, reduce, consumer=consumer, run=run, kernel=kernel, bias=bias,
                                         check=True, second=second)


def _consumer(calls, first: str, grouping) -> str | None:
    """The path of the Dense or Conv (called once) that the layer ``first`` reaches first: the next one called
    after it (called once), or the one module outside a coupled group that reads the group (a traced attention's
    output projection)."""
    paths = [c.path for c in calls]
    if first.endswith((GROUP, HEADS)):
        if grouping is None or (first.endswith(HEADS) and first not in grouping.attentions):
            return None  # flax's own attention: its heads enter a DenseGeneral over (heads, head_dim)
        readers = [c for c in calls if grouping.consumers.get(c.path) == first and c.path not in grouping.members]
        if len(readers) != 1:
            return None
        found = readers[0]
    else:
        if paths.count(first) != 1:
            return None
        found = next((c for c in calls[paths.index(first) + 1:] if c.kind in ("dense", "conv")), None)
    ok = found is not None and found.kind in ("dense", "conv") and paths.count(found.path) == 1
    return found.path if ok else None


__all__ = ["ModuleNetwork", "intercepted_chain_fn"]
