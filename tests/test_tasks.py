"""Prompt assembly: stable option orders, the recorded gold letter, contexts, judge framings."""

from pmv2nb import config, prompts
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import build_task, option_order
from pmv2nb.evaluate.tasks import split_context


def test_option_order_is_stable_and_differs_between_rows_and_variants():
    first = option_order(7, "Draft an email to my landlord", 4)
    assert first == option_order(7, "Draft an email to my landlord", 4)
    assert sorted(first) == [0, 1, 2, 3]
    orders = {tuple(option_order(p, "same query", 4)) for p in range(40)}
    assert len(orders) > 10  # the gold answer is not stuck in one position
    assert len({tuple(option_order(7, "q", 4, v)) for v in range(12)}) > 4


def test_gold_letter_points_at_the_correct_answer(benchmark_data):
    q = benchmark_data.questions
    positions = set()
    for row in range(len(q)):
        task = build_task(benchmark_data, row, "mcq", "32k")
        shown = prompts.read_options(task.messages[-1]["content"])
        assert len(shown) == q["n_options"].iat[row]
        assert shown[prompts.LETTERS.index(task.gold_letter)] == q["correct_answer"].iat[row]
        assert sorted(shown) == sorted([q["correct_answer"].iat[row], *q["incorrect_answers"].iat[row]])
        positions.add(task.gold_letter)
    assert positions >= {"A", "B", "C", "D"}


def test_mcq_prompt_keeps_history_persona_and_query(benchmark_data):
    task = build_task(benchmark_data, 3, "mcq", "32k")
    history = benchmark_data.history(3, "32k")
    assert task.messages[:len(history)] == history and history[0]["role"] == "system"
    query = task.messages[len(history)]
    assert query["role"] == "user" and query["content"].startswith(benchmark_data.questions["query_text"].iat[3])
    assert query["content"].endswith(prompts.RECALL_NOTE)
    assert task.messages[-1]["role"] == "system" and "Final Answer:" in task.messages[-1]["content"]
    open_task = build_task(benchmark_data, 3, "open", "32k")
    assert open_task.messages == task.messages[:-1] and open_task.gold_letter is None


def test_contexts_replace_the_history(benchmark_data):
    none = build_task(benchmark_data, 0, "mcq", "32k", context="none")
    assert [m["role"] for m in none.messages] == ["user", "system"]
    oracle = build_task(benchmark_data, 0, "mcq", "32k", context="oracle")
    snippet = benchmark_data.questions["related_conversation_snippet"].iat[0]
    assert len(oracle.messages) == 3 and snippet[0]["content"] in oracle.messages[0]["content"]
    assert split_context("nohistory:hf:tiny") == ("none", "hf:tiny")
    assert split_context("oracle:openai:gpt-4.1") == ("oracle", "openai:gpt-4.1")
    assert split_context("openai:gpt-4.1") == ("full", "openai:gpt-4.1")


def test_read_options_round_trips_multiline_options():
    options = ["Line one.\nA. not a new option", "Second", "Third\n\nwith gap", "Fourth", "Fifth"]
    assert prompts.read_options(prompts.mcq_message(options)["content"]) == options


def test_judge_framing_follows_the_preference(benchmark_data):
    q = benchmark_data.questions
    for row in range(len(q)):
        text = prompts.judge_messages("q", q["preference"].iat[row], "r")[0]["content"]
        negative = q["pref_type"].iat[row] == "ask_to_forget"
        assert ("left out" in text) == negative, (row, q["preference"].iat[row])
        assert "\\boxed{score}" in text


def test_a_trained_run_is_asked_in_the_format_its_run_json_records(benchmark_data, tmp_path):
    import json

    import pytest

    from pmv2nb.evaluate.runner import RunSettings, results_path_for
    from pmv2nb.evaluate.suite import shared_format
    from pmv2nb.evaluate.tasks import resolve_format, trained_format

    run = tmp_path / "sft"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"stage": "sft", "prompt_format": "boxed"}))
    for spec in (f"hf:{run}", f"nohistory:hf:{run}", f"openai:{run}@http://127.0.0.1:8000/v1"):
        assert trained_format(spec) == "boxed" and resolve_format(spec, None) == "boxed"
    assert trained_format("hf:smollm2-135m-instruct") is None and resolve_format("openai:gpt-4.1", None) == "chat"
    assert resolve_format(f"hf:{run}", "chat") == "chat"  # an explicit format wins
    assert shared_format(["hf:base", f"hf:{run}"]) == "boxed"
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"prompt_format": "chat"}))
    with pytest.raises(ValueError, match="different prompt formats"):
        shared_format([f"hf:{run}", f"hf:{other}"])
    chat = results_path_for(benchmark_data, f"hf:{run}", RunSettings(prompt_format="chat"))
    boxed = results_path_for(benchmark_data, f"hf:{run}", RunSettings())  # the run's own format
    assert "-mcq-hf-" in chat.name and "-mcq-boxed-hf-" in boxed.name and chat != boxed


def test_a_comparison_can_narrow_its_multiple_choice_rows_only(benchmark_data, tmp_path):
    from pmv2nb import config
    from pmv2nb.evaluate.suite import compare_checkpoints

    table = compare_checkpoints(benchmark_data, config.resolve("tiny"), {"bm25": "baseline:bm25"}, judge=None,
                                results_dir=tmp_path, cache=tmp_path / "calls.sqlite", modes=("mcq",), mcq_rows=5)
    assert table[["checkpoint", "mode", "prompt_format", "n"]].values.tolist() == [["bm25", "mcq", "chat", 5]]


def _words(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_fit_history_drops_code_filler_first_then_the_oldest_messages():
    from pmv2nb.evaluate.tasks import fit_history

    exchanges = [("I hike in the alps every summer", "Then pack layers, the weather turns fast"),
                 ("Why does my function return None here", "It never returns, so Python gives None"),
                 ("My sister is vegan now", "Good to know for the dinner plans"),
                 ("Please look at this buggy loop", "The index starts at one, start it at zero"),
                 ("I moved to Lisbon last year", "Welcome, Lisbon is lovely in spring")]
    persona = {"role": "system", "content": "Profile of the user: a retired teacher"}
    history = [persona] + [{"role": role, "content": text} for pair in exchanges
                           for role, text in zip(("user", "assistant"), pair)]
    query = {"role": "user", "content": "Help me plan a weekend, and explain this python code"}  # kept all the same
    options = {"role": "system", "content": "Options: A, B, C, D"}
    messages = [*history, query, options]
    total = _words(messages)
    kept, dropped = fit_history(messages, _words, total)
    assert kept == messages and kept is not messages and dropped == []  # a prompt that fits is untouched
    kept, dropped = fit_history(messages, _words, total - 1)
    assert dropped == history[3:5]  # the older code exchange, question and reply together
    kept, dropped = fit_history(messages, _words, total - _words(history[3:5]) - 1)
    assert dropped == history[3:5] + history[7:9]  # both code exchanges, oldest first
    kept, dropped = fit_history(messages, _words, total - _words(history[3:5] + history[7:9]) - 1)
    assert dropped == history[1:2] + history[3:5] + history[7:9]  # then the oldest message
    assert kept == [persona, *history[2:3], *history[5:7], *history[9:], query, options]
    kept, dropped = fit_history(messages, _words, 0)  # cannot fit: everything droppable goes, nothing else
    assert kept == [persona, query, options] and len(dropped) == 10


def test_max_prompt_tokens_cuts_long_histories_and_the_row_records_it(benchmark_data, tmp_path):
    from pmv2nb.evaluate import RunSettings, run_eval
    from pmv2nb.evaluate.runner import _Tokens, plan_tasks
    from pmv2nb.evaluate.tasks import CODE_FILLER

    count = _Tokens().messages
    whole, _ = plan_tasks(benchmark_data, "baseline:longest", RunSettings(size="128k", rows=2))
    assert all(not t.dropped for t in whole)
    size = count(whole[0].messages)
    light, _ = plan_tasks(benchmark_data, "baseline:longest", RunSettings(
        size="128k", rows=2, eval=EvalSettings(max_prompt_tokens=size - 500)))
    assert light[0].dropped and all(any(CODE_FILLER.search(m["content"]) for m in light[0].dropped[i:i + 2])
                                    for i in range(0, len(light[0].dropped), 2))  # only code exchanges went
    cut = EvalSettings(max_prompt_tokens=3000)
    tight, _ = plan_tasks(benchmark_data, "baseline:longest", RunSettings(size="128k", rows=2, eval=cut))
    task = tight[0]
    assert count(task.messages) <= 3000 and not any(CODE_FILLER.search(m["content"]) for m in task.messages[1:-2])
    assert task.messages[0] == whole[0].messages[0] and task.messages[0]["role"] == "system"  # the persona stays
    assert task.messages[-2:] == whole[0].messages[-2:]  # query and options too
    history = whole[0].messages[1:-2]
    code = {j for i in range(len(history) - 1) for j in (i, i + 1)
            if (history[i]["role"], history[i + 1]["role"]) == ("user", "assistant")
            and any(CODE_FILLER.search(m["content"]) for m in history[i:i + 2])}
    rest, kept = [m for i, m in enumerate(history) if i not in code], task.messages[1:-2]
    assert kept and kept == rest[len(rest) - len(kept):]  # past the code exchanges, the newest messages survive
    rows = run_eval(benchmark_data, "baseline:longest", RunSettings(size="128k", rows=2, eval=cut),
                    out=tmp_path / "r.jsonl", cache=tmp_path / "c.sqlite", progress=False).results
    assert (rows["dropped_messages"] == len(task.dropped)).all() and len(task.dropped) > 0
    untouched = run_eval(benchmark_data, "baseline:longest", RunSettings(rows=2), out=tmp_path / "u.jsonl",
                         cache=tmp_path / "c.sqlite", progress=False).results
    assert (untouched["dropped_messages"] == 0).all()


def test_the_prompt_budget_setting_cuts_histories_and_each_row_says_so(benchmark_data, tmp_path):
    from dataclasses import replace

    from pmv2nb.evaluate import run_eval
    from pmv2nb.evaluate.suite import profile_settings

    settings = profile_settings(config.resolve("tiny", {"eval.max_prompt_tokens": 1500}), "mcq", "32k")
    run = run_eval(benchmark_data, "baseline:bm25", replace(settings, rows=3), out=tmp_path / "cut.jsonl",
                   cache=tmp_path / "c.sqlite", progress=False)
    assert (run.results["dropped_messages"] > 0).all()
    whole = run_eval(benchmark_data, "baseline:bm25", replace(profile_settings(config.resolve("tiny"), "mcq", "32k"),
                     rows=3), out=tmp_path / "whole.jsonl", cache=tmp_path / "c.sqlite", progress=False)
    assert (whole.results["dropped_messages"] == 0).all()
