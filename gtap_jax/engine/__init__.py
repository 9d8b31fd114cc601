"""The engine: coalition values in batched, jitted chunks sharded over a mesh.

``plan`` decides the mesh and the chunk size once (``make_plan``), ``memory`` bounds the
chunk by what fits, ``evaluate`` runs the chunks (``evaluate_coalitions``), and
``distributed`` joins several hosts into one mesh.
"""

from gtap_jax.engine.evaluate import (
    ChainGame,
    ChainValueFn,
    batched_chain_fn,
    batched_flip_fn,
    batched_value_fn,
    check_finite,
    check_players,
    evaluate_coalitions,
    evaluate_flips,
    evaluate_stars,
    local_copy,
    non_finite_error,
    place,
)
from gtap_jax.engine.memory import DEFAULT_CHUNK_SIZE, MEMORY_FRACTION, coalition_footprint, max_chunk_size
from gtap_jax.engine.plan import COALITION_AXIS, SMALL_CALL, Plan, coalition_mesh, default_mesh, make_plan

__all__ = [
    "COALITION_AXIS",
    "ChainGame",
    "ChainValueFn",
    "DEFAULT_CHUNK_SIZE",
    "MEMORY_FRACTION",
    "SMALL_CALL",
    "Plan",
    "batched_chain_fn",
    "batched_flip_fn",
    "batched_value_fn",
    "check_finite",
    "check_players",
    "coalition_footprint",
    "coalition_mesh",
    "default_mesh",
    "evaluate_coalitions",
    "evaluate_flips",
    "evaluate_stars",
    "local_copy",
    "make_plan",
    "max_chunk_size",
    "non_finite_error",
    "place",
]
