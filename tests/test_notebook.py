"""The example notebooks run top to bottom on the embedded data."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name: str, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
def test_quickstart_runs(tmp_path, monkeypatch):
    text = _run("quickstart.ipynb", tmp_path, monkeypatch)
    assert "pruned test accuracy (no retraining):" in text
    accuracy = float(text.split("pruned test accuracy (no retraining):")[1].split()[0])
    assert 0.5 < accuracy <= 1.0  # 80 of 400 neurons, no retraining; chance is 0.1


@pytest.mark.slow
def test_your_model_prunes_a_linen_cnn_and_an_nnx_mlp(tmp_path, monkeypatch):
    text = _run("your_model.ipynb", tmp_path, monkeypatch)
    for model in ("CNN", "MLP"):
        assert 0.7 < float(text.split(f"{model} test accuracy")[1].split()[0]) <= 1.0
    lines = [line for line in text.splitlines() if "parameters" in line and "kept" in line]
    assert len(lines) == 4  # Banzhaf and weight magnitude, for each model
    for line in lines:  # the per-layer counts kept, a smaller network, better than chance (0.1)
        assert "{'BatchNorm_0': 4, 'BatchNorm_1': 8, 'Dense_0': 16}" in line or "{'linear1': 32, 'linear2': 16}" in line
        assert 0.1 < float(line.split("test accuracy")[1].split()[0]) <= 1.0
