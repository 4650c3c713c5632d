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
    r"\$?\\boxed\{([A-Z])\}\$?",
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


def parse_score(text: str | None) -> float | None:
    """A judge's score: the last ``\\boxed{number}`` within [0, 1], else ``None``."""
    if not text:
        return None
    matches = _BOXED_NUMBER.findall(strip_thinking(text))
    if not matches:
        return None
    value = float(matches[-1])
    return value if 0.0 <= value <= 1.0 else None
