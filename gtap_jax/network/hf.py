"""Hugging Face Flax models as networks of the model contract: inputs -> one array of logits.

A Hugging Face Flax model (``transformers``' ``Flax*`` classes, transformers < 5) is a Linen module
(``model.module``) with its parameters (``model.params``), called with keyword arguments (attention
masks, token types, positions) and returning an output object. :func:`network` wraps the module in
:class:`HuggingFace`, a Linen module that shares its scope, so the parameters and module paths are the
model's own (``"bert/encoder/layer/0/attention/self"``), and that maps the inputs to logits:

- ``task="classify"`` (sequence or image classification): the model's logits ``[batch, classes]``;
- ``task="last_token"`` (a causal language model): the logits of each sequence's last token
  (the last one that is not ``pad_id``), ``[batch, vocabulary]``, labelled with the next token;
- ``task="next_tokens"``: the logits of every position but the last, ``[batch, length - 1, vocabulary]``,
  labelled with ``ids[:, 1:]`` (the per-token loss; padding positions count unless the labels leave them out).

Token ids ``[batch, length]`` get an attention mask (``ids != pad_id``, or all ones without ``pad_id``),
token types 0 and positions ``0..length-1``; images go in as ``[batch, height, width, channels]``, the
layout the Flax modules take. This module imports nothing of ``transformers``: any module whose ``__call__``
takes ``input_ids`` or ``pixel_values`` and returns an object with ``logits`` works.
"""

from __future__ import annotations

import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp

from gtap_jax.network.linen import LinenNetwork

TASKS = ("classify", "last_token", "next_tokens")


class HuggingFace(nn.Module):
    """A Hugging Face Flax module (``inner``, sharing this module's scope) as ``inputs -> logits``."""

    inner: nn.Module
    task: str = "classify"
    pad_id: int | None = None

    def setup(self):
        nn.share_scope(self, self.inner)

    def __call__(self, x, deterministic: bool = True):
        accepts = inspect.signature(type(self.inner).__call__).parameters
        if "input_ids" in accepts:
            kwargs = {"input_ids": x, **_text_inputs(x, self.pad_id, accepts)}
        elif "pixel_values" in accepts:
            kwargs = {"pixel_values": x}
        else:
            raise ValueError(f"{type(self.inner).__name__} takes neither input_ids nor pixel_values")
        kwargs.update({k: v for k, v in (("deterministic", deterministic), ("return_dict", True)) if k in accepts})
        with jax.numpy_rank_promotion("allow"):  # the library's own code promotes ranks (FlaxConv1D's bias)
            logits = self.inner(**kwargs).logits
        if self.task == "last_token":
            last = (x.shape[1] - 1 if self.pad_id is None
                    else jnp.maximum((x != self.pad_id).sum(axis=1) - 1, 0))
            return jnp.take_along_axis(logits, jnp.broadcast_to(jnp.reshape(last, (-1, 1, 1)),
                                                                (len(x), 1, logits.shape[-1])), axis=1)[:, 0]
        return logits[:, :-1] if self.task == "next_tokens" else logits


def _text_inputs(ids, pad_id, accepts) -> dict:
    batch, length = ids.shape[:2]
    inputs = {
        "attention_mask": jnp.ones_like(ids) if pad_id is None else (ids != pad_id).astype(ids.dtype),
        "token_type_ids": jnp.zeros_like(ids),
        "position_ids": jnp.broadcast_to(jnp.arange(length), (batch, length)),
        "head_mask": None,
    }
    return {k: v for k, v in inputs.items() if k in accepts}


def network(model, task: str = "classify", *, pad_id: int | None = None) -> LinenNetwork:
    """A Hugging Face Flax model (a ``FlaxPreTrainedModel``: its ``module`` and ``params``) as a Linen network.

    Args:
        model: the Hugging Face model.
        task: ``"classify"``, ``"last_token"`` or ``"next_tokens"`` (module docstring).
        pad_id: the padding token of token-id inputs (the attention mask leaves it out), or None.

    Raises:
        ValueError: for an unknown task, or a model without ``module`` and ``params``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if not hasattr(model, "module") or not hasattr(model, "params"):
        raise ValueError(f"{type(model).__name__} is not a Hugging Face Flax model (it has no module and params);"
                         " a Flax module of your own goes to network_game as it is")
    return LinenNetwork(HuggingFace(model.module, task, pad_id), {"params": model.params})


__all__ = ["TASKS", "HuggingFace", "network"]
