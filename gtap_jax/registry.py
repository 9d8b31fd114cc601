"""Names: a registry per kind of component, and the keywords that were renamed.

A registry is a plain dict whose failed look-up names the kind and lists what
is registered (as jaxpruner's ``ALGORITHM_REGISTRY``). Adding a component is
one function plus one line: ``STRATEGIES["mine"] = my_strategy``.
"""

from __future__ import annotations

import functools
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


def renamed(**replacements: str):
    """A decorator: calling the function with an old keyword raises a ``TypeError`` naming its replacement.

    ``@renamed(method="estimator=")`` turns ``f(method="msr")`` into ``TypeError: f() takes
    estimator= instead of method=`` rather than Python's bare "unexpected keyword argument".
    """

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            for old, new in replacements.items():
                if old in kwargs:
                    raise TypeError(f"{fn.__name__}() takes {new} instead of {old}=")
            return fn(*args, **kwargs)

        return call

    return wrap


__all__ = ["Registry", "UnknownNameError", "renamed"]
