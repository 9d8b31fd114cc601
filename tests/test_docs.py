"""The code in README.md and docs/guide.md: every Python block runs, every command names what exists (and the
Hugging Face section of docs/your_model.md runs).

Python blocks run top to bottom in one namespace per file, as a reader would run them. Shell
blocks hold commands: the test command must be what `.ci/run` runs, the smoke command the one the
end-to-end test runs (tests/test_experiment.py), and every pruning command must name a config
and fields that exist and pass validation. (The default run itself takes 10 minutes; its table
is what its command printed.)
"""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from gtap_jax import experiment

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/guide.md"]


def _blocks(path: Path) -> list[tuple[str, str]]:
    """``[(language, code)]`` of the fenced blocks of a markdown file."""
    return _blocks_of(path.read_text())


def _blocks_of(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = [code for lang, code in _blocks(ROOT / doc) if lang == "python"]
    assert blocks
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{doc}, python block {i + 1}", "exec"), namespace)  # noqa: S102


def test_the_hugging_face_section_runs(tmp_path, monkeypatch):
    """docs/your_model.md's Hugging Face section, top to bottom (transformers < 5, the test extra)."""
    pytest.importorskip("transformers", reason="Hugging Face transformers < 5 (the test extra) is absent")
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs/your_model.md").read_text()
    section = text[text.index("## Hugging Face models"):]
    section = section[: section.index("\n## ", 1)]
    blocks = [code for lang, code in _blocks_of(section) if lang == "python"]
    assert blocks
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/your_model.md, Hugging Face block {i + 1}", "exec"), namespace)  # noqa: S102
    assert namespace["small"].max_error < 1e-4
    assert namespace["small"].report.params_after < namespace["small"].report.params_before


def _commands(doc: str) -> list[list[str]]:
    out = []
    for lang, code in _blocks(ROOT / doc):
        if lang == "sh":
            for line in code.replace("\\\n", " ").splitlines():
                out += [shlex.split(part) for part in line.split("&&") if part.strip()]
    return out


def _config(args: list[str]):
    """The config a ``python -m gtap_jax.prune`` command line builds (file, variant, overrides)."""
    spec = next(a.split("=", 1)[1] if "=" in a else args[i + 1] for i, a in enumerate(args)
                if a.startswith("--config") and not a.startswith("--config."))
    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("doc_config", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant or None)
    for arg in args:
        if arg.startswith("--config."):
            field, value = arg[len("--config."):].split("=", 1)
            assert field.split(".")[0] in config, field
    return config


def test_every_command_names_what_exists():
    commands = [c for doc in DOCS for c in _commands(doc)]
    prunes = [c for c in commands if c[:3] == ["python", "-m", "gtap_jax.prune"]]
    assert prunes and all("--workdir" in c for c in prunes)
    for command in prunes:
        experiment.validate(_config(command))
    ci = (ROOT / ".ci" / "run").read_text()
    tests = [c for c in commands if c[:3] == ["python", "-m", "pytest"]]
    assert tests and all(" ".join(c) in ci for c in tests)
    installs = {" ".join(c) for c in commands if c[:2] == ["pip", "install"]}
    assert installs <= {"pip install -e .", 'pip install -e .[test]'}, installs
    smoke = [c for c in prunes if c[c.index("--config") + 1].endswith(":smoke")]
    end_to_end = (ROOT / "tests" / "test_experiment.py").read_text()
    assert smoke and all(c[c.index("--config") + 1].split("/")[-1] in end_to_end for c in smoke)
