"""Chat histories: one JSON file per persona, loaded once and shared by all of its questions.

A benchmark split has about 25 questions per persona and every one of them points at the same
history file, so the store keeps one parsed copy per file and hands out views of it. A view can
keep the persona system message (the long-context evaluation does) or drop it (the memory agent
and retrieval baselines do); either way the message dicts are the stored ones, not copies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..messages import check_content, content_text
from .columns import DataError
from .sources import HubMirror, LocalMirror


@dataclass(frozen=True)
class ChatHistory:
    link: str
    metadata: dict
    messages: tuple[dict, ...]

    @property
    def has_persona_message(self) -> bool:
        return bool(self.messages) and self.messages[0].get("role") == "system"

    @property
    def persona_message(self) -> dict | None:
        return self.messages[0] if self.has_persona_message else None

    def view(self, keep_persona: bool = True) -> list[dict]:
        """The messages, with or without the leading persona system message (same dicts, new list)."""
        start = 0 if keep_persona or not self.has_persona_message else 1
        return list(self.messages[start:])

    def text_view(self, keep_persona: bool = True) -> list[dict]:
        """Messages with every content reduced to text, for models that read no images."""
        return [{"role": m["role"], "content": content_text(m["content"])} for m in self.view(keep_persona)]

    def __len__(self) -> int:
        return len(self.messages)


def parse_history(payload: Any) -> tuple[dict, tuple[dict, ...]]:
    """Validate a history file's JSON: ``{"metadata": {...}, "chat_history": [{role, content}, ...]}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("chat_history"), list):
        raise ValueError("expected a JSON object with a 'chat_history' list")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be a JSON object")
    for i, message in enumerate(payload["chat_history"]):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"chat_history[{i}] is not an object with 'role' and 'content'")
        try:
            check_content(message["content"])
        except ValueError as err:
            raise ValueError(f"chat_history[{i}]: {err}") from None
    return metadata, tuple(payload["chat_history"])


def _read_json(path) -> Any:
    """The parsed file; a ValueError (bad JSON or bad UTF-8) when its bytes do not form a whole document."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class HistoryStore:
    """Loads each history file at most once per store and keeps it for every row that links to it."""

    def __init__(self, source: LocalMirror | HubMirror):
        self.source = source
        self._loaded: dict[str, ChatHistory] = {}

    def get(self, link: str, *, table: str | None = None, row: int | None = None,
            column: str | None = None) -> ChatHistory:
        """The history behind ``link``; errors name the table row and column that pointed at it."""
        if link in self._loaded:
            return self._loaded[link]
        try:
            path = self.source.fetch(link)
            try:
                payload = _read_json(path)
            except ValueError as err:  # cut short in a download or a copy, most likely: get a fresh one once
                path = self.source.fetch_again(link, f"is not valid JSON ({err})")
                try:
                    payload = _read_json(path)
                except ValueError as again:
                    raise DataError(f"history {link!r} from {self.source} is still not valid JSON after a fresh "
                                    f"download ({again}); the copy at the source looks broken") from None
            metadata, messages = parse_history(payload)
        except DataError as err:  # missing, unreadable or undownloadable file, or a link outside the root
            raise DataError(err.reason, file=table, row=row, column=column) from None
        except ValueError as err:  # the file parses, but not into a history
            raise DataError(f"history {link!r}: {err}", file=table, row=row, column=column) from None
        history = ChatHistory(link=link, metadata=metadata, messages=messages)
        self._loaded[link] = history
        return history

    def __len__(self) -> int:
        return len(self._loaded)

    def __contains__(self, link: str) -> bool:
        return link in self._loaded
