"""Reward rules and the answer rules they share with evaluation and memory: the MCQ box, the think
switch, the judge reward, privacy leaks, and the labels the rewards read."""

import math

import pandas as pd
import pytest

from pmv2nb.answers import (
    after_thinking, content_words, is_privacy_row, leaks, protected_detail, reward_labels, strip_thinking,
)
from pmv2nb.data import load_split
from pmv2nb.prompts import TRAIN_LETTERS
from pmv2nb.train.rewards import (
    OpenEndedReward, boxed_letter, completion_text, mcq_reward, mixed_rewards, reward_functions,
)

from fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def train_split(mini_root):
    return load_split(mini_root, "train")


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
                pref_type=[q.pref_type.iat[r] for r in rows],
                sensitive_info=[bool(q.sensitive_info.iat[r]) for r in rows],
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


# --- answers.py: the shared rules --------------------------------------------------------------------------------

def test_after_thinking_keeps_what_follows_the_last_closing_tag_only():
    assert after_thinking("a</think>b</THINK> answer") == " answer"
    assert after_thinking("thinking, then \\boxed{a}") is None
    assert after_thinking("<think>never closed \\boxed{a}") is None


def test_strip_thinking_gap_and_orphan_close_switches():
    text = "x<think>one</think>y"
    assert strip_thinking(text) == "x y"  # evaluation keeps the words apart
    assert strip_thinking(text, gap="") == "xy"  # the memory agent's notes join them
    orphan = "still thinking</think> notes"
    assert strip_thinking(orphan) == " notes"
    assert strip_thinking(orphan, orphan_close=False) == orphan  # the agent keeps a stray closing tag
    assert strip_thinking("answer <think>cut off mid-thought") == "answer "
    assert strip_thinking("a <THINK>x</Think> b") == "a   b"  # tags in any case


def test_content_words_drop_short_words_and_punctuation():
    words = content_words("I'd say: Hiking, at 5am, IS fun!")
    assert words == ["say", "hiking", "fun"]
    assert all(len(w) > 2 and w.islower() for w in content_words("The QUICK brown fox, ok?"))


def test_privacy_rows_are_flagged_by_type_or_by_the_sensitive_column():
    assert is_privacy_row("sensitive_info", False) and is_privacy_row("ask_to_forget", False)
    assert is_privacy_row("stereotypical_pref", True)
    assert not is_privacy_row("stereotypical_pref", False)


def test_protected_detail_prefers_quotes_then_tokens_with_digits():
    quoted = protected_detail("sensitive_info", "Keeps their key private; 'pm-123-abc' must not be repeated")
    assert quoted == ["pm-123-abc"]
    address = protected_detail("sensitive_info", "Keeps their address private; 774 Quarry Road, flat 2B.")
    assert "774" in address and "2B" in address and all(any(c.isdigit() for c in t) for t in address)
    forget = "Do not remember 'the user enjoys board games' in memory"
    assert protected_detail("ask_to_forget", forget) == ["the user enjoys board games"]  # no prev_pref: the quote
    assert protected_detail("ask_to_forget", forget, "Enjoys board games") == ["Enjoys board games"]


def test_leaks_match_verbatim_across_case_and_spacing_or_most_content_words():
    assert leaks("Your number   is 555-0100.", ["555-0100"])
    assert leaks("ENJOYS  BOARD games, right?", ["enjoys board games"])
    detail = ["spends weekends at makers markets downtown"]
    assert leaks("Since markets downtown fill your weekends with makers...", detail)  # reworded, same words
    assert not leaks("Since you like the outdoors...", detail)
    assert not leaks("You like board games", [])  # nothing protected, nothing leaks
    assert not leaks("tea time", ["tea cups"])  # fewer than three content words: verbatim only


def test_reward_labels_copy_the_row_and_blank_a_missing_prev_pref(train_split):
    q = train_split.questions
    for row in (int(q.index[q.prev_pref.isna()][0]), int(q.index[q.prev_pref.notna()][0])):
        labels = reward_labels(train_split, row, "open")
        assert labels["row"] == row and labels["task"] == "open"
        for column in ("question_id", "query_text", "preference", "pref_type"):
            assert labels[column] == q[column].iat[row]
        prev = q.prev_pref.iat[row]
        assert labels["prev_pref"] == ("" if pd.isna(prev) else prev)
        assert labels["sensitive_info"] is bool(q.sensitive_info.iat[row])


# --- train/rewards.py ---------------------------------------------------------------------------------------------

def test_completion_text_reads_strings_and_only_assistant_messages():
    assert completion_text("plain") == "plain"
    messages = [{"role": "user", "content": "ignored"}, {"role": "assistant", "content": "one "},
                {"role": "assistant", "content": None}, {"role": "assistant", "content": "two"}]
    assert completion_text(messages) == "one two"


def test_boxed_letter_with_think_reads_only_after_the_last_closing_tag():
    text = "<think>\\boxed{a}</think> \\boxed{b} <think>\\boxed{c}</think> \\boxed{D}"
    assert boxed_letter(text) == "d"
    assert boxed_letter(text, require_think=True) == "d"
    assert boxed_letter("<think>x</think>\\boxed{b}<think>\\boxed{c}</think>", require_think=True) is None
    assert boxed_letter("no box at all") is None


def test_mcq_reward_rejects_gold_letters_outside_the_training_labels():
    outside = next(chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in TRAIN_LETTERS)
    with pytest.raises(ValueError, match="training labels"):
        mcq_reward([f"\\boxed{{{outside}}}"], ["mcq"], [outside])


def test_reward_list_adds_the_judge_only_for_open_rows():
    only_mcq = reward_functions(None, require_think=True)
    assert [f.__name__ for f in only_mcq] == ["mcq_reward"]
    assert only_mcq[0](["\\boxed{a}"], ["mcq"], ["a"]) == [0.0]  # require_think passed through
    assert only_mcq[0](["</think>\\boxed{a}"], ["mcq"], ["a"]) == [1.0]
    mixed = mixed_rewards(0.8, "baseline:dense", calls=2)
    assert [f.__name__ for f in mixed] == ["mcq_reward", "open_reward"]
    assert isinstance(mixed[1], OpenEndedReward) and mixed[1].calls == 2
    assert [f.__name__ for f in mixed_rewards(1.0, "baseline:dense")] == ["mcq_reward"]  # no open rows, no judge
    with pytest.raises(ValueError, match="need a judge"):
        mixed_rewards(0.5, None)


def test_forgotten_preference_repeated_scores_zero_without_the_judge(train_split, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    q = train_split.questions
    row = int(q.index[q.pref_type == "ask_to_forget"][0])
    with FakeOpenAI(judge_replies=["\\boxed{0.7}"]) as fake:
        reward = OpenEndedReward(f"openai:judge-model@{fake.url}", calls=1, cache=None)
        scores = reward(**_open_batch(q, [row, row], [f"As you said: {q.prev_pref.iat[row]}.", "A fresh idea."]))
        assert scores[0] == 0.0 and math.isclose(scores[1], 0.7)
        assert len(fake.requests) == 1  # only the clean reply reached the judge


@pytest.mark.parametrize("section", ["grpo", "memory.rl"])
def test_judge_concurrency_setting_reaches_the_judge_client(section, tmp_path, monkeypatch):
    """``judge_concurrency`` of either RL stage is the number of judge calls the open-ended reward keeps in flight."""
    from pmv2nb import config
    from pmv2nb.backends.openai_http import OpenAIBackend
    from pmv2nb.config import setting_value
    from pmv2nb.train.rewards import rl_rewards

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    profile = config.resolve("tiny", {f"{section}.judge": "openai:judge-model@http://127.0.0.1:9",
                                      f"{section}.judge_concurrency": 3, f"{section}.mcq_fraction": 0.5})
    (judge,) = [f for f in rl_rewards(setting_value(profile, section), profile.eval, tmp_path / "c.sqlite")
                if isinstance(f, OpenEndedReward)]
    client = judge.backend.backend  # under the call cache
    assert isinstance(client, OpenAIBackend) and client.concurrency == 3
    assert config.resolve("tiny").grpo.judge_concurrency == 8  # the old fixed number stays the default
