"""Paper figures on small hand-made frames, and the shelf that finds your runs and says where they came from."""

import json
import math

import pandas as pd
import pytest

from pmv2nb import paper_figures, plots


def _bars(fig, prefix: str) -> dict[str, object]:
    """Bars drawn with a gid, by gid (the plot functions tag every bar with what it shows)."""
    return {p.get_gid(): p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith(prefix)}


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts + ax.get_xticklabels()) + \
        " ".join(t.get_text() for t in fig.texts)


def test_figure4_draws_known_values_missing_slots_and_your_runs_with_intervals():
    paper = pd.DataFrame({"model": ["GPT-5-Chat"] * 4 + ["o4-mini"] * 4, "size": ["32k", "32k", "128k", "128k"] * 2,
                          "mode": ["mcq", "open"] * 4, "accuracy": [45.6, 46.2] + [math.nan] * 6})
    ours = pd.DataFrame({"label": ["yours: hf:tiny"] * 2, "provenance": ["tiny, mini (synthetic), n=24"] * 2,
                         "size": ["32k", "32k"], "mode": ["mcq", "open"], "accuracy": [30.0, 12.5],
                         "ci_low": [20.0, 5.0], "ci_high": [40.0, 20.0]})
    fig = paper_figures.plot_frontier(paper, ours, chance=25.0)
    known = _bars(fig, "paper|")
    assert {gid: round(bar.get_height(), 1) for gid, bar in known.items()} == {
        "paper|GPT-5-Chat|32k|mcq": 45.6, "paper|GPT-5-Chat|32k|open": 46.2}
    missing = _bars(fig, "missing|")
    assert len(missing) == 6 and all(bar.get_hatch() == "//" and not bar.get_fill() for bar in missing.values())
    mine = _bars(fig, "yours|")
    assert sorted(round(b.get_height(), 1) for b in mine.values()) == [12.5, 30.0]
    assert "mini (synthetic)" in _texts(fig) and "?" in _texts(fig)
    mcq_axis, open_axis = fig.axes[:2]
    dashed = [line for line in mcq_axis.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [25.0]
    assert not [line for line in open_axis.get_lines() if line.get_linestyle() == "--"]  # chance is an MCQ idea
    error_bars = [c for c in mcq_axis.containers if getattr(c, "errorbar", None) is not None and c.errorbar]
    assert error_bars  # your run carries its confidence interval


def test_figure5_puts_your_spread_beside_the_paper_and_marks_gaps():
    paper = pd.DataFrame({"panel": ["whose preference"] * 2 + ["scenario"], "category": ["self", "others", "therapy"],
                          "mean": [42.1, 17.5, math.nan], "sd": [4.9, 11.7, math.nan]})
    ours = pd.DataFrame({"panel": ["whose preference"], "category": ["self"], "mean": [50.0], "sd": [10.0],
                         "runs": [2]})
    fig = paper_figures.plot_breakdown(paper, ours)
    assert [ax.get_title() for ax in fig.axes] == ["whose preference", "scenario"]
    assert round(_bars(fig, "paper|")["paper|whose preference|others"].get_height(), 1) == 17.5
    assert list(_bars(fig, "missing|")) == ["missing|paper|scenario|therapy"]
    assert [b.get_height() for b in _bars(fig, "yours|").values()] == [50.0]
    assert "2 (model, size, mode) run(s)" in " ".join(t.get_text() for t in fig.legends[0].get_texts())


def test_figure6_marks_derived_values_and_shows_the_token_saving():
    paper = pd.DataFrame({"model": ["Qwen3-4B-SFT", "Qwen3-4B-GRPO", "GRPO MCQ-only", "Agentic memory"],
                          "mode": ["mcq"] * 4, "accuracy": [math.nan, 53.8, 40.0, 55.2],
                          "status": ["unknown", "reported", "derived", "reported"]})
    efficiency = pd.DataFrame({"quantity": ["history tokens read by the long-context model",
                                            "memory tokens read by the memory agent"], "value": [32000.0, 2000.0]})
    ours = pd.DataFrame({"model": ["Agentic memory"], "spec": ["memory:hf:tiny"], "mode": ["mcq"],
                         "accuracy": [25.0], "ci_low": [10.0], "ci_high": [40.0], "label": ["yours: memory:hf:tiny"],
                         "provenance": ["tiny, mini (synthetic), n=4"]})
    tokens = pd.DataFrame({"setting": ["long context", "memory"], "tokens": [2924.0, 417.0],
                           "label": ["same questions", "memory:hf:tiny"]})
    fig = paper_figures.plot_family(paper, ours, efficiency, tokens)
    derived = _bars(fig, "derived|")
    assert (list(derived) == ["derived|paper|GRPO MCQ-only|mcq"]
            and derived[list(derived)[0]].get_linestyle() in ("--", "dashed"))
    assert "missing|paper|Qwen3-4B-SFT|mcq" in _bars(fig, "missing|")
    assert _bars(fig, "yours|")["yours|Agentic memory|mcq"].get_height() == 25.0
    token_axis = fig.axes[2]
    assert token_axis.get_yscale() == "log"
    assert {t.get_gid(): t.get_text() for t in token_axis.texts if t.get_gid()} == {
        "ratio|paper|memory": "16.0x\nfewer", "ratio|yours|memory": "7.0x\nfewer"}
    assert "(yours: memory:hf:tiny)" in _texts(fig)
    assert "yours: memory:hf:tiny: tiny, mini (synthetic), n=4" in _texts(fig)


def test_training_runs_get_one_panel_each_and_one_line_per_metric():
    curves = pd.DataFrame({"title": ["sft (sft)"] * 2 + ["grpo (grpo)"] * 4, "metric": ["loss"] * 2 + ["reward",
                           "reward", "MCQ reward", "MCQ reward"], "step": [1, 2, 1, 2, 1, 2],
                           "value": [2.0, 1.5, 0.1, 0.3, 0.0, 0.5]})
    fig = plots.plot_training_runs(curves)
    assert [ax.get_title() for ax in fig.axes] == ["sft (sft)", "grpo (grpo)"]
    lines = {line.get_gid(): list(line.get_ydata()) for ax in fig.axes for line in ax.get_lines()}
    assert lines == {"curve|sft (sft)|loss": [2.0, 1.5], "curve|grpo (grpo)|reward": [0.1, 0.3],
                     "curve|grpo (grpo)|MCQ reward": [0.0, 0.5]}


def test_a_model_keeps_its_colour_from_figure_to_figure():
    frontier = pd.DataFrame({"model": ["GPT-5-Chat"], "size": ["32k"], "mode": ["mcq"], "accuracy": [45.6]})
    family = pd.DataFrame({"model": ["GPT-5-Chat", "Qwen3-4B-GRPO"], "mode": ["mcq", "mcq"], "accuracy": [45.6, 53.8],
                           "status": ["reported", "reported"]})
    four = _bars(paper_figures.plot_frontier(frontier), "paper|")["paper|GPT-5-Chat|32k|mcq"].get_facecolor()
    six = _bars(paper_figures.plot_family(family), "paper|")
    assert six["paper|GPT-5-Chat|mcq"].get_facecolor() == four
    assert six["paper|Qwen3-4B-GRPO|mcq"].get_facecolor() != four


def test_the_dataset_figure_counts_what_the_profile_loaded(benchmark_data):
    questions = benchmark_data.questions
    fig = plots.plot_dataset_overview(questions)
    assert f"{len(questions)} questions" in fig._suptitle.get_text()
    pref_axis = next(ax for ax in fig.axes if ax.get_title() == "preference type")
    widths = {label.get_text(): bar.get_width() for label, bar in zip(pref_axis.get_yticklabels(), pref_axis.patches)}
    assert sum(widths.values()) == len(questions)
    assert widths["sensitive info"] == (questions["pref_type"] == "sensitive_info").sum()


def test_one_run_plots_its_logged_metrics_in_one_panel():
    metrics = pd.DataFrame({"step": [1, 2, 2], "loss": [2.0, 1.5, None], "reward": [None, None, None],
                            "eval_loss": [None, 1.8, None]})
    fig = plots.plot_training_curves(metrics, {"loss": "training", "reward": "reward", "eval_loss": "eval"},
                                       "SFT (tiny)", "loss")
    (ax,) = fig.axes
    assert ax.get_title() == "SFT (tiny)" and ax.get_ylabel() == "loss"
    assert {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()} == {"training": [2.0, 1.5],
                                                                                     "eval": [1.8]}


# ---- the shelf -------------------------------------------------------------------------------------------------

def _write_rows(path, model: str, scores: list[float], profile="tiny", source="mini (synthetic)", mode="mcq",
                size="32k", **extra):
    from pmv2nb.evaluate.results import ResultsFile

    labels = [("stereotypical_pref", "self", False), ("therapy_background", "others", True)]
    with ResultsFile(path) as results:
        for i, score in enumerate(scores):
            pref, who, updated = labels[i % 2]
            results.append({"question_id": f"q{i}", "model": model, "mode": mode, "size": size, "variant": 0,
                            "profile": profile, "data_source": source, "pref_type": pref, "who": who,
                            "updated": updated, "conversation_scenario": "chat_message", "valid": True,
                            "score": score, "tokens_in": 100 + i, **extra})


def _run(folder, stage: str, **settings):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"stage": stage, "profile": "tiny", "settings": settings}))
    (folder / "metrics.csv").write_text("stage,step,loss,reward\n" + f"{stage},1,2.0,0.1\n{stage},2,1.5,0.3\n")
    return folder


@pytest.fixture
def shelf_folders(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    sft = _run(runs / "sft-a", "sft")
    mcq_only = _run(runs / "grpo-m", "grpo", mcq_fraction=1.0)
    mixed = _run(runs / "grpo-x", "grpo", mcq_fraction=0.8)
    memory = _run(runs / "mem-rl", "memory-grpo")
    _write_rows(results / "a.jsonl", "openai:gpt-x", [1, 0, 1, 1])
    _write_rows(results / "b.jsonl", "openai:gpt-y", [0, 0, 1, 0], profile=None, source=None)
    _write_rows(results / "c.jsonl", "baseline:random", [1, 0])
    _write_rows(results / "d.jsonl", f"hf:{sft}", [0, 1])
    _write_rows(results / "e.jsonl", f"hf:{mcq_only}", [1, 1])
    _write_rows(results / "f.jsonl", f"hf:{mixed}", [1, 0])
    _write_rows(results / "g.jsonl", "hf:tiny", [0, 0])
    _write_rows(results / "h.jsonl", "memory:hf:tiny", [1, 1, 1, 1], full_history_tokens=1000)
    _write_rows(results / "i.jsonl", f"memory:hf:{memory}", [0, 1], full_history_tokens=2000)
    _write_rows(results / "j.jsonl", "nohistory:hf:tiny", [0, 1])
    return results, runs


def test_the_shelf_sorts_your_runs_into_the_figures_they_belong_to(shelf_folders):
    from pmv2nb.shelf import Shelf

    shelf = Shelf.load(*shelf_folders, base_models=("tiny",))
    found = shelf.inventory().set_index("model")
    assert found.loc["baseline:random", "role"] == "baseline" and found.loc["nohistory:hf:tiny", "role"] == "other"
    members = {spec: member for spec, member in found["member"].items() if isinstance(member, str)}
    assert sorted(members.values()) == sorted(["Qwen3-4B-SFT", "GRPO MCQ-only", "Qwen3-4B-GRPO", "Qwen3-4B base",
                                               "Agentic memory", "Agentic memory"])
    # rows written before protocols existed count as the paper protocol's
    assert found.loc["openai:gpt-x", "provenance"] == "tiny, mini (synthetic), paper protocol"
    assert found.loc["openai:gpt-y", "provenance"] == "profile not recorded, data not recorded, paper protocol"
    frontier = shelf.frontier_overlay()
    assert set(frontier["model"]) == {"openai:gpt-x", "openai:gpt-y", "hf:tiny"}  # the base is benchmarked too
    assert frontier.set_index("model").loc["openai:gpt-x", "accuracy"] == 75.0
    provenance = frontier.set_index("model").loc["openai:gpt-x", "provenance"]
    assert provenance == "tiny, mini (synthetic), paper protocol, n=4"
    family = shelf.family_overlay().set_index("model")
    assert family.loc["Agentic memory", "spec"].endswith("mem-rl")  # the RL-trained agent beats more rows
    assert family.loc["GRPO MCQ-only", "accuracy"] == 100.0


def test_the_breakdown_overlay_is_the_mean_and_spread_over_your_runs(shelf_folders):
    from pmv2nb.shelf import Shelf

    overlay = Shelf.load(*shelf_folders, base_models=("tiny",)).breakdown_overlay().set_index("category")
    # self rows: gpt-x scores 1, 1, gpt-y 0, 1 and the base hf:tiny 0: run means 100, 50 and 0
    assert overlay.loc["self", "mean"] == 50.0 and math.isclose(overlay.loc["self", "sd"], 50.0)
    assert overlay.loc["self", "runs"] == 3
    # the dynamic rows (also "others", "therapy"): gpt-x 0, 1, gpt-y 0, 0 and hf:tiny 0: run means 50, 0 and 0
    assert [round(v, 2) for v in overlay.loc[["dynamic", "others", "therapy"], "mean"]] == [16.67] * 3
    assert "neutral" not in overlay.index  # no row of yours has that label, so no bar is drawn for it


def test_token_saving_and_training_curves_come_from_your_memory_rows_and_run_logs(shelf_folders):
    from pmv2nb.shelf import Shelf

    shelf = Shelf.load(*shelf_folders, base_models=("tiny",))
    tokens = shelf.answer_tokens().set_index("setting")["tokens"]
    assert tokens.to_dict() == {"long context": 2000.0, "memory": 100.5}  # the mem-rl rows: 100 and 101 tokens in
    curves = shelf.training_curves()
    assert list(dict.fromkeys(curves["title"])) == [  # stage order: SFT, GRPO, memory RL
        "sft-a (sft, profile tiny)", "grpo-m (grpo, profile tiny)", "grpo-x (grpo, profile tiny)",
        "mem-rl (memory-grpo, profile tiny)"]
    sft = curves[curves["title"].str.startswith("sft-a")]
    assert set(sft["metric"]) == {"training loss"} and sft["value"].tolist() == [2.0, 1.5]


def test_figures_command_draws_every_figure_with_your_runs(shelf_folders, tmp_path, capsys):
    from pmv2nb.cli import main

    results, runs = shelf_folders
    out = tmp_path / "figures"
    assert main(["figures", "--out", str(out), "--results", str(results), "--runs", str(runs)]) == 0
    for name in ("06_fig2_dataset", "06_fig4_frontier", "06_fig5_breakdown", "06_fig6_qwen3_4b_family",
                 "06_training_curves"):
        assert (out / f"{name}.png").stat().st_size > 5000 and (out / f"{name}.pdf").is_file()
    printed = capsys.readouterr().out
    assert "openai:gpt-x: frontier, tiny, mini (synthetic), paper protocol, 4 rows" in printed
    assert "(Agentic memory)" in printed


def test_result_rows_say_which_profile_and_data_they_came_from(benchmark_data, mini_copy, tmp_path):
    from pmv2nb import config
    from pmv2nb.data.sources import HubMirror, describe_source
    from pmv2nb.evaluate import run_eval
    from pmv2nb.evaluate.suite import profile_settings

    assert describe_source(benchmark_data.source) == "mini (synthetic)"
    assert describe_source(mini_copy) == "mini (synthetic)"  # a copy is still the synthetic data
    assert describe_source(tmp_path) == f"local:{tmp_path}"
    assert describe_source(HubMirror("someone/data")) == "hub:someone/data"
    settings = profile_settings(config.resolve("tiny"), "mcq", "32k")
    run = run_eval(benchmark_data, "baseline:longest", settings, out=tmp_path / "r.jsonl",
                   cache=tmp_path / "c.sqlite", progress=False)
    assert set(run.results["profile"]) == {"tiny"} and set(run.results["data_source"]) == {"mini (synthetic)"}


def test_a_broken_run_record_is_named(shelf_folders):
    from pmv2nb.shelf import Shelf

    results, runs = shelf_folders
    (runs / "grpo-x" / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"grpo-x/run.json: not valid JSON"):
        Shelf.load(results, runs)


def test_a_foreign_jsonl_among_the_results_is_named(shelf_folders):
    from pmv2nb.shelf import Shelf

    results, runs = shelf_folders
    (results / "notes.jsonl").write_text('{"text": "not a result"}\n')
    with pytest.raises(ValueError, match=r"notes.jsonl: not a pmv2nb result file \(no column question_id"):
        Shelf.load(results, runs)
