"""Interceptors and weight surgery for the Linen adapter (:mod:`gtap_jax.network.linen`): masking at named modules
(and at a coupled group's consumers' inputs), narrower producers for a smaller network, the kind of a module, and
masked weights or a masked apply for training.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gtap_jax.layout import PlayerLayout, as_mask
from gtap_jax.network.modules import shrink_chain as chain
from gtap_jax.network.modules.masking import (
    HEADS,
    NORMS,
    called,
    grouped_norm,
    mask_input,
    mask_output,
    node_at,
    with_active,
)
from gtap_jax.network.modules.shrink_groups import fewer_heads, narrower
from gtap_jax.network.modules.weights import silenced_params

TRACED = "gtap_traced_heads"  # widths[owner] = {TRACED: (Attention, heads kept)}
NARROWED = "gtap_narrowed"  # widths[holder] = {NARROWED: (features before, kept)} (shrink_groups.holders)


def path_of(module) -> str:
    return "/".join(str(p) for p in module.path)


def heads_of(module_path: str, module) -> str | None:
    """``"attn:heads"`` when ``module`` is the output projection ``out`` of an attention module at ``attn``."""
    if module_path.rsplit("/", 1)[-1] != "out" or not isinstance(module.parent, nn.MultiHeadDotProductAttention):
        return None
    return module_path.rsplit("/", 1)[0] + HEADS if "/" in module_path else HEADS


def masking(next_fun, args, kwargs, context):
    if context.method_name != "__call__" or not context.module.path:
        return next_fun(*args, **kwargs)
    path = path_of(context.module)
    heads = heads_of(path, context.module)
    if heads is not None and args:  # the heads enter the output projection as [..., heads, head_dim]
        args = (mask_output(heads, args[0], axis=-2), *args[1:])
    if args:
        args = (mask_input(path, args[0]), *args[1:])
    out = grouped_norm_of(context.module, path, args)
    return mask_output(path, called(path, next_fun, *args, **kwargs) if out is None else out)


def grouped_norm_of(module, path: str, args):
    """A LayerNorm or RMSNorm over the kept features of its coupled group (:func:`masking.grouped_norm`), or None;
    flax's own, or a module of another class that computes one (:data:`masking.NORMS`)."""
    if not args:
        return None
    params = module.variables.get("params", {})
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        center = isinstance(module, nn.LayerNorm)
        return grouped_norm(path, args[0], params.get("scale"), params.get("bias") if center else None,
                            module.epsilon, center)
    spec = (NORMS.get() or {}).get(path)
    if spec is None:
        return None
    bias = None if spec.bias is None else params[spec.bias]
    return grouped_norm(path, args[0], spec.offset + params[spec.scale], bias, spec.epsilon, spec.center)


def resizing(widths: Mapping[str, int]):
    def interceptor(next_fun, args, kwargs, context):
        path = path_of(context.module)
        if path not in widths or context.method_name not in ("__call__", "setup"):
            return next_fun(*args, **kwargs)
        size = widths[path]  # a producer's features, or an attention's {"num_heads": ..., "qkv_features": ...}
        size = size if isinstance(size, dict) else {"features": size}
        if TRACED in size or NARROWED in size:  # widths in the module's attributes or config: set once, before its
            module = context.module               # setup makes submodules (or, compact, before its call)
            if not getattr(module, "_gtap_resized", False):
                changes = fewer_heads(module, *size[TRACED]) if TRACED in size else narrower(module, *size[NARROWED])
                for name, value in {**changes, "_gtap_resized": True}.items():
                    object.__setattr__(module, name, value)
            return next_fun(*args, **kwargs)
        if context.method_name == "setup":  # parameters made in setup (nn.Embed): this pass's instance, narrowed
            for name, value in size.items():
                object.__setattr__(context.module, name, value)
            return next_fun(*args, **kwargs)
        small = context.module.clone(parent=None, **size)
        return small.apply(dict(context.module.variables), *args, **kwargs)

    return interceptor


def kind(module) -> str:
    return chain.kind_of(module, nn.Dense, nn.Conv, nn.BatchNorm)


def masked_variables(variables: Mapping, layout: PlayerLayout, mask, fills: Mapping | None = None,
                     transposed=frozenset()) -> dict:
    """``variables`` with the players outside ``mask`` silenced in their modules' parameters (jaxpruner-style).

    Under them the *unchanged* model computes what the masked game computed: a module
    with a ``kernel`` on its features (Dense, Conv) gets the dropped features' kernel
    slices 0 and their bias the fill; one with a ``scale`` (BatchNorm, LayerNorm) gets
    their scale 0 and bias the fill. ``fills`` (``{layer: float[features]}``) are the
    mean-fill values; None for zero. ``transposed``: the modules whose kernels are stored ``[out, in]``.

    Raises:
        ValueError: for a named module without a kernel or scale on its features, or a mask that is not boolean.
    """
    out = flax.core.unfreeze(variables)
    for path, keep in layout.split(as_mask(mask, layout.num_players)).items():
        *parents, last = path.split("/")
        node = node_at(out["params"], "/".join(parents))
        if node is None or last not in node:
            raise ValueError(f"cannot silence layer {path!r} through its parameters: it has none (evaluate the"
                             " masked game, or name the Dense / Conv / norm layer before it)")
        node[last] = silenced_params(node[last], np.asarray(keep), None if fills is None else fills[path], path,
                                     path in transposed)
    return out


def masked_apply(model: nn.Module, layout: PlayerLayout, mask):
    """``apply(variables, *args, **kwargs)``: ``model.apply`` with the players outside ``mask`` zeroed at their
    modules' outputs (a new function per mask, so a ``jax.jit`` of it is traced per mask)."""
    masks = {p: jnp.asarray(k) for p, k in layout.split(as_mask(mask, layout.num_players)).items()}

    def apply(variables, *args, **kwargs):
        with nn.intercept_methods(masking):
            return with_active((masks, None), model.apply, variables, *args, **kwargs)

    return apply


__all__ = ["NARROWED", "TRACED", "grouped_norm_of", "heads_of", "kind", "masked_apply", "masked_variables", "masking",
           "path_of", "resizing"]
