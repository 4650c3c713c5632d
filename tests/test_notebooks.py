"""Committed notebooks are clean, parameterised, and run headless in the tiny profile."""

import json

import pytest

from pmv2nb.notebooks import notebook_paths, run_notebook

NOTEBOOKS = notebook_paths()


def test_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS][:1] == ["01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs_and_one_parameters_cell(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert not [c for c in code if c.get("outputs") or c.get("execution_count")], f"{path.name}: strip outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "PROFILE" in "".join(tagged[0]["source"])


@pytest.mark.notebook
def test_notebook_01_runs_headless_and_saves_its_figures(tmp_path):
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    figures = tmp_path / "figures"
    output, _ = run_notebook(path, tmp_path / "executed", "tiny", {"FIGURES_DIR": str(figures)})
    executed = json.loads(output.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    for name in ("01_dataset_overview", "01_history_lengths", "01_evidence_distance", "01_length_shortcut"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
