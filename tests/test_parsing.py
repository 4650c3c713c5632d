"""Answer and score parsing on outputs shaped like what models really write."""

import pytest

from pmv2nb.evaluate import parse_choice, parse_score

CHOICES = [
    # official cascade
    ("<think>A looks tempting, but no.</think>\nFinal Answer: B", "B"),
    ("The reply that respects the allergy is \\boxed{C}.", "C"),
    ("Final Answer: D", "D"),
    ("Reasoning...\nAnswer: A", "A"),
    ("So the final answer is C.", "C"),
    ("After weighing them, the answer is B because it avoids jargon.", "B"),
    ("Option two reads best.\nD.", "D"),
    # forms seen in practice
    ("**Final Answer:** **B**", "B"),
    ("### Final Answer\n**C**", "C"),
    ("I would go with **(d)** here.", "D"),
    ("The best fit is (c)", "C"),
    ("final answer: a", "A"),
    ("<think>\nthe user is vegan so (b)\n</think>\n\\boxed{b}", "B"),
    ("\\boxed{\\text{A}}", "A"),
    ("\\boxed{B. Suggest a vegan bakery}", "B"),
    ("Final Answer: (C) Dear Sam, ...", "C"),
    ("Option D matches the preference best.", "D"),
    ("b", "B"),
    # later statements win over earlier ones of the same form
    ("Final Answer: A\nWait, I misread. Final Answer: C", "C"),
    # a small model answering by copying the option it picks (the last resort)
    ("A. Ask for things that make staying in nicer, like a blanket", "A"),
    ("**C)** Keep the printed paper delivered", "C"),
    ("B.", "B"),
    # not answers
    ("", None),
    ("A good idea would be to ask first.", None),
    ("I think B. is right", None),
    ("a. lower case openings are too often ordinary words", None),
    ("I am not sure which one the user would like.", None),
    ("the answer is a matter of taste", None),
    ("<think>still deciding between A and B", None),
    ("Answer: Avoid recommending anything.", None),
]


@pytest.mark.parametrize("text, expected", CHOICES)
def test_parse_choice(text, expected):
    assert parse_choice(text) == expected


def test_think_block_content_is_ignored_even_when_it_names_a_letter():
    assert parse_choice("<think>Final Answer: A</think>I pick the second.") is None


def test_closing_think_tag_alone_keeps_only_the_answer_part():
    # chat templates may put <think> in the prompt, so the output starts mid-thought
    assert parse_choice("maybe Final Answer: A ... </think>\nFinal Answer: D") == "D"


@pytest.mark.parametrize("text, expected", [
    ("The reply uses the preference well. \\boxed{0.8}", 0.8),
    ("\\boxed{1}", 1.0),
    ("first \\boxed{0.2} then on reflection \\boxed{0.6}", 0.6),
    ("\\boxed{\\text{0.5}}", 0.5),
    ("<think>\\boxed{0.1}</think> \\boxed{.9}", 0.9),
    ("\\boxed{7}", None),  # outside [0, 1]: not a valid score
    ("Score: 0.7", None),
    ("", None),
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_a_reply_opening_with_a_training_label_is_that_choice_but_an_article_is_not():
    assert parse_choice("b) Bring a dairy-free fruit salad") == "B"  # copied option in the (a)-(d) labels
    assert parse_choice("a) Stay in") == "A"
    assert parse_choice("a dairy-free dessert sounds good") is None  # the article, not an option
    assert parse_choice("b) Bring a salad", strict=True) is None  # the authors' cascade does not read it
