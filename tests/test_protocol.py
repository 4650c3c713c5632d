"""The two protocols: presets, the docs table, and what each switch changes (prompts, parsing, rewards, schedule,
memory prompts, recorded results)."""

import pytest

from pmv2nb import config, prompts
from pmv2nb.config import (
    default_value, protocol_changes, protocol_preset, protocol_tag, resolve, setting_value, with_overrides,
)
from pmv2nb.protocol import OFFICIAL

PROTOCOLS = {name: protocol_preset(name) for name in ("official", "paper")}

TINY = resolve("tiny")


def _table() -> dict[str, dict[str, str]]:
    text = (config.repo_root() / "docs" / "protocol.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = {"official": cells[3], "paper": cells[4], "code": cells[1], "why": cells[5]}
    return rows


def _as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_the_docs_table_and_the_presets_agree_and_every_switch_is_a_setting():
    table = _table()
    assert set(PROTOCOLS["official"]) == set(PROTOCOLS["paper"]) == set(table)
    for key, row in table.items():
        setting_value(TINY, key)  # raises on a key that is not a setting
        assert row["code"] and row["why"], key
        for name in ("official", "paper"):
            assert row[name] == _as_text(PROTOCOLS[name][key]), (key, name)


def test_the_paper_protocol_is_the_settings_defaults_and_official_lists_only_differences():
    assert PROTOCOLS["paper"] == {key: default_value(key) for key in OFFICIAL}
    # most switches differ; the few that agree are listed for their documented source (docs/protocol.md)
    assert sum(OFFICIAL[key] != PROTOCOLS["paper"][key] for key in OFFICIAL) >= len(OFFICIAL) - 5
    assert default_value("eval.parser") == "lenient" and default_value("memory.rl.box_forms") == "lenient"
    with pytest.raises(config.ProfileError, match="no default"):
        default_value("name")


def test_a_protocol_sets_its_switches_and_a_changed_switch_is_recorded():
    official = resolve("tiny", {"protocol": "official"})
    assert official.protocol == "official" and protocol_tag(official) == "official"
    assert all(setting_value(official, k) == v for k, v in PROTOCOLS["official"].items())
    assert TINY.protocol == "paper" and not protocol_changes(TINY)
    mixed = resolve("tiny", {"protocol": "official", "eval.parser": "lenient"})
    assert protocol_changes(mixed) == {"eval.parser": "lenient"} and protocol_tag(mixed).startswith("official+")
    with pytest.raises(config.ProfileError, match="unknown protocol"):
        resolve("tiny", {"protocol": "verbatim"})


def test_a_profile_derived_with_a_protocol_gets_its_switches_as_a_resolved_one_does():
    derived = with_overrides(TINY, {"protocol": "official"})
    assert derived == resolve("tiny", {"protocol": "official"}) and protocol_tag(derived) == "official"
    assert derived.eval.parser == "strict"
    # the other overrides apply after the switches, whatever their order, as in resolve
    one_changed = with_overrides(TINY, {"eval.parser": "lenient", "protocol": "official"})
    assert one_changed == resolve("tiny", {"eval.parser": "lenient", "protocol": "official"})
    assert protocol_changes(one_changed) == {"eval.parser": "lenient"}
    assert with_overrides(derived, {"protocol": "paper"}) == TINY


def test_the_command_line_takes_protocol(capsys):
    from pmv2nb.cli import main

    assert main(["profile", "tiny", "--keys", "--protocol", "official"]) == 0
    assert "eval.parser = 'strict'" in capsys.readouterr().out


def test_recall_sentence_switch_changes_the_chat_prompt(benchmark_data):
    from pmv2nb.evaluate.tasks import build_task

    ours = build_task(benchmark_data, 0, "mcq", "32k", recall="people").messages
    theirs = build_task(benchmark_data, 0, "mcq", "32k", recall="preferences").messages
    query_ours, query_theirs = ours[-2]["content"], theirs[-2]["content"]
    assert "people I mentioned" in query_ours and "people" not in query_theirs.split("\n")[-1]
    assert "related preferences" in query_theirs
    assert ours[:-2] == theirs[:-2] and ours[-1] == theirs[-1]  # only the query's request differs


def test_parser_switch():
    from pmv2nb.evaluate.parsing import parse_choice

    assert parse_choice("B. Book the quiet table", strict=False) == "B"  # ours: a leading letter is a choice
    assert parse_choice("B. Book the quiet table", strict=True) is None  # theirs: nothing matched
    assert parse_choice("Answer: the second one", strict=True) == "T"  # theirs reads any letter after "Answer:"
    assert parse_choice("Answer: the second one", strict=False) is None
    assert parse_choice("I weighed A. and B.\nFinal Answer: C", strict=True) == "C"


def test_judge_rubric_switch():
    graded = prompts.judge_messages("Plan my trip", "likes trains", "Take a train.", "graded")[0]["content"]
    strict = prompts.judge_messages("Plan my trip", "likes trains", "Take a train.", "strict")[0]["content"]
    assert "around 0.5 when it is helpful but generic" in graded and "generic is not personalized" in strict
    assert prompts.read_judge(strict) == ("Plan my trip", "likes trains", "Take a train.")
    negative = prompts.judge_messages("q", "Do not remember 'x' in memory", "r", "strict")[0]["content"]
    assert negative == prompts.judge_messages("q", "Do not remember 'x' in memory", "r", "graded")[0]["content"]


def test_sft_prompts_drop_the_think_request_and_grpo_prompts_keep_it(tmp_path):
    from pmv2nb.data import load_profile_split
    from pmv2nb.models import tokenizer_for
    from pmv2nb.train.examples import grpo_prompts, sft_examples

    train = load_profile_split(TINY, "train")
    tokenizer = tokenizer_for("tiny")
    plain, _ = sft_examples(train, tokenizer, 1536, limit=2, progress=False)
    asked, _ = sft_examples(train, tokenizer, 1536, limit=2, think=True, progress=False)
    rl, _ = grpo_prompts(train, tokenizer, 1536, mcq_fraction=1.0, limit=2, progress=False)

    def text(messages):
        return " ".join(m["content"] for m in messages if m["role"] != "assistant")

    assert all("<think>" not in text(e["messages"]) for e in plain)
    assert all("<think>" in text(e["messages"]) for e in asked)
    assert all("<think>" in text(r["prompt"]) for r in rl)
    assert all("\\boxed{" in e["messages"][-1]["content"] for e in plain if e["task"] == "mcq")


def test_sft_switches_pick_the_task_mix_and_the_loss_targets():
    from pmv2nb.data import load_profile_split
    from pmv2nb.models import tokenizer_for
    from pmv2nb.train.examples import split_tasks
    from pmv2nb.train.sft import sft_examples_for, trainer_rows

    tokenizer, train = tokenizer_for("tiny"), load_profile_split(TINY, "train")
    theirs, _ = sft_examples_for(resolve("tiny", {"protocol": "official"}), train, tokenizer, 10, progress=False)
    ours, _ = sft_examples_for(TINY, train, tokenizer, 10, progress=False)
    rows = sorted({e["row"] for e in ours})
    assert len(ours) == 2 * len(rows) == 20 and [e["row"] for e in theirs] == rows  # theirs: one example per row
    assert {e["row"]: e["task"] for e in theirs} == split_tasks(rows, TINY.grpo.mcq_fraction, TINY.seed)
    final = trainer_rows(ours[:1], tokenizer, "final")[0]
    assert final == {"prompt": ours[0]["messages"][:-1], "completion": ours[0]["messages"][-1:]}
    every = trainer_rows(theirs[:1], tokenizer, "all")[0]
    assert set(every) == {"input_ids", "assistant_masks"} and len(every["input_ids"]) == len(every["assistant_masks"])
    reply = len(tokenizer(theirs[0]["messages"][-1]["content"], add_special_tokens=False)["input_ids"])
    assert sum(every["assistant_masks"]) > 3 * reply  # the history's chatbot turns are targets too
    with pytest.raises(ValueError, match="sft.task_mix"):
        sft_examples_for(with_overrides(TINY, {"sft.task_mix": "mixed"}), train, tokenizer, 2, progress=False)
    with pytest.raises(ValueError, match="sft.loss_turns"):
        trainer_rows(ours, tokenizer, "some")


def test_open_reward_think_switch_scores_a_reply_without_thinking_zero(tmp_path):
    from pmv2nb.train.rewards import OpenEndedReward

    columns = dict(task=["open"] * 3, query_text=["Plan a trip"] * 3, preference=["likes trains"] * 3,
                   pref_type=["neutral_preferences"] * 3, sensitive_info=[False] * 3)
    replies = ["Take the train along the coast.", "<think>They like trains.</think>",
               "<think>They like trains.</think> Take the train along the coast."]
    loose = OpenEndedReward("baseline:dense", calls=1)(None, replies, **columns)
    strict = OpenEndedReward("baseline:dense", calls=1, require_think=True)(None, replies, **columns)
    assert loose[0] > 0 and strict[:2] == [0.0, 0.0]
    assert strict[2] == pytest.approx(loose[0])  # the judge reads only the reply after the thinking


def test_grpo_schedule_switches_reach_the_trainer_config():
    from pmv2nb.train.grpo import schedule_args

    ours = schedule_args(TINY.grpo)
    theirs = schedule_args(resolve("tiny", {"protocol": "official"}).grpo)
    assert ours["lr_scheduler_type"] == "linear" and theirs["lr_scheduler_type"] == "constant"
    assert ours["steps_per_generation"] == ours["gradient_accumulation_steps"]  # one update per rollout batch
    assert theirs["steps_per_generation"] == 2 * theirs["gradient_accumulation_steps"]
    assert theirs["max_steps"] == 2 * TINY.grpo.max_steps  # two optimizer updates per rollout batch
    with pytest.raises(ValueError, match="updates_per_batch"):
        schedule_args(with_overrides(TINY, {"grpo.updates_per_batch": 3}).grpo)


def test_memory_prompt_switches(benchmark_data):
    from pmv2nb.memory.agent import notes_from_reply
    from pmv2nb.memory.run import memory_spec, update_query_text

    with_options = update_query_text(benchmark_data, 0, "mcq", "32k", "query_options")
    assert "(a)" in with_options and "\\boxed{" in with_options
    assert update_query_text(benchmark_data, 0, "mcq", "32k", "query") == benchmark_data.questions["query_text"].iat[0]
    assert update_query_text(benchmark_data, 0, "mcq", "32k", "none") is None
    assert memory_spec("hf:tiny", "query_options") == "memory+options:hf:tiny"
    careful = prompts.memory_update_messages("none", "chunk", privacy=True)[0]["content"]
    careless = prompts.memory_update_messages("none", "chunk", privacy=False)[0]["content"]
    assert "private data" in careful and "private data" not in careless
    reply = "<think>Sorting it out.</think>- Likes trains."
    assert notes_from_reply(reply) == "- Likes trains." and notes_from_reply(reply, raw=True) == reply


def test_results_record_their_protocol_and_protocols_keep_separate_rows(benchmark_data, tmp_path):
    from dataclasses import replace

    from pmv2nb.evaluate import run_eval
    from pmv2nb.evaluate.runner import results_path_for
    from pmv2nb.evaluate.suite import profile_settings

    official = profile_settings(resolve("tiny", {"protocol": "official"}), "mcq", "32k")
    paper = profile_settings(TINY, "mcq", "32k")
    assert official.protocol == "official" and paper.protocol == "paper"
    name = results_path_for(benchmark_data, "baseline:bm25", official).name
    assert name == "benchmark-text-32k-mcq-official-baseline-bm25.jsonl"
    assert "official" not in results_path_for(benchmark_data, "baseline:bm25", paper).name
    cache, out = tmp_path / "c.sqlite", tmp_path / "both.jsonl"
    first = run_eval(benchmark_data, "baseline:bm25", replace(official, rows=4), out=out, cache=cache, progress=False)
    assert set(first.results["protocol"]) == {"official"}
    both = run_eval(benchmark_data, "baseline:bm25", replace(paper, rows=4), out=out, cache=cache, progress=False)
    assert both.results.groupby("protocol").size().to_dict() == {"official": 4, "paper": 4}


@pytest.mark.slow
def test_every_stage_runs_under_the_official_protocol_from_the_command_line(tmp_path, capsys):
    import json

    from pmv2nb.cli import main
    from pmv2nb.evaluate import read_results

    common = ["--profile", "tiny", "--protocol", "official"]
    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    assert main(["sft", *common, "--out", str(sft), "--max-steps", "1", "--rows", "2"]) == 0
    assert main(["grpo", *common, "--init", str(sft), "--out", str(grpo), "--max-steps", "1", "--rows", "4",
                 "--set", "grpo.batch_size=2", "--set", "grpo.num_generations=2"]) == 0
    for run in (sft, grpo):
        record = json.loads((run / "run.json").read_text())
        assert record["protocol"] == "official" and record["protocol_changes"] == {}
        assert record["train_prompt"] == {"system": "generic", "recall": False, "max_options": 4}
    assert json.loads((grpo / "run.json").read_text())["settings"]["lr_scheduler"] == "constant"
    import torch

    sft_args = torch.load(sft / "training_args.bin", weights_only=False)  # what the trainer really ran with
    grpo_args = torch.load(grpo / "training_args.bin", weights_only=False)
    assert sft_args.max_grad_norm == 0.5 and grpo_args.lr_scheduler_type == "constant"
    assert json.loads((sft / "run.json").read_text())["loss_turns"] == "all"  # trained on every assistant turn
    out = tmp_path / "memory.jsonl"
    assert main(["memory", "run", *common, "--model", "hf:tiny", "--rows", "2", "--max-chunks", "2",
                 "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]) == 0
    rows = read_results(out)
    assert len(rows) == 2 and set(rows["protocol"]) == {"official"}
    assert set(rows["model"]) == {"memory+options:hf:tiny"}  # updates saw the query with its options
    evaluated = tmp_path / "eval.jsonl"
    assert main(["eval", *common, "--model", f"hf:{grpo}", "--rows", "2", "--out", str(evaluated),
                 "--cache", str(tmp_path / "c.sqlite")]) == 0
    rows = read_results(evaluated)
    assert set(rows["protocol"]) == {"official"} and set(rows["prompt_format"]) == {"boxed"}
    capsys.readouterr()


def test_trained_format_switches_greedy_decoding_and_the_nearest_option_fallback():
    from dataclasses import replace

    from pmv2nb.evaluate.runner import nearest_option, settings_for
    from pmv2nb.evaluate.suite import profile_settings

    theirs = profile_settings(resolve("tiny", {"protocol": "official"}), "mcq", "32k")
    ours = profile_settings(TINY, "mcq", "32k")
    assert settings_for("hf:tiny", replace(theirs, prompt_format="boxed")).sampling.temperature == 0.0
    chat = settings_for("hf:tiny", theirs)  # a base model with no format given is asked in chat
    assert chat.prompt_format == "chat" and chat.sampling.temperature == theirs.sampling.temperature
    assert settings_for("hf:tiny", replace(ours, prompt_format="boxed")).sampling == ours.sampling
    assert theirs.eval.no_letter_fallback == "nearest_option" and ours.eval.no_letter_fallback == "invalid"
    options = ["Book a quiet table by the window.", "Order the spiciest curry on the menu.", "Skip dinner tonight."]
    assert nearest_option("<think>hmm</think>I would order the spiciest curry they have.", options) == "B"


def _five_option_row(data) -> int:
    counts = data.questions["incorrect_answers"].map(len)
    return int(counts.index[counts >= 4][0])


def test_training_prompt_switches_shape_training_and_trained_model_prompts(benchmark_data):
    from pmv2nb.data import load_profile_split
    from pmv2nb.evaluate.tasks import build_task
    from pmv2nb.models import tokenizer_for
    from pmv2nb.train.examples import PromptBuilder

    official = resolve("tiny", {"protocol": "official"}).train_prompt
    train = load_profile_split(TINY, "train")
    row = _five_option_row(train)
    ours = PromptBuilder(train, tokenizer_for("tiny"), 100_000).prompt(row, "mcq")
    theirs = PromptBuilder(train, tokenizer_for("tiny"), 100_000, style=official).prompt(row, "mcq")
    assert ours["messages"][0]["content"] == prompts.TRAIN_SYSTEM
    assert theirs["messages"][0]["content"] == prompts.GENERIC_SYSTEM
    assert ours["messages"][1] == theirs["messages"][1] and ours["messages"][1]["role"] == "system"  # the persona
    query_ours, query_theirs = ours["messages"][-1]["content"], theirs["messages"][-1]["content"]
    assert "conversations" in query_ours and "conversations" not in query_theirs  # no recall request
    assert len(ours["options"]) == 5 and len(theirs["options"]) == 4
    gold = train.questions["correct_answer"].iat[row]
    assert theirs["options"][theirs["option_order"].index(0)] == gold  # the gold answer always stays
    assert set(theirs["options"]) == {gold, *train.questions["incorrect_answers"].iat[row][:3]}
    open_query = PromptBuilder(train, tokenizer_for("tiny"), 100_000, style=official).prompt(row, "open")
    assert open_query["messages"][-1]["content"].endswith(prompts.THINK_SENTENCE)  # the think request moved here

    row = _five_option_row(benchmark_data)
    boxed = build_task(benchmark_data, row, "mcq", "32k", prompt_format="boxed", style=official)
    chat = build_task(benchmark_data, row, "mcq", "32k", prompt_format="chat", style=official)
    assert boxed.n_options == 4 and "(e)" not in boxed.messages[-1]["content"]
    assert boxed.messages[0]["content"] == prompts.GENERIC_SYSTEM
    assert chat.n_options == 5  # the evaluation's own format always shows every option
    with pytest.raises(ValueError, match="train_prompt.system"):
        prompts.boxed_system(style=with_overrides(TINY, {"train_prompt.system": "chatty"}).train_prompt)


def test_a_trained_run_is_asked_in_the_prompt_style_it_recorded(tmp_path):
    import json

    from pmv2nb.evaluate.runner import RunSettings, settings_for

    (tmp_path / "run.json").write_text(json.dumps({
        "prompt_format": "boxed", "train_prompt": {"system": "generic", "recall": False, "max_options": 4}}))
    settings = settings_for(f"hf:{tmp_path}", RunSettings())
    assert settings.prompt_format == "boxed" and settings.train_prompt.system == "generic"
    assert settings.train_prompt.max_options == 4
    assert settings_for("hf:tiny", RunSettings()).train_prompt.system == "instructed"


def test_grpo_long_prompt_switch_drops_rows_instead_of_cutting_them():
    from pmv2nb.data import load_profile_split
    from pmv2nb.models import tokenizer_for
    from pmv2nb.train.examples import grpo_prompts

    train, tokenizer = load_profile_split(TINY, "train"), tokenizer_for("tiny")
    cut, cut_report = grpo_prompts(train, tokenizer, 700, limit=6, progress=False)
    dropped, drop_report = grpo_prompts(train, tokenizer, 700, limit=6, progress=False, long_prompts="drop")
    assert len(cut) == 6 and cut_report.truncated == 6 and not cut_report.dropped_rows
    assert not dropped and drop_report.dropped_rows == 6 and "6 over-long rows left out" in drop_report.summary()
    # past the compute cut but within drop_over: kept, and cut like any row
    kept, report = grpo_prompts(train, tokenizer, 700, limit=6, progress=False, long_prompts="drop", drop_over=16384)
    assert len(kept) == 6 and report.truncated == 6 and not report.dropped_rows
    assert all(r["prompt_tokens"] <= 700 for r in kept)
    with pytest.raises(ValueError, match="long_prompts"):
        grpo_prompts(train, tokenizer, 700, limit=1, progress=False, long_prompts="trim")


def test_memory_sampling_and_answer_cap_switches():
    from pmv2nb.evaluate.suite import profile_settings
    from pmv2nb.memory.run import agent_settings
    from pmv2nb.train.memory_rl import answer_tokens

    official = resolve("tiny", {"protocol": "official"})
    ours = agent_settings(profile_settings(TINY, "mcq", "32k"), TINY.memory).sampling
    theirs = agent_settings(profile_settings(official, "mcq", "32k"), official.memory).sampling
    assert ours == profile_settings(TINY, "mcq", "32k").sampling  # paper: the agent is asked as any model
    assert (theirs.temperature, theirs.top_p, theirs.max_tokens) == (1.0, 0.7, official.memory.memory_tokens)
    assert answer_tokens(TINY.memory) == TINY.memory.rl.max_answer_tokens
    assert answer_tokens(official.memory) == official.memory.memory_tokens


def test_rag_settings_are_part_of_the_result_key_and_file(benchmark_data):

    from pmv2nb.evaluate.runner import results_path_for
    from pmv2nb.evaluate.suite import profile_settings
    from pmv2nb.evaluate.tasks import build_task

    settings = profile_settings(TINY, "mcq", "32k")
    narrow = settings.with_eval(rag_top_k=3)
    task = build_task(benchmark_data, 0, "mcq", "32k")
    assert settings.result_key("rag:baseline:bm25", task) != narrow.result_key("rag:baseline:bm25", task)
    assert settings.result_key("baseline:bm25", task) == narrow.result_key("baseline:bm25", task)
    name = results_path_for(benchmark_data, "rag:baseline:bm25", narrow).name
    assert name.endswith("-w6o2k3-rag-baseline-bm25.jsonl")
    assert "w6o2" not in results_path_for(benchmark_data, "baseline:bm25", narrow).name


def test_the_official_sizes_file_puts_the_authors_numbers_on_the_paper_profile():
    profile = resolve(config_file=config.repo_root() / "configs" / "paper-official.yaml")
    assert profile.name == "paper" and profile.protocol == "official" and not protocol_changes(profile)
    memory = profile.memory
    assert (memory.memory_tokens, memory.rl.batch_size, memory.rl.warmup_steps) == (1024, 16, 20)
    assert profile.eval.open_rows == 500 and profile.eval.judge == "openai:gpt-5-chat"


def test_memory_rl_warm_up_reaches_the_trainer_arguments():
    from transformers import TrainingArguments

    from pmv2nb.train.memory_rl import schedule_args

    warm = TrainingArguments(output_dir="unused", **schedule_args(with_overrides(TINY, {"memory.rl.warmup_steps": 3})
                                                                  .memory.rl))
    assert warm.lr_scheduler_type == "constant_with_warmup" and warm.warmup_steps == 3
    assert TrainingArguments(output_dir="unused", **schedule_args(TINY.memory.rl)).lr_scheduler_type == "constant"


def test_api_switches_reach_the_run_settings_and_both_backends(monkeypatch):
    from dataclasses import replace

    from pmv2nb.backends import ChatRequest
    from pmv2nb.evaluate.cache import CallCache
    from pmv2nb.evaluate.runner import cached_backends
    from pmv2nb.evaluate.suite import profile_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    theirs = profile_settings(resolve("tiny", {"protocol": "official"}), "open", "32k")
    ours = profile_settings(resolve("tiny", {"eval.reasoning_tokens": 500}), "open", "32k")
    assert (theirs.eval.api_sampling, theirs.eval.fit_history) == ("none", "on_error")
    assert (ours.eval.api_sampling, ours.eval.fit_history, ours.eval.reasoning_tokens) == ("capped", "before", 500)
    store = CallCache(":memory:")
    answerer, grader = cached_backends("openai:o4-mini", "openai:gpt-4.1", store, theirs)
    assert answerer.backend.api_sampling == grader.backend.api_sampling == "none"  # the judge is asked alike
    answerer, _ = cached_backends("openai:o4-mini", None, store, ours)
    sent = answerer.backend._arguments(ChatRequest([{"role": "user", "content": "hi"}], ours.sampling))
    assert sent["max_completion_tokens"] == ours.sampling.max_tokens + 500
    local, _ = cached_backends("openai:tiny@http://127.0.0.1:9/v1", None, store, replace(theirs))
    assert local.backend.api_sampling == "capped"  # a local server keeps our sampling under either protocol


def test_reward_switches_reach_the_reward_functions_of_both_rl_stages(tmp_path):
    from pmv2nb.train.rewards import rl_rewards

    official = resolve("tiny", {"protocol": "official"})
    ours = rl_rewards(TINY.grpo, TINY.eval, tmp_path / "c.sqlite")
    theirs = rl_rewards(official.grpo, official.eval, tmp_path / "c.sqlite")
    assert (ours[1].calls, ours[1].require_think, ours[1].rubric, ours[1].score_reader) == (
        3, False, "graded", "last_in_range")
    assert (theirs[1].calls, theirs[1].require_think, theirs[1].rubric, theirs[1].score_reader) == (
        1, True, "strict", "first_clamped")
    memory_ours = rl_rewards(TINY.memory.rl, TINY.eval, tmp_path / "c.sqlite")
    memory_theirs = rl_rewards(official.memory.rl, official.eval, tmp_path / "c.sqlite")
    assert len(memory_ours) == 2 and memory_ours[1].require_think is False  # memory.rl.require_think_open
    assert len(memory_theirs) == 1  # MCQ only under official (memory.rl.mcq_fraction 1.0): no judge at all
    bare = [[{"role": "assistant", "content": "\\boxed{a}"}]]
    loose = rl_rewards(official.grpo, official.eval)[0]
    strict = rl_rewards(with_overrides(official, {"grpo.require_think_mcq": True}).grpo, official.eval)[0]
    assert loose(bare, task=["mcq"], gold_letter=["a"]) == [1.0]
    assert strict(bare, task=["mcq"], gold_letter=["a"]) == [0.0]


def test_memory_update_switches_reach_the_agent(benchmark_data):
    from pmv2nb.backends import ChatResponse
    from pmv2nb.memory.agent import Chunker, run_updates
    from pmv2nb.models import tokenizer_for

    def notes_and_prompts(profile):
        prompts_seen = []

        def rewrite(conversations, tags):
            prompts_seen.extend(c[-1]["content"] for c in conversations)
            return [ChatResponse(text="<think>Sorting.</think>- Likes trains.") for _ in conversations]

        memory = with_overrides(profile, {"memory.max_chunks": 1}).memory
        job = Chunker(benchmark_data, tokenizer_for("tiny"), memory, "32k").job(0)
        return next(iter(run_updates([job], rewrite, memory).values())).memory, prompts_seen

    ours, our_prompts = notes_and_prompts(TINY)
    theirs, their_prompts = notes_and_prompts(resolve("tiny", {"protocol": "official"}))
    assert ours == "- Likes trains." and theirs.startswith("<think>")  # memory.raw_notes
    assert "private data" in our_prompts[0] and "private data" not in their_prompts[0]  # memory.privacy_instruction


def test_sft_switches_reach_the_examples_and_the_trainer_arguments():
    from pmv2nb.data import load_profile_split
    from pmv2nb.models import tokenizer_for
    from pmv2nb.train.sft import sft_examples_for

    official = resolve("tiny", {"protocol": "official"})
    train, tokenizer = load_profile_split(TINY, "train"), tokenizer_for("tiny")

    def asks_to_think(profile):
        examples, _ = sft_examples_for(profile, train, tokenizer, limit=2, progress=False)
        return {"<think>" in " ".join(m["content"] for m in e["messages"][:-1]) for e in examples}

    assert asks_to_think(TINY) == {True} and asks_to_think(official) == {False}  # sft.think_instruction
