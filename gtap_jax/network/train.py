"""optax training of the built-in staged models, deterministic given a seed, checkpointed with orbax."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

from gtap_jax.shapes import InputShape, PyTree, example_batch, zeros

log = logging.getLogger(__name__)


class TrainResult(NamedTuple):
    params: PyTree
    history: list[dict]  # per epoch: epoch, train_loss, val_accuracy
    state: PyTree = None  # the other collections training updated (BatchNorm's statistics), or None


def init_params(key, model, input_shape: InputShape) -> PyTree:
    """Random initial parameters for inputs of shape ``input_shape`` (one example)."""
    return _jitted(_INIT, model, lambda: lambda k, x: model.init(k, x)["params"])(
        key, zeros(example_batch(input_shape)))


# One jitted function per model (and learning rate), shared by every call: retraining many
# networks of one shape compiles once, and an initialisation compiles as one program, not op by op.
_INIT: dict = {}
_OPT_INIT: dict = {}
_PREDICT: dict = {}
_STEP: dict = {}
_ACCURACY_BATCH = 1000


def _jitted(cache: dict, key, make):
    if key not in cache:
        cache[key] = jax.jit(make())
    return cache[key]


def predict(model, params, x, masks=None, fills=None):
    """Logits of a staged model on ``x``, with ``masks`` and ``fills`` at its sites (one jitted function per model)."""
    fn = _jitted(_PREDICT, model, lambda: lambda p, x, m, f: model.apply({"params": p}, x, masks=m, fills=f))
    return fn(params, x, masks, fills)


def batched_accuracy(predict_fn, x, y, batch_size: int = _ACCURACY_BATCH) -> float:
    """Accuracy of ``predict_fn(x_batch) -> logits`` on ``(x, y)``, in batches."""
    correct = 0
    for s in range(0, len(y), batch_size):
        logits = predict_fn(jnp.asarray(x[s : s + batch_size]))
        correct += int(jnp.sum(jnp.argmax(logits, -1) == jnp.asarray(y[s : s + batch_size])))
    return correct / max(len(y), 1)


def _adam_step(model, learning_rate: float, stateful: bool):
    """One Adam step: a staged model with ``masks``, or (``stateful``) a module called with ``train=True`` whose
    other collections (``state``) the call updates."""

    def step(params, opt_state, state, xb, yb, masks):
        def loss_fn(p):
            if stateful and state:
                logits, new = model.apply({"params": p, **state}, xb, train=True, mutable=list(state))
            elif stateful:
                logits, new = model.apply({"params": p}, xb, train=True), state
            else:
                logits, new = model.apply({"params": p}, xb, masks=masks), state
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb)), new

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optax.adam(learning_rate).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, state, loss

    return step


def _checkpoint_manager(directory):
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _resumed(manager, params, opt_state, state):
    """``(params, opt_state, state, first epoch)`` from the latest checkpoint of ``manager``, if any."""
    if manager is None or manager.latest_step() is None:
        return params, opt_state, state, 0
    step = manager.latest_step()
    target = {"params": params, "opt_state": opt_state, **({"state": state} if state else {})}
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    log.info("resumed training from %s at epoch %d", manager.directory, step)
    return restored["params"], restored["opt_state"], restored.get("state", state), step


def train(
    key,
    model,
    x_train,
    y_train,
    *,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    x_val=None,
    y_val=None,
    params: PyTree | None = None,
    masks: Mapping | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    state: PyTree | None = None,
) -> TrainResult:
    """Trains ``model`` with Adam on softmax cross-entropy.

    Deterministic given ``key``: initialisation uses ``fold_in(key, 0)`` and the
    shuffle of epoch e ``fold_in(key, e + 1)``.

    Args:
        key: a ``jax.random.key``.
        model: a staged model (:class:`gtap_jax.network.staged.StagedModel`); ``x_train`` one example per row.
        epochs, batch_size, learning_rate: the usual (the last partial batch is dropped).
        x_val, y_val: if given, validation accuracy is logged every epoch.
        params: start from these instead of a fresh initialisation.
        masks: train with these neurons silenced (lottery-ticket retraining).
        checkpoint_dir: save params and optimizer state every epoch with orbax,
            and resume from the latest epoch found there.
        progress: show a progress bar per epoch.
        state: for a module called as ``model.apply(variables, x, train=True)`` (a built-in Linen model, with
            ``params``): its other collections (``{}``, or BatchNorm's ``batch_stats``, updated as it trains);
            None for a staged model.

    Returns:
        :class:`TrainResult` (final params, per-epoch history).

    Raises:
        ValueError: if there are fewer examples than one batch.
    """
    n = len(y_train)
    batch_size = min(batch_size, n)
    if n == 0:
        raise ValueError("no training examples")
    steps = n // batch_size
    if params is None:  # one example of x_train, its dtype too (token ids are integers)
        params = init_params(jax.random.fold_in(key, 0), model, jax.ShapeDtypeStruct(x_train.shape[1:], x_train.dtype))
    opt_state = _jitted(_OPT_INIT, learning_rate, lambda: optax.adam(learning_rate).init)(params)
    history = []

    stateful = state is not None
    manager = _checkpoint_manager(checkpoint_dir) if checkpoint_dir is not None else None
    params, opt_state, state, first_epoch = _resumed(manager, params, opt_state, state)

    step_fn = _jitted(_STEP, (model, learning_rate, stateful), lambda: _adam_step(model, learning_rate, stateful))
    x_dev, y_dev = jnp.asarray(x_train), jnp.asarray(y_train)
    for epoch in range(first_epoch, epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch + 1), n))
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for s in bar:
            idx = order[s * batch_size : (s + 1) * batch_size]
            params, opt_state, state, loss = step_fn(params, opt_state, state, x_dev[idx], y_dev[idx], masks)
            losses.append(loss)
        record = {"epoch": epoch + 1, "train_loss": float(jnp.mean(jnp.stack(losses)))}
        if x_val is not None and not stateful:
            record["val_accuracy"] = batched_accuracy(functools.partial(predict, model, params, masks=masks),
                                                      x_val, y_val)
        history.append(record)
        log.debug("epoch %s", record)
        if manager is not None:
            saved = {"params": params, "opt_state": opt_state, **({"state": state} if state else {})}
            manager.save(epoch + 1, args=ocp.args.StandardSave(saved))
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    return TrainResult(params, history, state)


def save_params(directory: str | os.PathLike, params: PyTree) -> None:
    """Saves a parameter tree with orbax (overwrites)."""
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(os.path.abspath(directory), params, force=True)


def load_params(directory: str | os.PathLike, like: PyTree | None = None) -> PyTree:
    """Restores a parameter tree saved by :func:`save_params` (``like`` gives its structure)."""
    with ocp.StandardCheckpointer() as ckpt:
        return ckpt.restore(os.path.abspath(directory), like)


__all__ = ["TrainResult", "batched_accuracy", "init_params", "load_params", "predict", "save_params", "train"]
