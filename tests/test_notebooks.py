"""Committed notebooks are clean, parameterised, and run headless in the tiny profile."""

import json

import pytest

from pmv2nb.notebooks import notebook_paths, run_notebook

NOTEBOOKS = notebook_paths()


def test_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["01", "02"]


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


@pytest.mark.notebook
def test_notebook_02_benchmarks_through_a_real_server_and_cleans_up(tmp_path):
    from pmv2nb.evaluate import read_results

    import subprocess

    def servers():
        found = subprocess.run(["pgrep", "-f", "transformers serve"], capture_output=True, text=True).stdout
        return set(found.split())

    before = servers()
    path = next(p for p in NOTEBOOKS if p.name.startswith("02_"))
    results, figures = tmp_path / "results", tmp_path / "figures"
    parameters = {"RESULTS_DIR": str(results), "CACHE_PATH": str(tmp_path / "calls.sqlite"), "FIGURES_DIR": str(figures)}
    output, _ = run_notebook(path, tmp_path / "executed", "tiny", parameters)
    executed = json.loads(output.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    rows = read_results(*sorted(results.glob("*.jsonl")))
    served = rows[rows["model"].str.startswith("openai:")]
    assert set(served["mode"]) == {"mcq", "open"}
    assert served.groupby("mode").size().to_dict() == {"mcq": 24, "open": 8}
    assert served["model"].str.contains("@http://127.0.0.1:").all()
    assert {"baseline:bm25", "baseline:dense"} <= set(rows["model"])
    assert rows["model"].str.startswith("nohistory:openai:").any() and rows["model"].str.startswith("oracle:").any()
    for name in ("02_overall_accuracy", "02_accuracy_by_pref_type"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
    assert servers() <= before  # the notebook's server is gone


@pytest.fixture(scope="module")
def tiny_sft_run(tmp_path_factory):
    """One quick SFT run that notebooks 04 and 05 both start from (neither writes into it)."""
    from pmv2nb import config
    from pmv2nb.train.sft import train_sft

    sft = tmp_path_factory.mktemp("runs") / "sft"
    train_sft(config.resolve("tiny", {"sft.max_steps": 1, "sft.rows": 2}), sft, progress=False)
    return sft


def _run_clean(prefix: str, tmp_path, parameters: dict) -> dict:
    path = next(p for p in NOTEBOOKS if p.name.startswith(prefix))
    output, _ = run_notebook(path, tmp_path / "executed", "tiny", parameters)
    executed = json.loads(output.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return executed


@pytest.mark.notebook
def test_notebook_03_trains_sft_plots_the_loss_and_compares_with_the_base_model(tmp_path):
    from pmv2nb.evaluate import read_results

    results, figures, run = tmp_path / "results", tmp_path / "figures", tmp_path / "sft"
    _run_clean("03_", tmp_path, {"OUT_DIR": str(run), "EVAL_ROWS": [6, 2], "RESULTS_DIR": str(results),
                                 "CACHE_PATH": str(tmp_path / "calls.sqlite"), "FIGURES_DIR": str(figures)})
    assert (run / "model.safetensors").is_file() and (run / "metrics.csv").is_file()
    for name in ("03_sft_loss", "03_sft_vs_base"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
    rows = read_results(*sorted(results.glob("*.jsonl")))
    assert set(rows["prompt_format"]) == {"boxed"}  # base and SFT, both asked in the format SFT trained on
    assert rows.groupby(["model", "mode"]).size().to_dict() == {
        (m, mode): n for m in (rows["model"].unique()) for mode, n in (("mcq", 6), ("open", 2))}
    assert rows["model"].nunique() == 2 and rows["model"].str.endswith(str(run)).any()


@pytest.mark.notebook
def test_notebook_04_trains_grpo_and_the_ablations_from_an_sft_run(tmp_path, tiny_sft_run):
    from pmv2nb.evaluate import read_results
    from pmv2nb.train.common import read_metrics

    sft = tiny_sft_run
    results, figures, run = tmp_path / "results", tmp_path / "figures", tmp_path / "grpo"
    _run_clean("04_", tmp_path, {"SFT_DIR": str(sft), "OUT_DIR": str(run), "EVAL_ROWS": [4, 2],
                                 "RESULTS_DIR": str(results), "CACHE_PATH": str(tmp_path / "calls.sqlite"),
                                 "FIGURES_DIR": str(figures)})
    metrics = read_metrics(run)
    assert "rewards/mcq_reward/mean" in metrics and metrics["loss"].notna().sum() == 2
    for name in ("04_grpo_rewards", "04_grpo_ablations"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
    rows = read_results(*sorted(results.glob("*.jsonl")))
    assert rows["model"].nunique() == 4  # SFT, mixed, MCQ-only and open-only checkpoints


@pytest.mark.notebook
def test_notebook_05_runs_the_memory_agent_audits_it_and_trains_it(tmp_path, tiny_sft_run):
    from pmv2nb.evaluate import read_results
    from pmv2nb.memory import read_trajectories
    from pmv2nb.train.common import read_metrics

    sft = tiny_sft_run
    results, figures, run = tmp_path / "results", tmp_path / "figures", tmp_path / "memory"
    _run_clean("05_", tmp_path, {"SFT_DIR": str(sft), "RL_DIR": str(run), "EVAL_ROWS": [4, 2],
                                 "QUERY_VARIANT_ROWS": 2, "RL_STEPS": 1, "RESULTS_DIR": str(results),
                                 "CACHE_PATH": str(tmp_path / "calls.sqlite"), "FIGURES_DIR": str(figures)})
    rows = read_results(*sorted(results.glob("*.jsonl")))
    counts = rows.groupby(["model", "mode"]).size().to_dict()
    assert counts[("memory:hf:tiny", "mcq")] == 4 and counts[("memory:hf:tiny", "open")] == 2
    assert counts[("memory+query:hf:tiny", "mcq")] == 2 and counts[("hf:tiny", "mcq")] == 4
    # the RL checkpoint and the SFT run it started from, each run as a memory agent on the same rows
    assert counts[(f"memory:hf:{run}", "mcq")] == 2 and counts[(f"memory:hf:{sft}", "mcq")] == 2
    memory_files = [p for p in results.glob("*memory-hf-tiny.jsonl")]
    assert memory_files and all(read_trajectories(p) for p in memory_files)
    assert read_metrics(run)["memory/capped_rate"].notna().any()
    for name in ("05_memory_vs_long_context", "05_memory_rl"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()


@pytest.mark.notebook
def test_notebook_06_redraws_the_paper_figures_with_labelled_runs_of_yours(tmp_path):
    from pmv2nb.evaluate.results import ResultsFile

    results, runs, figures = tmp_path / "results", tmp_path / "runs", tmp_path / "figures"
    with ResultsFile(results / "mine.jsonl") as rows:
        for i, (who, score) in enumerate([("self", 1.0), ("others", 0.0), ("self", 0.0)]):
            rows.append({"question_id": f"q{i}", "model": "openai:my-model", "mode": "mcq", "size": "32k",
                         "variant": 0, "profile": "tiny", "data_source": "mini (synthetic)", "who": who,
                         "pref_type": "neutral_preferences", "updated": False, "valid": True, "score": score,
                         "tokens_in": 10})
    executed = _run_clean("06_", tmp_path, {"RESULTS_DIR": str(results), "RUNS_DIR": str(runs),
                                            "FIGURES_DIR": str(figures)})
    shown = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "openai:my-model" in shown and "mini (synthetic)" in shown and "no training runs" in shown
    for name in ("06_fig2_dataset", "06_fig4_frontier", "06_fig5_breakdown", "06_fig6_qwen3_4b_family"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
    assert not (figures / "06_training_curves.png").exists()  # nothing was trained, so nothing is drawn


@pytest.mark.notebook
@pytest.mark.parametrize("prefix", ["03_", "04_", "05_"])
def test_training_notebooks_stop_early_with_advice_when_the_profile_needs_a_missing_gpu(prefix, tmp_path):
    import papermill
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    path = next(p for p in NOTEBOOKS if p.name.startswith(prefix))
    with pytest.raises(papermill.PapermillExecutionError, match="GPURequiredError") as caught:
        run_notebook(path, tmp_path / "executed", "paper", {"FIGURES_DIR": str(tmp_path / "figures")})
    assert "PMV2NB_PROFILE=tiny" in str(caught.value)
    assert not (tmp_path / "figures").exists()  # nothing ran past the check
