"""Named registries, one per kind of component (indices, estimators, strategies, baselines).

A registry is a plain dict whose failed look-up names the kind and lists what
is registered (as jaxpruner's ``ALGORITHM_REGISTRY``). Adding a component is
one function plus one line: ``STRATEGIES["mine"] = my_strategy``.
"""

from __future__ import annotations

from typing import Any


class UnknownNameError(ValueError):
    """A name that no entry of a registry has; the message lists the registered names."""


class Registry(dict):
    """A ``{name: entry}`` dict for one kind of component.

    ``registry[name]`` for an unknown name raises :class:`UnknownNameError`
    listing the registered names; ``in``, ``get`` and iteration are a dict's.
    """

    def __init__(self, kind: str, entries: dict[str, Any] | None = None):
        super().__init__(entries or {})
        self.kind = kind

    def __missing__(self, name):
        raise UnknownNameError(f"unknown {self.kind} {name!r}; expected one of {sorted(self)}")

    def check(self, name: str) -> str:
        """``name`` if registered, else :class:`UnknownNameError`."""
        self[name]
        return name


__all__ = ["Registry", "UnknownNameError"]
