"""The 27 columns of the PersonaMem-v2 question tables and how each one is encoded.

The CSV mixes encodings: ``user_query`` is a Python literal (so a text with an apostrophe comes
back in double quotes), ``short_persona`` is a dict literal in benchmark rows but a plain string
in real val/train rows, ``incorrect_answers`` and the evidence snippet are JSON, booleans are the
strings "True"/"False", and the 128k link may be empty. Topic labels mix case, so grouping goes
through :func:`topic_key`.
Every parser here turns one cell into a typed value or raises :class:`DataError` naming the
file, the row and the column, so a broken table never loads half-right.
"""

from __future__ import annotations

import ast
import json
from typing import Any, Callable

from ..messages import check_content

COLUMNS: tuple[str, ...] = (
    "persona_id",
    "chat_history_32k_link",
    "chat_history_128k_link",
    "raw_persona_file",
    "short_persona",
    "expanded_persona",
    "user_query",
    "correct_answer",
    "incorrect_answers",
    "topic_query",
    "preference",
    "topic_preference",
    "conversation_scenario",
    "pref_type",
    "related_conversation_snippet",
    "who",
    "updated",
    "prev_pref",
    "sensitive_info",
    "total_tokens_in_chat_history_32k",
    "total_tokens_in_chat_history_128k",
    "distance_from_related_snippet_to_query_32k",
    "distance_from_related_snippet_to_query_128k",
    "num_persona_relevant_tokens_32k",
    "num_persona_irrelevant_tokens_32k",
    "num_persona_relevant_tokens_128k",
    "num_persona_irrelevant_tokens_128k",
)

PREF_TYPES: tuple[str, ...] = (
    "stereotypical_pref",
    "anti_stereotypical_pref",
    "neutral_preferences",
    "therapy_background",
    "health_and_medical_conditions",
    "ask_to_forget",
    "sensitive_info",
)

SCENARIOS: tuple[str, ...] = (
    "personal_email",
    "professional_email",
    "creative_writing",
    "professional_writing",
    "chat_message",
    "translation",
    "trouble_consult",
    "social_media_post",
    "knowledge_query",
)

WHO_VALUES: tuple[str, ...] = ("self", "others")
CONTEXT_SIZES: tuple[str, ...] = ("32k", "128k")
SPLITS: tuple[str, ...] = ("benchmark", "train", "val")
MODALITIES: tuple[str, ...] = ("text", "multimodal")


class DataError(ValueError):
    """Bad input, located: which file, which row (0-based, as in the loaded table) and which column."""

    def __init__(self, message: str, file: str | None = None, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.reason = file, row, column, message
        where = ", ".join(
            part for part in (
                str(file) if file else "",
                f"row {row}" if row is not None else "",
                f"column {column!r}" if column else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


def parse_python_literal(text: str) -> Any:
    """A cell written with Python's ``repr`` (single quotes, or double ones around apostrophes)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise ValueError(f"not a Python literal ({type(err).__name__}): {_preview(text)}") from None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at character {err.pos}): {_preview(text)}") from None


def parse_message(text: str) -> dict:
    """``user_query``: a Python dict literal with a role and a content (a string or content parts)."""
    value = parse_python_literal(text)
    if not isinstance(value, dict) or "role" not in value or "content" not in value:
        raise ValueError(f"expected a dict with 'role' and 'content', got {_preview(text)}")
    check_content(value["content"])
    return value


def parse_messages(text: str) -> list[dict]:
    """``related_conversation_snippet``: a JSON list of {role, content} messages."""
    value = parse_json(text)
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty JSON list of messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"message {i} is not a dict with 'role' and 'content'")
        check_content(message["content"])
    return value


def parse_answer_list(text: str) -> list[str]:
    """``incorrect_answers``: a JSON list of distractor strings (3 in most rows, 4 in some ask_to_forget rows)."""
    value = parse_json(text)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"expected a non-empty JSON list of non-empty strings, got {_preview(text)}")
    return value


def parse_bool(text: str) -> bool:
    """The strings True/False (any case); pandas round trips write them this way."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"expected 'True' or 'False', got {_preview(text)}")


def parse_int(text: str) -> int:
    """A count, tolerating the ``123.0`` form a float column leaves behind."""
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {_preview(text)}") from None
    if number != int(number):
        raise ValueError(f"expected an integer, got {_preview(text)}")
    return int(number)


def parse_optional_int(text: str) -> int | None:
    """Token counts of the 128k history are empty where a persona has no 128k history."""
    return None if not text.strip() else parse_int(text)


def parse_short_persona(text: str) -> str:
    """``short_persona``: the persona sentence, from ``{'persona': '...'}`` or a plain string.

    Real benchmark rows use the dict literal and real val rows the bare sentence. Only a cell that
    starts with ``{`` is read as a literal, so a sentence that happens to parse as Python stays text.
    """
    if not text.strip():
        raise ValueError("is empty")
    if not text.lstrip().startswith("{"):
        return text
    value = parse_python_literal(text)
    if isinstance(value, dict) and isinstance(value.get("persona"), str):
        return value["persona"]
    raise ValueError(f"expected a plain string or a dict literal with a 'persona' string, got {_preview(text)}")


def topic_key(label: str) -> str:
    """A grouping key for topic labels, which mix case and separators (``Health``, ``health_and_medical``)."""
    return " ".join(label.replace("_", " ").split()).casefold()


def parse_optional_text(text: str) -> str | None:
    return text if text.strip() else None


def parse_required_text(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty")
    return text


def parse_choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {_preview(text)}")
        return text

    return parse


# How each column is typed on load. Columns that are plain text keep their string.
PARSERS: dict[str, Callable[[str], Any]] = {
    "persona_id": parse_int,
    "chat_history_32k_link": parse_required_text,
    "chat_history_128k_link": parse_optional_text,
    "short_persona": parse_short_persona,
    "expanded_persona": parse_json,
    "user_query": parse_message,
    "correct_answer": parse_required_text,
    "incorrect_answers": parse_answer_list,
    "preference": parse_required_text,
    "related_conversation_snippet": parse_messages,
    "who": parse_choice(WHO_VALUES),
    "updated": parse_bool,
    "prev_pref": parse_optional_text,
    "sensitive_info": parse_bool,
    "total_tokens_in_chat_history_32k": parse_int,
    "total_tokens_in_chat_history_128k": parse_optional_int,
    "distance_from_related_snippet_to_query_32k": parse_int,
    "distance_from_related_snippet_to_query_128k": parse_optional_int,
    "num_persona_relevant_tokens_32k": parse_int,
    "num_persona_irrelevant_tokens_32k": parse_int,
    "num_persona_relevant_tokens_128k": parse_optional_int,
    "num_persona_irrelevant_tokens_128k": parse_optional_int,
}


def _preview(text: Any, width: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= width else text[: width - 3] + "..."
