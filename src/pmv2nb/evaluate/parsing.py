"""Turn free-form model output into an option letter or a judge score.

The cascade follows the benchmark's official order (think blocks removed, then ``\\boxed{}``,
``Final Answer:``, ``Answer:``, "the answer is", a trailing ``X.``), widened with forms real models
emit: markdown bold, parenthesised and lower-case letters, the training style ``\\boxed{a}``, and
as a last resort a reply that opens with ``B.`` (small models answer by copying an option).
Within one pattern the last occurrence wins, since models restate options before concluding.
Anything unparsable returns ``None``; callers keep the raw text and count it as invalid.
"""

from __future__ import annotations

import re

from ..answers import strip_thinking

_LETTER = r"\(?\s*([A-Ja-j])\s*\)?"
_AFTER = r"(?![A-Za-z0-9])"

# ``\boxed{b}``, ``\boxed{(b)}``, ``\boxed{\text{B}}``: the training answer format, and the first form trusted below
BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*" + _LETTER + _AFTER)

# pattern, and whether a lower-case letter is trusted without further punctuation
_CASCADE: list[tuple[re.Pattern, bool]] = [
    (BOXED_LETTER, True),
    (re.compile(r"final\s+answer\s*(?:is)?\s*[:：\-]?[\s*_`#]*" + _LETTER + _AFTER, re.I), True),
    (re.compile(r"(?<![a-z])answer\s*[:：][\s*_`]*" + _LETTER + _AFTER, re.I), True),
    (re.compile(r"answer\s+is\s*:?[\s*_`]*" + _LETTER + _AFTER, re.I), False),
    (re.compile(r"\*\*\s*(?:option\s+)?" + _LETTER + r"\s*[.):]?\s*\*\*", re.I), True),
    (re.compile(r"\b(?:option|choice)\s+" + _LETTER + _AFTER, re.I), False),
    (re.compile(r"\(([A-Ja-j])\)"), True),
    (re.compile(r"(?:^|\s)([A-Ja-j])\s*[.)]?\s*$"), False),
]
# Last resort: a reply that opens with a capital letter and a full stop or bracket ("B. <option text>")
# chose that option; small models answer by copying the option they pick. The first one counts.
_LEADING_LETTER = re.compile(r"^[\s*_`#]*\(?([A-J])[.):](?:\s|$)")
# ... or, in the training format's labels, a lower-case letter closed by a bracket ("b) <option text>"),
# which unlike a bare "a" cannot be the article
_LEADING_LABEL = re.compile(r"^[\s*_`#]*\(?([a-j])\)(?:\s|$)")


def _trusted(match: re.Match, text: str, lower_ok: bool) -> bool:
    letter = match.group(1)
    if letter.isupper() or lower_ok:
        return True
    # a bare lower-case "a" is usually the article: accept it only when punctuation frames it
    before = text[:match.start(1)].rstrip(" *_`")
    after = text[match.end(1):].lstrip(" *_`")
    return before.endswith("(") or after[:1] in {".", ")", ":", ""} or after.startswith("\n")


# The authors' own cascade (``eval.parser = "strict"``): the first pattern that matches anywhere wins, with
# its first occurrence, case ignored, every line an end of line for the last rule. Their code (inference.py
# @8d4fbef) does not remove think blocks before it, and finds nothing else.
_STRICT_CASCADE = [re.compile(pattern, re.I | re.M) for pattern in (
    r"\$\\boxed\{([A-Z])\}\$",  # a box between dollar signs is looked for first, so it wins over an earlier bare one
    r"\\boxed\{([A-Z])\}",
    r"final answer:\s*([A-Z])",
    r"answer:\s*([A-Z])",
    r"final answer is\s*\$?\\boxed\{([A-Z])\}\$?",
    r"final answer is\s*([A-Z])",
    r"the answer is\s*\$?\\boxed\{([A-Z])\}\$?",
    r"the answer is\s*([A-Z])",
    r"\b([A-Z])\.\s*$",
)]


def parse_choice_strict(text: str | None) -> str | None:
    """The letter by the authors' first-match cascade, upper-cased, or ``None``."""
    for pattern in _STRICT_CASCADE:
        match = pattern.search(text or "")
        if match:
            return match.group(1).upper()
    return None


def parse_choice(text: str | None, strict: bool = False) -> str | None:
    """The option letter a model chose, upper-cased, or ``None`` when no form of the cascade matches.

    ``strict`` uses the authors' cascade alone (:func:`parse_choice_strict`).
    """
    if strict:
        return parse_choice_strict(text)
    if not text:
        return None
    body = strip_thinking(text).strip()
    for pattern, lower_ok in _CASCADE:
        matches = [m for m in pattern.finditer(body) if _trusted(m, body, lower_ok)]
        if matches:
            return matches[-1].group(1).upper()
    leading = _LEADING_LETTER.match(body) or _LEADING_LABEL.match(body)
    return leading.group(1).upper() if leading else None


_BOXED_NUMBER = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([-+]?\d*\.?\d+)\s*\}?\s*\}")
# The authors' judge box: digits right after the brace, an optional point and more digits, then the brace
_TIGHT_BOXED_NUMBER = re.compile(r"\\boxed\{(\d+\.?\d*)\}")
SCORE_READERS = ("last_in_range", "first_clamped")


def parse_score(text: str | None, reader: str = "last_in_range") -> float | None:
    """A judge's score, or ``None`` when it gave none that counts (``eval.judge_score_reader``).

    ``last_in_range`` (ours): the last ``\\boxed{number}`` of the reply without its thinking, spaces inside the
    box allowed, and only a number within [0, 1]. ``first_clamped`` (the authors' reward code): the first box
    whose content is plain digits (no sign, no spaces, no leading point), clamped to [0, 1]; a reply without
    one scores 0 rather than being set aside.
    """
    if reader == "first_clamped":
        match = _TIGHT_BOXED_NUMBER.search((text or "").strip())
        return min(1.0, max(0.0, float(match.group(1)))) if match else 0.0
    if reader != "last_in_range":
        raise ValueError(f"eval.judge_score_reader must be one of {SCORE_READERS}, got {reader!r}")
    if not text:
        return None
    matches = _BOXED_NUMBER.findall(strip_thinking(text))
    if not matches:
        return None
    value = float(matches[-1])
    return value if 0.0 <= value <= 1.0 else None


# --- the letter in a boxed (training-format) reply, as the RL rewards and trained-model validation read it ---

BOX_SCOPES = ("anywhere", "after_think")
BOX_FORMS = ("lenient", "pattern", "last_box")
_THINK_END = "</think>"
# ``pattern`` forms, in the order they are tried: the first form found anywhere decides, its last occurrence wins
_PATTERN_FORMS = [re.compile(r"\\boxed\{([a-dA-D])\}"), re.compile(r"\\boxed\{\(([a-dA-D])\)\}"),
                  re.compile(r"boxed\{([a-dA-D])\}")]
_SPACED_BOX = "\\boxed "


def answer_part(text: str, scope: str = "after_think") -> str:
    """What a reward reads of a reply: under ``after_think`` the text after the last ``</think>`` (written exactly
    so), else all of it; stripped of surrounding space either way."""
    if scope not in BOX_SCOPES:
        raise ValueError(f"box scope must be one of {BOX_SCOPES}, got {scope!r}")
    cut = text.rfind(_THINK_END) if scope == "after_think" else -1
    return (text[cut + len(_THINK_END):] if cut >= 0 else text).strip()


def _last_box_content(text: str) -> str | None:
    """The content of the last box, read as the authors' memory-RL reward reads it.

    A ``\\boxed `` followed by a space anywhere in the text takes precedence: its content runs from the last
    such marker to the next dollar sign (or the end). Otherwise the last ``\\boxed`` must open a brace right
    away, and its content runs to the brace that closes it; anything else has no content.
    """
    if _SPACED_BOX in text:
        return text.split(_SPACED_BOX)[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0 or not text.startswith("\\boxed{", start):
        return None
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if text[end] == "}" and depth == 0:
            return text[start + len("\\boxed{"):end]
    return None


def boxed_choice(text: str, forms: str = "lenient", scope: str = "anywhere") -> str | None:
    """The lower-case letter a boxed-format reply chose, or ``None`` when the reader finds none.

    ``forms`` says which boxes count: ``lenient`` (ours: ``\\boxed{b}``, ``\\boxed{(b)}``, ``\\boxed{ b }``,
    ``\\boxed{\\text{B}}``, ``\\boxed{b.}``; the last one wins), ``pattern`` (the authors' GRPO reward: exactly
    ``\\boxed{b}``, then ``\\boxed{(b)}``, then ``boxed{b}``, letters a-d; the first form present decides and
    its last occurrence wins) or ``last_box`` (the authors' memory-RL reward: the whole content of the last box,
    spaces and line breaks dropped, must be one letter). ``scope`` (:func:`answer_part`) says where to look.
    """
    if forms not in BOX_FORMS:
        raise ValueError(f"box forms must be one of {BOX_FORMS}, got {forms!r}")
    text = answer_part(text, scope) if scope == "after_think" else text
    if forms == "lenient":
        matches = BOXED_LETTER.findall(text)
        return matches[-1].lower() if matches else None
    if forms == "pattern":
        for pattern in _PATTERN_FORMS:
            matches = pattern.findall(text)
            if matches:
                return matches[-1].lower()
        return None
    content = _last_box_content(text)
    letter = None if content is None else content.replace(" ", "").replace("\n", "").lower()
    return letter if letter is not None and len(letter) == 1 and letter.isalpha() else None
