"""The package's structure, read from its source: layers, no import cycle, one place per decision, sizes.

docs/architecture.md draws the layers; these checks keep the code to it.
"""

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gtap_jax"

# Low to high: a module imports from its own layer or below, never above.
LAYERS = [
    {"shapes", "registry", "layout"},
    {"engine"},
    {"games", "uncertainty"},
    {"indices"},
    {"strategies"},
    {"data", "network"},
    {"models", "baselines"},
    {"experiment"},
    {"prune", "configs"},
]
# the only folders whose files ask a model's kind: one folder per framework adapter
ADAPTER_FOLDERS = ("network/linen/", "network/nnx/", "network/staged/")
CONFIG_READERS = {"experiment/setup.py", "experiment/validation.py"}  # the only readers of model.factory


def _modules() -> dict[str, Path]:
    """``{"gtap_jax.network.linen": path}`` for every module (a package is its ``__init__``)."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("gtap_jax", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The project modules ``name`` imports at module level or anywhere in its code (statically)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    out.add(target)
                elif base in MODULES:
                    out.add(base)
    return out - {name}


def _layer(name: str) -> int | None:
    unit = name.split(".")[1] if "." in name else None
    return next((i for i, units in enumerate(LAYERS) if unit in units), None)


def test_no_import_cycle():
    graph = {name: _imports(name) for name in MODULES}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_imports_point_down():
    up = []
    for name in MODULES:
        mine = _layer(name)
        if mine is None:  # the package facade, gtap_jax/__init__.py: its network side loads lazily
            continue
        up += [f"{name} -> {target}" for target in _imports(name) if (_layer(target) or 0) > mine]
    assert not up, up
    assert all(_layer(name) is not None for name in MODULES if name != "gtap_jax"), "a unit outside LAYERS"


def test_sizes():
    top = [p.name for p in ROOT.glob("*.py")]
    assert len(top) <= 8, top
    long_modules, long_functions = [], []
    for path in ROOT.rglob("*.py"):
        source = path.read_text()
        if source.count("\n") > 350:
            long_modules.append(path.name)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{path.name}:{node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)
    assert not list(ROOT.rglob("flax_*.py")), "a paired flax_ file"
    crowded = {folder.relative_to(ROOT).as_posix(): n for folder in ROOT.rglob("*") if folder.is_dir()
               and folder.name not in ("configs", "__pycache__")
               and (n := len([p for p in folder.glob("*.py") if p.name != "__init__.py"])) > 8}
    assert not crowded, crowded


def test_no_two_module_names_a_reader_can_confuse():
    """Within the package no two module names differ by one letter or only by a plural (chain / chains)."""
    names = sorted({p.stem for p in ROOT.rglob("*.py") if p.stem != "__init__"})
    confusable = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                  if _one_edit_apart(a, b) and not {a, b} <= {"base", "bases"}]
    assert not confusable, confusable


def _one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def test_what_any_flax_module_shares_imports_no_framework():
    """``network/modules/`` serves the Linen and the NNX adapter alike: it imports neither ``flax.linen`` nor
    ``flax.nnx``, nor an adapter's folder."""
    found = []
    for path in (ROOT / "network" / "modules").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names
                      if n.startswith(("flax.linen", "flax.nnx", "gtap_jax.network.linen", "gtap_jax.network.nnx",
                                       "gtap_jax.network.staged"))]
    assert not found, found


def _flax_isinstance(tree) -> bool:
    """Whether the code calls isinstance with a Linen or NNX type (``nn.X``, ``nnx.X``, ``flax...``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            if any(isinstance(n, ast.Name) and n.id in ("nn", "nnx", "flax") for n in ast.walk(node.args[1])):
                return True
    return False


def _reads_model_factory(tree) -> bool:
    """Whether the code reads ``<something>.model.factory`` (a config's field)."""
    return any(isinstance(n, ast.Attribute) and n.attr == "factory" and isinstance(n.ctx, ast.Load)
               and isinstance(n.value, ast.Attribute) and n.value.attr == "model" for n in ast.walk(tree))


def test_one_place_per_decision():
    """Linen / NNX types are asked only in the adapters' folders; ``model.factory`` is read only by config loading."""
    flax_checks, factory_reads = [], []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        if not rel.startswith(ADAPTER_FOLDERS) and _flax_isinstance(tree):
            flax_checks.append(rel)
        if rel not in CONFIG_READERS and _reads_model_factory(tree):
            factory_reads.append(rel)
    assert not flax_checks and not factory_reads, (flax_checks, factory_reads)
