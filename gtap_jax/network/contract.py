"""The model contract: what the game, the baselines, compaction and the experiment ask of a trained network.

It is split by what a caller needs: :class:`Network` (the game and the baselines: masked passes,
layer outputs, kernels, sizes, checkpoints), :class:`Shrinkable` (a physically smaller network,
masked weights) and :class:`Trainable` (gtap_jax's own training). An adapter implements what it
can and declares no member it cannot serve. The adapters are registered by model type in
:data:`gtap_jax.network.any_model.ADAPTERS`: the built-in staged models (:mod:`gtap_jax.network.staged`:
prefix caching, exact compaction of every layer, training), any Linen module with its variables
(:mod:`gtap_jax.network.linen`: masks by method interception) and any NNX module
(:mod:`gtap_jax.network.nnx`: masks by graph surgery on a clone). Nothing outside the adapters asks
which kind of model it holds.

A network's players are the features of named layers (:class:`~gtap_jax.layout.PlayerLayout`);
``masks`` below is ``{layer: bool[features]}`` and ``fills`` ``{layer: float[...]}`` (the
silenced features' outputs; None is 0).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout
from gtap_jax.shapes import InputShape, PyTree, example_batch, zeros

Masks = Mapping[str, Any]  # {layer: bool[features]}
Fills = Mapping[str, Any] | None  # {layer: float[features]} or None (0)


@runtime_checkable
class Network(Protocol):
    """A trained network, as the game and the baselines see it.

    Attributes:
        model: the model as the user gave it to :func:`~gtap_jax.network.adapt` (a smaller
            network's: its own model, or the user's module where the adapter narrows it at run time).
        variables: what was given with it (``adapt(net.model, net.variables)`` is this network again; a smaller
            Linen network's narrower producers run under its ``resized()``).
    """

    model: Any
    variables: Any

    def layout(self, layers: Sequence[str] | None, example) -> PlayerLayout:
        """The players of ``layers`` (None: every prunable layer, where the adapter knows them).

        ``example`` is a small batch of inputs (``[2, ...]``), for adapters that learn shapes by running.

        Raises:
            ValueError: for an empty, unknown or repeated layer, or one without a feature axis.
        """
        ...

    def masked_logits(self, layout: PlayerLayout, x, *, dtype: str = "float32",
                      cache_prefix: bool = True) -> Callable[[Masks, Fills], Any]:
        """``forward(masks, fills) -> logits[N, classes]`` on the fixed inputs ``x``, traceable.

        Computed in ``dtype``; what does not depend on the masks may be computed once here
        (prefix caching, where the adapter offers it).
        """
        ...

    def chain_fn(self, layout: PlayerLayout, x, reduce: Callable, *, dtype: str = "float32") -> Callable | None:
        """``chain(masks[K, P], fills, star=False) -> values[K]`` for coalitions each one player away from the
        one before (``star``: from the first), valued incrementally (:mod:`gtap_jax.network.modules.incremental`), with
        ``reduce(logits)`` the value, and ``chain.flips(base[P], players[U], fills) -> values[1 + U]`` for a star
        whose flipped players are known when compiling; or None where the adapter offers no such shortcut (every
        coalition is then evaluated whole)."""
        ...

    def layer_outputs(self, x, layout: PlayerLayout) -> dict[str, Any]:
        """Each player layer's unmasked output on ``x`` (its mean is the ``"mean"`` fill)."""
        ...

    def player_kernels(self, layout: PlayerLayout, tree: PyTree | None = None) -> list[np.ndarray]:
        """Each layer's incoming weights ``[..., features]`` (a Dense unit's column, a Conv channel's filter).

        ``tree`` is a tree shaped like :attr:`params` (e.g. its gradient) to read instead.

        Raises:
            ValueError: for a layer with no kernel whose last axis is its features.
        """
        ...

    @property
    def params(self) -> PyTree:
        """The trainable parameters."""
        ...

    def apply_params(self, params: PyTree, x) -> Any:
        """The logits on ``x`` with ``params`` in place of :attr:`params` (pure: to differentiate)."""
        ...

    def predict(self, x, masks: Masks | None = None, fills: Fills = None) -> Any:
        """Logits on a batch ``x``, optionally with players silenced (jitted, compiled once per shape)."""
        ...

    def num_params(self) -> int:
        """Trainable scalars."""
        ...

    def flops(self, input_shape: InputShape) -> float:
        """FLOPs of one example's forward pass, by XLA's cost analysis (NaN where the backend gives none)."""
        ...

    def save(self, directory: str | os.PathLike) -> None:
        """Writes the weights as an orbax checkpoint."""
        ...

    def restored(self, directory: str | os.PathLike) -> Network:
        """The weights saved by :meth:`save` in ``directory``, in this architecture."""
        ...

    def train_masked(self, layout: PlayerLayout, mask, train_fn: Callable) -> Network:
        """This network trained by ``train_fn`` with the players outside ``mask`` silenced (the lottery ticket's
        hook). Each adapter documents the ``train_fn`` it calls."""
        ...


@runtime_checkable
class Shrinkable(Network, Protocol):
    """A network that can be made physically smaller (:func:`gtap_jax.network.compact`)."""

    def smaller(self, layout: PlayerLayout, mask, *, x=None, fills: Fills = None, atol: float = 1e-4,
                check: bool = True) -> Network:
        """The physically smaller network without the players outside ``mask`` (``bool[P]``).

        Its outputs equal the masked network's; ``fills`` are folded into the next layers' biases.
        ``x`` is the evaluation inputs, for adapters that check the result or read constants on them
        (``atol``: the check's tolerance, relative to the output scale). ``check=False`` skips running the
        result against the masked network on ``x`` (one compilation per new shape), for callers that only count
        its parameters or FLOPs.

        Raises:
            ValueError: when the adapter cannot remove them (the masked network is then the pruned one).
        """
        ...

    def masked_weights(self, layout: PlayerLayout, mask, fills: Fills = None) -> Network:
        """The same architecture with the players outside ``mask`` silenced in their weights (jaxpruner-style).

        Raises:
            ValueError: for a layer without a kernel or scale on its features.
        """
        ...


@runtime_checkable
class Trainable(Network, Protocol):
    """A network that gtap_jax trains (the built-in models): from scratch, fine-tuned, or under masks (the lottery
    ticket)."""

    def initialized(self, key, input_shape: InputShape) -> Network:
        """The same architecture with fresh random weights."""
        ...

    def fit(self, key, x, y, *, epochs: int, batch_size: int = 128, learning_rate: float = 1e-3, masks=None,
            checkpoint_dir=None, progress: bool = False) -> Network:
        """Trained with Adam on softmax cross-entropy from these weights."""
        ...


class Adapter(NamedTuple):
    """An entry of :data:`~gtap_jax.network.any_model.ADAPTERS`: the models it takes and how it makes their network.

    Attributes:
        model_type: the class of the models it takes (the most specific registered class of a model wins).
        network: ``(model, variables, apply_kwargs) -> Network``.
        variables_like: ``(model, example, apply_kwargs) -> variables`` shaped like trained ones, for
            :func:`~gtap_jax.network.restore` where the model needs them (None: ``network(model, None, ...)``
            restores itself).
    """

    model_type: type
    network: Callable[[Any, Any, Mapping | None], Network]
    variables_like: Callable[[Any, Any, Mapping | None], Any] | None = None


class SizeReport(NamedTuple):
    """Size and cost of a network before and after pruning (latencies: milliseconds per batch of ``LATENCY_BATCH``,
    NaN where not measured)."""

    params_before: int
    params_after: float
    flops_before: float
    flops_after: float
    neurons_before: int
    neurons_after: int
    latency_before: float = float("nan")
    latency_after: float = float("nan")

    def to_dict(self) -> dict:
        return dict(self._asdict())


LATENCY_BATCH = 256
_LATENCY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> its measured latency


def latency_ms(net: Network, input_shape: InputShape, repeats: int = 20) -> float:
    """The median wall time of ``net.predict`` (jitted) on a batch of ``LATENCY_BATCH`` examples, in milliseconds,
    after one call that compiles it; measured once per network."""
    if net in _LATENCY:
        return _LATENCY[net]
    x = zeros(example_batch(input_shape, LATENCY_BATCH))
    jax.block_until_ready(net.predict(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(net.predict(x))
        times.append(time.perf_counter() - start)
    _LATENCY[net] = 1000.0 * float(np.median(times))
    return _LATENCY[net]


def size_report(full: Network, small: Network | None, layout: PlayerLayout, mask,
                input_shape: InputShape | None, latency: bool = False) -> SizeReport:
    """Parameters, FLOPs (NaN without ``input_shape``) and players of ``full`` and of ``small`` (None: NaN); with
    ``latency``, their measured latencies too (:func:`latency_ms`)."""
    nan = float("nan")
    flops = (lambda net: net.flops(input_shape)) if input_shape is not None else (lambda net: nan)
    timed = (lambda net: latency_ms(net, input_shape)) if latency and input_shape is not None else (lambda net: nan)
    return SizeReport(
        params_before=full.num_params(),
        params_after=nan if small is None else small.num_params(),
        flops_before=flops(full),
        flops_after=nan if small is None else flops(small),
        neurons_before=layout.num_players,
        neurons_after=int(np.sum(mask)),
        latency_before=timed(full),
        latency_after=nan if small is None else timed(small),
    )


def count_params(tree: PyTree) -> int:
    """Number of scalars in a tree of arrays."""
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def xla_flops(fn: Callable, input_shape: InputShape) -> float:
    """XLA's FLOP count of ``fn`` on one example of ``input_shape`` (NaN where the backend gives none)."""
    try:
        cost = jax.jit(fn).lower(example_batch(input_shape)).compile().cost_analysis()
    except Exception:  # a backend without cost analysis
        return float("nan")
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan")))


def cast_floats(tree, dtype: str):
    """``tree`` with its floating-point leaves in ``dtype``."""
    compute = jnp.dtype(dtype)
    return jax.tree.map(lambda a: a.astype(compute) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


__all__ = [
    "Adapter", "Fills", "Masks", "Network", "Shrinkable", "SizeReport", "Trainable", "cast_floats", "count_params",
    "size_report", "xla_flops",
]
