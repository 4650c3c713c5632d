"""Behaviour tables of the authors' answer-reading functions, each row worked out by hand from their code.

Sources (bowen-upenn/PersonaMem-v2, the stored versions read): ``compute_mcq_score`` and the judge's score
reading in ``verl_custom/reward_score.py`` @8d4fbef1364e; the memory-RL reward in
``MemAgent/verl/utils/reward_score/implicit_persona.py`` @5a104e325f74; ``extract_final_answer`` in
``inference.py`` @8d4fbef1364e. The ``official`` protocol must give the authors' result on every row; the ``paper``
column pins down what our own reading gives, so a change to either side shows up here.
"""

import pytest

from pmv2nb.config import resolve
from pmv2nb.evaluate.parsing import parse_choice, parse_score
from pmv2nb.evaluate.runner import read_choice
from pmv2nb.evaluate.suite import profile_settings
from pmv2nb.prompts import BOXED_FORMAT
from pmv2nb.train.rewards import mcq_reading, mcq_reward

OFFICIAL = resolve("tiny", {"protocol": "official"})
PAPER = resolve("tiny", {"protocol": "paper"})

# Four options far apart in meaning, so the nearest one by embedding is never in doubt
OPTIONS = ["Book a quiet vegetarian restaurant with vegan dishes", "Buy a new mountain bike for trail riding",
           "Learn to play jazz piano with online lessons", "Plan a beach holiday in Greece this summer"]
BIKE = "I would get a sturdy bicycle for the forest trails."
PIANO = "Jazz piano lessons online, surely."
BEACH = "A sunny Greek beach holiday sounds right."
VEGAN = "A calm place serving vegan food."


def _reward(settings, reply: str, gold: str) -> float:
    return mcq_reward([reply], ["mcq"], [gold], options=[OPTIONS], **mcq_reading(settings))[0]


# reply, gold letter, the authors' reward (official), ours (paper)
GRPO_MCQ_REWARD = [
    ("\\boxed{a}", "a", 1.0, 1.0),
    ("\\boxed{A}", "a", 1.0, 1.0),  # either case
    ("\\boxed{(b)}", "b", 1.0, 1.0),  # second form
    ("\\boxed{(B)}", "b", 1.0, 1.0),
    ("boxed{c}", "c", 1.0, 0.0),  # third form, no backslash
    ("unboxed{d}", "d", 1.0, 0.0),  # the third form matches inside a longer word
    ("\\boxed{d}", "a", 0.0, 0.0),  # a letter was found, so no fallback
    ("\\boxed{a} then \\boxed{b}", "b", 1.0, 1.0),  # last occurrence of the first form
    ("\\boxed{a} then \\boxed{(b)}", "a", 1.0, 0.0),  # the first form present decides, even before a later box
    ("\\boxed{a} then \\boxed{(b)}", "b", 0.0, 1.0),
    ("\\boxed{(b)} then \\boxed{a}", "a", 1.0, 1.0),
    ("boxed{c} and \\boxed{(d)}", "d", 1.0, 1.0),  # the second form is tried before the third
    ("\\boxed{(a)} \\boxed{(c)}", "c", 1.0, 1.0),
    ("$\\boxed{B}$", "b", 1.0, 1.0),
    ("<think>\\boxed{a}</think>\\boxed{b}", "b", 1.0, 1.0),
    ("<think>\\boxed{a}</think> " + BIKE, "a", 0.0, 1.0),  # the think block is not read; the fallback picks (b)
    ("<think>\\boxed{a}</think> " + BIKE, "b", 1.0, 0.0),
    ("weighing it</think>\\boxed{c}", "c", 1.0, 1.0),  # opening tag in the prompt
    ("<think>x</think> y </think>\\boxed{d}", "d", 1.0, 1.0),  # after the last closing tag
    ("\\boxed{d} </think> " + BIKE, "d", 0.0, 1.0),  # a box before the closing tag does not count there
    ("<THINK>\\boxed{a}</THINK> " + PIANO, "a", 1.0, 1.0),  # the tag must be written in lower case to cut
    ("   <think>long</think>   \\boxed{c}   ", "c", 1.0, 1.0),
    ("\\boxed{ b } " + BEACH, "b", 0.0, 1.0),  # spaces: no form matches, the fallback picks (d)
    ("\\boxed{ b } " + BEACH, "d", 1.0, 0.0),
    ("\\boxed{\\text{B}} " + BEACH, "b", 0.0, 1.0),
    ("\\boxed{b.} " + BEACH, "b", 0.0, 1.0),
    ("\\boxed{e} " + PIANO, "c", 1.0, 0.0),  # e is outside a-d: the fallback decides
    ("\\boxed{ab} " + BIKE, "b", 1.0, 0.0),
    ("\\fbox{a} " + PIANO, "c", 1.0, 0.0),
    (PIANO, "c", 1.0, 0.0),  # no box at all: the nearest option
    (PIANO, "a", 0.0, 0.0),
    (VEGAN, "a", 1.0, 0.0),
    (BEACH, "d", 1.0, 0.0),
    (BIKE, "b", 1.0, 0.0),
    ("", "a", 0.0, 0.0),  # an empty reply scores 0 before anything else
]


@pytest.mark.parametrize("reply, gold, theirs, ours", GRPO_MCQ_REWARD)
def test_grpo_mcq_reward_table(reply, gold, theirs, ours):
    assert _reward(OFFICIAL.grpo, reply, gold) == theirs
    assert _reward(PAPER.grpo, reply, gold) == ours


# reply, gold letter, the authors' memory-RL reward (official), ours (paper)
MEMORY_RL_REWARD = [
    ("\\boxed{a}", "a", 1.0, 1.0),
    ("\\boxed{A}", "a", 1.0, 1.0),
    ("\\boxed{ b }", "b", 1.0, 1.0),  # spaces inside the box are dropped
    ("\\boxed{b\n}", "b", 1.0, 1.0),  # and line breaks
    ("\\boxed{(b)}", "b", 0.0, 1.0),
    ("\\boxed{\\text{B}}", "b", 0.0, 1.0),
    ("\\boxed{\\textbf{d}}", "d", 0.0, 1.0),
    ("\\boxed{b.}", "b", 0.0, 1.0),
    ("\\boxed{ (c) }", "c", 0.0, 1.0),
    ("\\boxed b", "b", 1.0, 0.0),  # the spaced form runs to the end
    ("\\boxed b$ and more", "b", 1.0, 0.0),  # ... or to the next dollar sign
    ("\\boxed b.", "b", 0.0, 0.0),
    ("\\boxed{a} then \\boxed b", "b", 1.0, 0.0),
    ("\\boxed b then \\boxed{c}", "c", 0.0, 1.0),  # a spaced box anywhere takes precedence over braces
    ("\\boxed {a}", "a", 0.0, 0.0),  # a space before the brace makes it the spaced form: "{a}"
    ("\\boxed{a} and \\boxed{c}", "c", 1.0, 1.0),  # the last box
    ("\\boxed{a} and \\boxed{c}", "a", 0.0, 0.0),
    ("\\boxed{B}\\boxed{ b }", "b", 1.0, 1.0),
    ("\\boxed{a}\n\\boxed{\\text{c}}", "c", 0.0, 1.0),
    ("<think>\\boxed{d}</think> no box after", "d", 1.0, 1.0),  # thinking is read too
    ("<think>\\boxed{d}</think>\\boxed{a}", "d", 0.0, 0.0),
    ("$\\boxed{d}$", "d", 1.0, 1.0),
    ("\\boxed{c}} extra }", "c", 1.0, 1.0),  # the content ends at the brace that closes the box
    ("\\boxed{{c}}", "c", 0.0, 0.0),
    ("\\boxed{c", "c", 0.0, 1.0),  # never closed
    ("\\boxedx{a}", "a", 0.0, 0.0),  # the last \boxed must open a brace at once
    ("\\boxed{}", "a", 0.0, 0.0),
    ("\\boxed{ab}", "a", 0.0, 0.0),
    ("\\boxed{e}", "a", 0.0, 0.0),
    ("\\fbox{c}", "c", 0.0, 0.0),  # found, but not a \boxed: their box removal fails, scored 0
    ("the answer is c", "c", 0.0, 0.0),  # no box, no fallback
    ("", "a", 0.0, 0.0),
]


@pytest.mark.parametrize("reply, gold, theirs, ours", MEMORY_RL_REWARD)
def test_memory_rl_reward_table(reply, gold, theirs, ours):
    assert _reward(OFFICIAL.memory.rl, reply, gold) == theirs
    assert _reward(PAPER.memory.rl, reply, gold) == ours


# reply, the letter of their evaluation parser (official, eval.parser strict), ours (paper, lenient); None: no letter
EXTRACT_FINAL_ANSWER = [
    ("\\boxed{d} first, then $\\boxed{a}$", "A", "A"),  # a box between dollar signs is looked for first
    ("$\\boxed{D}$ and $\\boxed{A}$", "D", "A"),  # the first match of the first pattern that matches
    ("\\boxed{d} then \\boxed{a}", "D", "A"),
    ("\\boxed{b}", "B", "B"),
    ("\\boxed{(b)}", None, "B"),
    ("\\boxed{AB}", None, None),
    ("$\\boxed{ b }$", None, "B"),
    ("Final Answer: C", "C", "C"),
    ("final answer: c", "C", "C"),  # case ignored
    ("Final Answer: (C)", None, "C"),
    ("Final Answer: Be sure to pick C", "B", "C"),  # the first letter after the colon, whatever word it starts
    ("Answer: B", "B", "B"),
    ("answer:B", "B", "B"),
    ("My answer: d", "D", "D"),
    ("Answer:\n\nC", "C", "C"),  # the space may be line breaks
    ("Answer: the second one", "T", None),
    ("The final answer is B", "B", "B"),
    ("The answer is \\boxed{c}", "C", "C"),
    ("The answer is d", "D", "D"),
    ("the answer is: B", None, "B"),
    ("I pick B.", "B", "B"),  # a letter and a full stop ending a line
    ("Option A.\nMore text", "A", "A"),  # every line end counts
    ("It is e.", "E", "E"),
    ("I choose a.", "A", "A"),
    ("This is a plan.", None, None),
    ("B. Book a table", None, "B"),
    ("<think>Final Answer: A</think> Final Answer: B", "A", "B"),  # thinking is not removed
    ("Final Answer: A, or rather \\boxed{C}", "C", "C"),  # a box outranks Final Answer
    ("\\boxed{a} ... Final Answer: B", "A", "A"),
    ("No letter here", None, None),
    ("", None, None),
]


@pytest.mark.parametrize("reply, theirs, ours", EXTRACT_FINAL_ANSWER)
def test_evaluation_parser_table(reply, theirs, ours):
    assert parse_choice(reply, strict=OFFICIAL.eval.parser == "strict") == theirs
    assert parse_choice(reply, strict=PAPER.eval.parser == "strict") == ours


# verdict, the authors' score (official), ours (paper; None: set aside, not counted)
JUDGE_SCORE = [
    ("\\boxed{0.7}", 0.7, 0.7),
    ("\\boxed{0.75}", 0.75, 0.75),
    ("\\boxed{0.9999}", 0.9999, 0.9999),
    ("\\boxed{1}", 1.0, 1.0),
    ("\\boxed{0}", 0.0, 0.0),
    ("\\boxed{0.0}", 0.0, 0.0),
    ("\\boxed{00.4}", 0.4, 0.4),
    ("\\boxed{1.}", 1.0, None),
    ("\\boxed{8}", 1.0, None),  # clamped into [0, 1]
    ("\\boxed{10}", 1.0, None),
    ("\\boxed{1.5}", 1.0, None),
    ("\\boxed{ 0.5 }", 0.0, 0.5),  # no spaces in their box
    ("\\boxed{0.5 }", 0.0, 0.5),
    ("\\boxed{ 1 }", 0.0, 1.0),
    ("\\boxed{.5}", 0.0, 0.5),  # digits must come first
    ("\\boxed{+0.5}", 0.0, 0.5),
    ("\\boxed{-0.5}", 0.0, None),
    ("\\boxed{\\text{0.6}}", 0.0, 0.6),
    ("\\boxed{3/5}", 0.0, None),
    ("\\boxed{0,7}", 0.0, None),
    ("\\boxed{Yes}", 0.0, None),
    ("Score: 0.7", 0.0, None),  # only a box is read
    ("no score at all", 0.0, None),
    ("", 0.0, None),
    ("\\boxed{0.2} then \\boxed{0.9}", 0.2, 0.9),  # first box there, last here
    ("\\boxed{2} but I meant \\boxed{0.2}", 1.0, 0.2),
    ("\\boxed{0.5} \\boxed{ 0.6 }", 0.5, 0.6),
    ("<think>\\boxed{0.1}</think>\\boxed{0.8}", 0.1, 0.8),  # thinking is read there, removed here
    ("The score is \\boxed{0.4}.", 0.4, 0.4),
    ("$\\boxed{0.6}$", 0.6, 0.6),
    ("\\boxed{0.3}\n", 0.3, 0.3),
]


@pytest.mark.parametrize("verdict, theirs, ours", JUDGE_SCORE)
def test_judge_score_table(verdict, theirs, ours):
    assert parse_score(verdict, OFFICIAL.eval.judge_score_reader) == theirs
    assert parse_score(verdict, PAPER.eval.judge_score_reader) == ours


# reply of a trained checkpoint (boxed format), the letter their validation reads (official), ours (paper)
VALIDATION_LETTER = [
    ("\\boxed{a}", "A", "A"),
    ("\\boxed{B}", "B", "B"),
    ("\\boxed{(c)}", "C", "C"),
    ("$\\boxed{d}$", "D", "D"),
    ("\\boxed{a} then \\boxed{c}", "C", "C"),  # the last box, where the strict evaluation parser takes the first
    ("\\boxed{d} first, then $\\boxed{a}$", "A", "A"),
    ("\\boxed{(b)} and \\boxed{c}", "C", "C"),
    ("\\boxed{c} and \\boxed{(b)}", "C", "B"),  # the plain form outranks the bracketed one there
    ("\\boxed{(a)} and \\boxed{(d)}", "D", "D"),
    ("boxed{d}", "D", None),
    ("unboxed{b}", "B", None),
    ("boxed{a} and \\boxed{(c)}", "C", "C"),
    ("<think>\\boxed{a}</think>\\boxed{b}", "B", "B"),
    ("<think>\\boxed{a}</think> so that is it", None, None),  # the think block is never read
    ("\\boxed{a} </think> done", None, None),  # before the last closing tag: read by neither
    ("weighing</think>\\boxed{c}", "C", "C"),
    ("<think>x</think> y </think> \\boxed{d}", "D", "D"),
    ("\\boxed{ b }", None, "B"),
    ("\\boxed{\\text{B}}", None, "B"),
    ("\\boxed{b.}", None, "B"),
    ("\\boxed{e}", None, "E"),  # their reader knows a-d only
    ("\\boxed{ab}", None, None),
    ("\\fbox{a}", None, None),
    ("Final Answer: B", None, "B"),  # only boxes there
    ("The answer is (c)", None, "C"),
    ("I pick the first one", None, None),
    ("\\boxed{A} and later \\boxed{b}", "B", "B"),
    ("\\boxed{(D)}", "D", "D"),
    ("\\boxed{c}\n\nBecause you like jazz.", "C", "C"),
    ("", None, None),
]


@pytest.mark.parametrize("reply, theirs, ours", VALIDATION_LETTER)
def test_trained_checkpoint_validation_table(reply, theirs, ours):
    for profile, expected in ((OFFICIAL, theirs), (PAPER, ours)):
        settings = profile_settings(profile, "mcq", "32k", BOXED_FORMAT)
        assert read_choice(reply, settings) == expected


def test_the_official_validation_falls_back_to_the_nearest_option_and_ours_does_not():
    official = profile_settings(OFFICIAL, "mcq", "32k", BOXED_FORMAT)
    assert official.eval.no_letter_fallback == "nearest_option" and official.eval.boxed_reader == "mcq_reward"
    assert profile_settings(PAPER, "mcq", "32k", BOXED_FORMAT).eval.no_letter_fallback == "invalid"
    from pmv2nb.evaluate.parsing import answer_part
    from pmv2nb.evaluate.runner import nearest_option

    assert nearest_option(answer_part("<think>maybe \\boxed{a}</think> " + BEACH), OPTIONS) == "D"


def test_the_fallback_needs_the_options():
    with pytest.raises(ValueError, match="options"):
        mcq_reward([BIKE], ["mcq"], ["b"], no_letter_fallback="nearest_option")


def test_the_memory_agent_answers_boxed_and_is_told_to_leave_the_question_out_under_official():
    from pmv2nb.memory.run import agent_run_settings
    from pmv2nb.prompts import memory_update_messages

    for profile, answer_format, told, initial in ((OFFICIAL, "boxed", True, "No previous memory"),
                                                  (PAPER, "chat", False, "No previous memory.")):
        settings = profile_settings(profile, "mcq", "32k", "chat")
        assert agent_run_settings("hf:tiny", settings, profile.memory).prompt_format == answer_format
        memory = profile.memory
        update = memory_update_messages(memory.initial_memory, "Message 1 (user): hi", "Which? (a) x (b) y",
                                        memory.privacy_instruction, memory.no_query_in_notes)[0]["content"]
        assert ("answer choices" in update) is told and memory.initial_memory == initial
    paper_boxed = profile_settings(PAPER, "mcq", "32k", BOXED_FORMAT)
    assert agent_run_settings("hf:tiny", paper_boxed, PAPER.memory).prompt_format == BOXED_FORMAT
