"""Committed notebooks are clean, parameterised, and run headless in the tiny profile.

The checks read what each notebook records (``pmv2nb.notebooks.record``) from the executed copy.
"""

import json
import re

import pytest

from pmv2nb import config
from pmv2nb.notebooks import RECORD_MIME, notebook_paths, read_records, run_notebook

NOTEBOOKS = notebook_paths()


def test_the_demo_finds_every_committed_notebook_in_run_order_and_each_has_a_headless_test(tmp_path):
    for name in ("02_b.ipynb", "10_c.ipynb", "01_a.ipynb", "scratch.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebook_paths(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    # an unnumbered notebook would be left out of `make demo` without a word
    assert NOTEBOOKS == sorted(NOTEBOOKS[0].parent.glob("*.ipynb"))
    assert [int(p.name[:2]) for p in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1))
    tests = [name for name in globals() if name.startswith("test_notebook_")]
    untested = [p.name for p in NOTEBOOKS if not any(name.startswith(f"test_notebook_{p.name[:2]}_") for name in tests)]
    assert not untested, f"no test runs these headless: {untested}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs_and_one_parameters_cell(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert not [c for c in code if c.get("outputs") or c.get("execution_count")], f"{path.name}: strip outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    parameters = "".join(tagged[0]["source"])
    for name in ("PROFILE = None", "CONFIG = None", "SETTINGS = {}"):
        assert name in parameters, f"{path.name}: the parameters cell needs {name}"
    import papermill

    assigned = [line.split("=")[0].strip() for line in parameters.splitlines() if re.match(r"^[A-Z_]+ = ", line)]
    # papermill reads every parameter, with its comment as help (a "=" in a comment would hide it)
    assert list(papermill.inspect_notebook(str(path))) == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_take_settings_through_one_setup_call_and_never_branch_on_a_profile_name(path):
    notebook = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert re.search(r"start\(\"\w+\", PROFILE, SETTINGS, CONFIG", code), f"{path.name}: call start(...) once"
    assert len(re.findall(r"(?<![.\w])start\(", code)) == 1 and "config.resolve" not in code
    quoted = re.findall(r"[\"'](" + "|".join(config.PROFILES) + r")[\"']", code)
    assert not quoted, f"{path.name} names a profile in its code: {quoted}"


# What a reader should never see in an executed notebook: a bar per model load, a tokenizer warning about a
# clean-up our BPE tokenizers skip anyway, and a trainer's printed log dictionary per step
NOISE = ("Loading weights", "clean_up_tokenization_spaces", "{'loss'")


def visible_noise(executed: dict) -> list[str]:
    """The outputs a reader would see that are noise: a record shown as text, or any of NOISE."""
    found = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data and data.get("text/plain"):
                found.append(f"a record shown as text: {data['text/plain'][:80]}")
            text = "".join(output.get("text", "")) + "".join(data.get("text/plain", ""))
            found += [f"{noise!r} in: {text[:120]}" for noise in NOISE if noise in text]
    return found


@pytest.mark.notebook
def test_a_record_is_read_back_unseen_and_a_failing_cell_stops_the_run_at_once(tmp_path):
    import time

    import nbformat
    import papermill

    cells = ["from pmv2nb.notebooks import record\nrecord('answer', {'rows': 14})", "raise ValueError('boom')",
             "import time\ntime.sleep(600)"]
    path = tmp_path / "07_probe.ipynb"
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    probe.metadata.update(kernelspec={"name": "python3", "language": "python", "display_name": "Python 3"},
                          language_info={"name": "python"})
    nbformat.write(probe, path)
    started = time.monotonic()
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        run_notebook(path, tmp_path / "executed", "tiny")
    assert time.monotonic() - started < 120  # the sleeping cell after the error never ran
    output = tmp_path / "executed" / path.name
    assert read_records(output) == {"answer": {"rows": 14}}
    assert not visible_noise(json.loads(output.read_text()))


def _run_clean(prefix: str, tmp_path, parameters: dict) -> tuple[dict, dict]:
    """Run a notebook in the tiny profile; its executed JSON and the values it recorded. It must run without an
    error, and show a reader no noise."""
    path = next(p for p in NOTEBOOKS if p.name.startswith(prefix))
    output, _ = run_notebook(path, tmp_path / "executed", "tiny", parameters)
    executed = json.loads(output.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert not visible_noise(executed), "\n".join(visible_noise(executed))
    return executed, read_records(output)


def moved_folders(tmp_path, **settings) -> dict:
    """SETTINGS that move every folder a notebook writes (results, figures, runs) under ``tmp_path``, plus
    ``settings``: the notebooks take their folders from the profile, so this is the only way to move them."""
    return {"results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures"),
            "runs_dir": str(tmp_path / "runs"), **settings}


@pytest.mark.notebook
def test_notebook_01_runs_headless_and_saves_its_figures(tmp_path):
    figures = tmp_path / "figures"
    _, records = _run_clean("01_", tmp_path, {"SETTINGS": moved_folders(tmp_path)})
    overview = {row["split"]: row for row in records["split_overview"]}
    assert overview["benchmark"]["rows"] == 112 and set(overview) == {"benchmark", "train", "val"}
    for name in ("01_dataset_overview", "01_history_lengths", "01_evidence_distance", "01_length_shortcut"):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()


@pytest.mark.notebook
def test_notebook_02_benchmarks_through_a_real_server_and_cleans_up(tmp_path):
    from pmv2nb.evaluate import read_results

    import subprocess

    def servers():
        found = subprocess.run(["pgrep", "-f", "transformers serve"], capture_output=True, text=True).stdout
        return set(found.split())

    before = servers()
    results, figures = tmp_path / "results" / "eval", tmp_path / "figures"
    # a setting override in the parameters cell reaches the run, as `pmv2nb eval --set eval.mcq_rows=12` would
    _, records = _run_clean("02_", tmp_path, {"SETTINGS": moved_folders(tmp_path, **{"eval.mcq_rows": 12})})
    assert (tmp_path / "results" / "cache" / "calls.sqlite").is_file()  # the cache moved with the results
    assert sorted((results / "position-bias").glob("*.jsonl"))  # the four-order rows in a folder of their own
    rows = read_results(*sorted(results.glob("*.jsonl")))
    served = rows[rows["model"].str.startswith("openai:")]
    assert set(served["mode"]) == {"mcq", "open"}
    assert served.groupby("mode").size().to_dict() == {"mcq": 12, "open": 8}
    overall = {(r["model"], r["mode"]): r for r in records["overall"]}
    served_label = next(label for label, mode in overall if label.startswith("openai:") and mode == "open")
    assert overall[(served_label, "mcq")]["n"] == 12 and overall[(served_label, "open")]["n"] == 8
    assert overall[(served_label, "mcq")]["invalid_rate"] == 1.0  # the random model never writes a letter
    bias = records["position_bias"]  # probe_rows questions in four orders, so the gold sits under every letter
    assert {r["letter"] for r in bias} == set("ABCD") and {r["answers"] for r in bias} == {4 * 8}
    assert abs(sum(r["gold_here"] for r in bias) - 1.0) < 1e-9 and {r["invalid_rate"] for r in bias} == {1.0}
    assert served["model"].str.contains("@http://127.0.0.1:").all()
    assert {"baseline:bm25", "baseline:dense"} <= set(rows["model"])
    assert rows["model"].str.startswith("nohistory:openai:").any() and rows["model"].str.startswith("oracle:").any()
    for name in ("02_overall_accuracy", "02_accuracy_by_pref_type"):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()
    assert servers() <= before  # the notebook's server is gone


@pytest.fixture(scope="module")
def tiny_sft_run(tmp_path_factory):
    """One quick SFT run that notebooks 04 and 05 both start from (neither writes into it)."""
    from pmv2nb import config
    from pmv2nb.train.sft import train_sft

    sft = tmp_path_factory.mktemp("runs") / "sft"
    train_sft(config.resolve("tiny", {"sft.max_steps": 1, "sft.rows": 2}), sft, progress=False)
    return sft


@pytest.mark.notebook
def test_notebook_03_trains_sft_plots_the_loss_and_compares_with_the_base_model(tmp_path):
    from pmv2nb.evaluate import read_results

    results, figures, run = tmp_path / "results" / "eval", tmp_path / "figures", tmp_path / "runs" / "sft-tiny"
    # no OUT_DIR: the run goes to the profile's runs_dir
    _, records = _run_clean("03_", tmp_path, {
        "SETTINGS": moved_folders(tmp_path, **{"eval.mcq_rows": 6, "eval.open_rows": 2, "sft.max_steps": 2})})
    assert (run / "model.safetensors").is_file() and (run / "metrics.csv").is_file()
    for name in ("03_sft_loss", "03_sft_vs_base"):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()
    compared = {(r["checkpoint"], r["mode"]): r for r in records["sft_vs_base"]}
    assert set(compared) == {(c, m) for c in ("base", "SFT") for m in ("mcq", "open")}
    assert {r["prompt_format"] for r in compared.values()} == {"boxed"}
    assert compared[("SFT", "mcq")]["n"] == 6 and compared[("base", "open")]["n"] == 2
    rows = read_results(*sorted(results.glob("*.jsonl")))
    assert set(rows["prompt_format"]) == {"boxed"}  # base and SFT, both asked in the format SFT trained on
    assert rows.groupby(["model", "mode"]).size().to_dict() == {
        (m, mode): n for m in (rows["model"].unique()) for mode, n in (("mcq", 6), ("open", 2))}
    assert rows["model"].nunique() == 2 and rows["model"].str.endswith(str(run)).any()
    assert "hf:tiny" in set(rows["model"])  # the base model by the name notebook 02 asks it by, not a cache path


@pytest.mark.notebook
def test_notebook_04_trains_grpo_and_the_ablations_from_an_sft_run(tmp_path, tiny_sft_run):
    from pmv2nb.evaluate import read_results
    from pmv2nb.train.common import read_metrics

    sft = tiny_sft_run
    results, figures, run = tmp_path / "results" / "eval", tmp_path / "figures", tmp_path / "grpo"
    _, records = _run_clean("04_", tmp_path, {
        "SFT_DIR": str(sft), "OUT_DIR": str(run),
        "SETTINGS": moved_folders(tmp_path, **{"eval.mcq_rows": 4, "eval.open_rows": 2, "grpo.max_steps": 1})})
    metrics = read_metrics(run)
    assert "rewards/mcq_reward/mean" in metrics and metrics["loss"].notna().sum() == 1
    for name in ("04_grpo_rewards", "04_grpo_ablations"):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()
    from pmv2nb.train.common import weight_change

    assert records["weight_change"] == pytest.approx(weight_change(sft, run))  # measured against the SFT init
    assert records["steps_with_signal"][1] == 1  # one logged GRPO step
    assert {r["checkpoint"] for r in records["ablations"]} == {"GRPO mixed", "GRPO mcq-only", "GRPO open-only"}
    assert {r["checkpoint"] for r in records["sft_vs_grpo"]} == {"SFT", "GRPO mixed"}
    rows = read_results(*sorted(results.glob("*.jsonl")))
    assert rows["model"].nunique() == 4  # SFT, mixed, MCQ-only and open-only checkpoints


@pytest.mark.notebook
def test_notebook_05_runs_the_memory_agent_audits_it_and_trains_it(tmp_path, tiny_sft_run):
    from pmv2nb.evaluate import read_results
    from pmv2nb.memory import read_trajectories
    from pmv2nb.train.common import read_metrics

    sft = tiny_sft_run
    results, figures, run = tmp_path / "results" / "eval", tmp_path / "figures", tmp_path / "memory"
    settings = moved_folders(tmp_path, **{"eval.mcq_rows": 4, "eval.open_rows": 2, "memory.compare_rows": 2,
                                          "memory.rl.max_steps": 1})
    _, records = _run_clean("05_", tmp_path, {"SFT_DIR": str(sft), "RL_DIR": str(run), "SETTINGS": settings})
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
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()
    steps = [step for path in memory_files for trajectory in read_trajectories(path).values()
             for step in trajectory.steps]
    cap = config.resolve("tiny").memory.memory_tokens
    # a random model never stops, so every rewrite runs to the cap and is marked cut
    assert steps and all(step.tokens_out == cap and step.capped for step in steps)
    assert records["cap_rate"] == 1.0
    from pmv2nb.train.common import steps_with_signal

    assert tuple(records["rl_steps_with_signal"]) == steps_with_signal(read_metrics(run)) and \
        records["rl_steps_with_signal"][1] == 1
    assert {(r["mode"], r["n"]) for r in records["agent"]} == {("mcq", 4), ("open", 2)}
    assert {r["model"] for r in records["sft_vs_rl_agent"]} == {f"memory:hf:{run}", f"memory:hf:{sft}"}


@pytest.mark.notebook
def test_notebook_06_redraws_the_paper_figures_with_labelled_runs_of_yours(tmp_path):
    from pmv2nb.evaluate.results import ResultsFile

    results, figures = tmp_path / "results" / "eval", tmp_path / "figures"
    with ResultsFile(results / "mine.jsonl") as rows:
        for i, (who, score) in enumerate([("self", 1.0), ("others", 0.0), ("self", 0.0)]):
            rows.append({"question_id": f"q{i}", "model": "openai:my-model", "mode": "mcq", "size": "32k",
                         "variant": 0, "profile": "tiny", "data_source": "mini (synthetic)", "who": who,
                         "pref_type": "neutral_preferences", "updated": False, "valid": True, "score": score,
                         "tokens_in": 10})
    executed, records = _run_clean("06_", tmp_path, {"SETTINGS": moved_folders(tmp_path)})
    shown = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "no training runs" in shown
    (mine,) = records["inventory"]
    assert mine["model"] == "openai:my-model" and mine["rows"] == 3 and "mini (synthetic)" in mine["provenance"]
    for name in ("06_fig2_dataset", "06_fig4_frontier", "06_fig5_breakdown", "06_fig6_qwen3_4b_family"):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file()
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
        run_notebook(path, tmp_path / "executed", "paper", {"SETTINGS": moved_folders(tmp_path)})
    assert "PMV2NB_PROFILE=tiny" in str(caught.value)
    assert not [name for name in ("figures", "results", "runs") if (tmp_path / name).exists()]  # nothing ran past it
