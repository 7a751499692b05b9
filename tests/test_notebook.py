"""docs/examples/study.ipynb runs from top to bottom (Study.local on synthetic data) and shows its tables and plots."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "examples" / "study.ipynb"


@pytest.mark.slow
def test_the_study_notebook_runs_and_shows_tables_and_plots(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("em_expected_precision" in h for h in html)          # the linkage summary
    assert any("immunotherapy = 1" in h and "p-value" in h for h in html)   # Table 1
    assert any("exp(coef)" in h for h in html)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2   # Kaplan-Meier and predicted survival
    text = "".join(o.get("text", "") for o in outputs)
    assert "Cox proportional hazards" in text and "report.html" in text
