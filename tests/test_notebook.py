"""examples/quickstart.ipynb runs top to bottom on the embedded data."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "pruned test accuracy (no retraining):" in text
    accuracy = float(text.split("pruned test accuracy (no retraining):")[1].split()[0])
    assert 0.5 < accuracy <= 1.0  # 80 of 400 neurons, no retraining; chance is 0.1
