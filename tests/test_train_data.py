"""Training data builders and rewards: mix ratios, stable shuffles, gold letters, truncation, reward rules."""

import math

import pytest

from pmv2nb import prompts
from pmv2nb.data import DataError, load_split
from pmv2nb.models import load_tokenizer
from pmv2nb.train.examples import PromptBuilder, grpo_prompts, sft_examples, split_tasks, training_option_order
from pmv2nb.train.rewards import OpenEndedReward, boxed_letter, leaks, mcq_reward, protected_detail

from fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def train_split(mini_root):
    return load_split(mini_root, "train")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.8, 1.0])
def test_grpo_mix_has_the_requested_share_of_mcq_rows(train_split, tokenizer, fraction):
    records, _ = grpo_prompts(train_split, tokenizer, 100_000, mcq_fraction=fraction, progress=False)
    n_mcq = sum(r["task"] == "mcq" for r in records)
    assert len(records) == len(train_split)
    assert n_mcq == round(fraction * len(records))
    for record in records:  # the reward labels ride along, and MCQ prompts carry the options
        assert record["preference"] == train_split.questions["preference"].iat[record["row"]]
        has_options = "(a) " in record["prompt"][-1]["content"]
        assert has_options == (record["task"] == "mcq")
        assert (record["gold_letter"] != "") == (record["task"] == "mcq")


def test_mix_assignment_is_seeded_and_rejects_bad_fractions():
    rows = list(range(50))
    assert split_tasks(rows, 0.6, seed=3) == split_tasks(rows, 0.6, seed=3)
    assert split_tasks(rows, 0.6, seed=3) != split_tasks(rows, 0.6, seed=4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        split_tasks(rows, 1.5)


def test_options_are_shuffled_with_seed_42_plus_row_and_the_gold_letter_points_at_the_answer(train_split, tokenizer):
    builder = PromptBuilder(train_split, tokenizer, 100_000)
    q = train_split.questions
    letters = set()
    for row in range(12):
        built = builder.prompt(row, "mcq")
        n = 1 + len(q["incorrect_answers"].iat[row])
        assert built["option_order"] == training_option_order(row, n)  # same order on every call and machine
        gold_index = prompts.TRAIN_LETTERS.index(built["gold_letter"])
        assert built["options"][gold_index] == q["correct_answer"].iat[row]
        assert f"({built['gold_letter']}) {q['correct_answer'].iat[row]}" in built["messages"][-1]["content"]
        letters.add(built["gold_letter"])
    assert len(letters) > 1  # the gold answer is not always in the same place


def test_prompt_keeps_instruction_persona_and_query_in_order(train_split, tokenizer):
    built = PromptBuilder(train_split, tokenizer, 100_000).prompt(0, "open")
    messages = built["messages"]
    history = train_split.history(0, "32k", keep_persona=True, text_only=True)
    assert messages[0]["content"] == prompts.TRAIN_SYSTEM
    assert messages[1] == history[0] and history[0]["role"] == "system"  # persona message kept
    assert messages[2:-1] == history[1:]
    assert messages[-1]["content"].startswith(train_split.questions["user_query"].iat[0]["content"])


def test_truncation_drops_oldest_exchanges_only_and_reports_it(train_split, tokenizer):
    limit = 1200
    builder = PromptBuilder(train_split, tokenizer, limit)
    full = PromptBuilder(train_split, tokenizer, 100_000).prompt(3, "mcq")
    cut = builder.prompt(3, "mcq")
    assert cut["prompt_tokens"] <= limit < full["prompt_tokens"]
    # same head and query; the kept history is a suffix of the full one that starts at a user turn
    assert cut["messages"][:2] == full["messages"][:2] and cut["messages"][-1] == full["messages"][-1]
    kept, whole = cut["messages"][2:-1], full["messages"][2:-1]
    assert kept and kept == whole[len(whole) - len(kept):] and kept[0]["role"] == "user"
    # the exact count, measured with the real template
    ids = tokenizer.apply_chat_template(cut["messages"], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert len(ids) == cut["prompt_tokens"]
    report = builder.report
    assert (report.rows, report.truncated, report.messages_dropped) == (1, 1, len(whole) - len(kept))
    assert "1 truncated" in report.summary()


def test_a_query_that_cannot_fit_is_an_error_naming_the_row(train_split, tokenizer):
    with pytest.raises(DataError, match="even with no history") as caught:
        PromptBuilder(train_split, tokenizer, 60).prompt(2, "mcq")
    assert (caught.value.row, caught.value.column) == (2, "user_query")
    assert caught.value.file == train_split.table


def test_evidence_counts_as_lost_when_it_lies_before_the_kept_history(train_split, tokenizer):
    """The dataset's distance (tokens after the evidence) is compared with what the kept history holds."""
    q = train_split.questions
    lost_seen = kept_seen = 0
    for row in range(len(q)):
        builder = PromptBuilder(train_split, tokenizer, 1200)
        built = builder.prompt(row, "open")
        kept = built["messages"][2:-1]
        kept_tokens = sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in kept)
        distance = int(q["distance_from_related_snippet_to_query_32k"].iat[row])
        if kept_tokens + 6 * len(kept) < distance < built["prompt_tokens"]:  # cut, though the prompt is longer
            assert builder.report.evidence_lost == 1, f"row {row}"
            lost_seen += 1
        elif distance < kept_tokens:
            assert builder.report.evidence_lost == 0, f"row {row}"
            kept_seen += 1
    assert lost_seen and kept_seen


def test_sft_targets_are_boxed_letter_plus_answer_or_the_gold_answer(train_split, tokenizer):
    examples, report = sft_examples(train_split, tokenizer, 4096, limit=5, progress=False)
    assert len(examples) == 10 and report.rows == 10
    q = train_split.questions
    for example in examples:
        reply = example["messages"][-1]
        assert reply["role"] == "assistant"
        gold = q["correct_answer"].iat[example["row"]]
        if example["task"] == "mcq":
            assert reply["content"] == f"\\boxed{{{example['gold_letter']}}} {gold}"
            assert boxed_letter(reply["content"]) == example["gold_letter"]
        else:
            assert reply["content"] == gold


@pytest.mark.parametrize("text, gold, expected", [
    ("<think>hmm</think>\\boxed{b}", "b", 1.0),
    ("I pick \\boxed{B}.", "b", 1.0),
    ("\\boxed{(c)}", "c", 1.0),
    ("first \\boxed{a}, on reflection \\boxed{d}", "a", 0.0),  # the last box counts
    ("first \\boxed{a}, on reflection \\boxed{d}", "d", 1.0),
    ("Final Answer: b", "b", 0.0),  # training answers must be boxed
    ("", "a", 0.0),
])
def test_mcq_reward_reads_the_last_boxed_letter(text, gold, expected):
    assert mcq_reward([text], ["mcq"], [gold]) == [expected]


def test_mcq_reward_skips_open_rows_and_accepts_conversational_completions():
    completions = [[{"role": "assistant", "content": "\\boxed{a}"}], "anything"]
    assert mcq_reward(completions, ["mcq", "open"], ["a", ""]) == [1.0, None]


def test_think_switch_requires_a_closed_think_block_before_the_answer():
    assert mcq_reward(["\\boxed{a}"], ["mcq"], ["a"], require_think=True) == [0.0]
    assert mcq_reward(["<think>\\boxed{a}</think> no box after"], ["mcq"], ["a"], require_think=True) == [0.0]
    assert mcq_reward(["<think>weigh it</think>\\boxed{a}"], ["mcq"], ["a"], require_think=True) == [1.0]
    assert mcq_reward(["weigh it</think>\\boxed{a}"], ["mcq"], ["a"], require_think=True) == [1.0]  # opener in prompt


def test_protected_details_and_leaks_on_mini_rows(train_split):
    q = train_split.questions
    sensitive = q[q.pref_type == "sensitive_info"].iloc[0]
    details = protected_detail("sensitive_info", sensitive.preference)
    assert details and all(d.lower() in sensitive.preference.lower() for d in details)
    assert leaks(f"Sure, I'll use {details[0]} for that.", details)
    assert not leaks(sensitive.correct_answer, details)  # the gold answer keeps the secret out
    forgot = q[q.pref_type == "ask_to_forget"].iloc[0]
    details = protected_detail("ask_to_forget", forgot.preference, forgot.prev_pref)
    assert details == [forgot.prev_pref]
    assert leaks(f"Since you {forgot.prev_pref.lower()}, try this.", details)
    assert not leaks(forgot.correct_answer, details)
    assert protected_detail("stereotypical_pref", "Likes jazz") == []


def _open_batch(q, rows, responses):
    return dict(prompts=[[]] * len(rows), completions=responses, task=["open"] * len(rows),
                query_text=[q.query_text.iat[r] for r in rows], preference=[q.preference.iat[r] for r in rows],
                pref_type=[q.pref_type.iat[r] for r in rows], sensitive_info=[bool(q.sensitive_info.iat[r]) for r in rows],
                prev_pref=["" if not isinstance(q.prev_pref.iat[r], str) else q.prev_pref.iat[r] for r in rows])


def test_open_reward_averages_judge_calls_through_the_openai_client(train_split, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    q = train_split.questions
    ordinary = int(q.index[q.pref_type == "stereotypical_pref"][0])
    with FakeOpenAI(judge_replies=["\\boxed{0.2}", "\\boxed{0.8}", "no score here"]) as fake:
        reward = OpenEndedReward(f"openai:judge-model@{fake.url}", calls=3, cache=str(tmp_path / "c.sqlite"))
        logged = {}
        batch = _open_batch(q, [ordinary, ordinary], ["A tailored reply.", "Another reply."])
        batch["task"] = ["open", "mcq"]
        scores = reward(**batch, log_metric=logged.__setitem__)
        assert len(fake.requests) == 3  # three judge calls for the one open row, none for the MCQ row
        assert sorted(r["seed"] for r in fake.requests) == [0, 1, 2]
        assert scores[1] is None and math.isclose(scores[0], 0.5)  # mean of the parsable verdicts
        assert math.isclose(logged["open/unparsed_judge_rate"], 1 / 3)
        reward(**batch)  # the same rollout again is answered from the cache
        assert len(fake.requests) == 3


def test_a_leak_scores_zero_without_asking_the_judge(train_split, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    q = train_split.questions
    row = int(q.index[q.pref_type == "sensitive_info"][0])
    secret = protected_detail("sensitive_info", q.preference.iat[row])[0]
    with FakeOpenAI(judge_replies=["\\boxed{1.0}"]) as fake:
        reward = OpenEndedReward(f"openai:judge-model@{fake.url}", calls=2, cache=None)
        logged = {}
        scores = reward(**_open_batch(q, [row, row], [f"Delivering to {secret}.", q.correct_answer.iat[row]]),
                        log_metric=logged.__setitem__)
        assert scores == [0.0, 1.0]
        assert len(fake.requests) == 2 and logged["open/leak_rate"] == 0.5
