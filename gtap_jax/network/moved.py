"""Import paths of the network side before its folders: they keep working one release, with a warning naming the
new place.

Old modules (``gtap_jax.network.chains`` and the like) are served by a finder on ``sys.meta_path`` as
stand-ins that forward every name to the modules that now hold it; old names of ``gtap_jax.network`` are
served by its ``__getattr__``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module (under gtap_jax.network) -> the modules that hold its names now
MODULES = {
    "adapter": ("contract",),
    "adapt": ("any_model", "shrink"),
    "chain": ("modules.shrink_chain",),
    "chains": ("modules.incremental",),
    "coupling": ("modules.coupling",),
    "grouped": ("modules.shrink_groups",),
    "masking": ("modules.masking",),
    "slicing": ("staged.slicing",),
    "linen_graph": ("linen.interceptors",),
    "nnx_graph": ("nnx.surgery",),
}
RENAMED = {"ChainPlan": "ChainCuts", "checked_smaller": "smaller_network", "plan_chain": "chain_cuts",
           "Plan": "GroupCuts", "plan": "group_cuts"}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path goes in the next release", DeprecationWarning, stacklevel=3)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        head, _, tail = fullname.rpartition(".")
        if head == self.package and tail in MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        new = [f"{self.package}.{name}" for name in MODULES[module.__name__.rpartition(".")[2]]]
        _warn(module.__name__, " and ".join(new))
        targets = [importlib.import_module(name) for name in new]

        def __getattr__(name):
            for target in targets:
                if hasattr(target, RENAMED.get(name, name)):
                    return getattr(target, RENAMED.get(name, name))
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = __getattr__
        module.__all__ = sorted({n for t in targets for n in getattr(t, "__all__", ())})


def install(package: str) -> None:
    """Serves ``package``'s old module paths (once)."""
    if not any(isinstance(f, _Finder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_Finder(package))


def moved_name(package: str, name: str, names: dict[str, str]):
    """An old name of ``package`` from the module that now holds it, with a warning; AttributeError for others."""
    if name not in names:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{names[name]}.{name}")
    return getattr(importlib.import_module(names[name]), name)


__all__ = ["MODULES", "install", "moved_name"]
