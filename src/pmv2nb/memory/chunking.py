"""Split a user's history into the fixed-size chunks the memory agent reads, one at a time.

The history (persona system message dropped) is rendered as numbered ``Message i (role): text``
lines and cut at token boundaries of the model's own tokenizer, using character offsets so the
chunks concatenate back to exactly the rendered text. When the history is longer than
``max_chunks x chunk_tokens`` its middle is dropped: the first half of the chunks come from the
start and the rest from the end, so no chunk straddles the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..prompts import render_history


@dataclass(frozen=True)
class Chunking:
    """The chunks of one history and what the cut cost."""

    chunks: tuple[str, ...]
    chunk_tokens: tuple[int, ...]  # tokens in each chunk, as split
    history_tokens: int  # tokens of the whole rendered history
    omitted_tokens: int  # tokens dropped from the middle to respect max_chunks

    def __len__(self) -> int:
        return len(self.chunks)


def token_spans(total: int, chunk_tokens: int, max_chunks: int) -> list[tuple[int, int]]:
    """Token index ranges of each chunk, middle-truncated to at most ``max_chunks`` chunks."""
    if chunk_tokens < 1 or max_chunks < 1:
        raise ValueError(f"chunk_tokens and max_chunks must be positive, got {chunk_tokens} and {max_chunks}")
    budget = chunk_tokens * max_chunks
    if total <= budget:
        pieces = [(0, total)]
    else:
        head = math.ceil(max_chunks / 2) * chunk_tokens
        pieces = [(0, head), (total - (budget - head), total)]
    return [(start, min(start + chunk_tokens, end))
            for begin, end in pieces for start in range(begin, end, chunk_tokens)]


def chunk_text(text: str, tokenizer, chunk_tokens: int, max_chunks: int) -> Chunking:
    """Cut ``text`` into chunks of ``chunk_tokens`` tokens (never inside a token), middle-truncated."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoded["offset_mapping"]]
    total = len(starts)

    def char_at(token: int, first: bool) -> int:
        if first and token == 0:
            return 0
        return starts[token] if token < total else len(text)

    spans = token_spans(total, chunk_tokens, max_chunks)
    chunks = tuple(text[char_at(a, True):char_at(b, False)] for a, b in spans)
    kept = sum(b - a for a, b in spans)
    return Chunking(chunks=chunks, chunk_tokens=tuple(b - a for a, b in spans), history_tokens=total,
                    omitted_tokens=total - kept)


def chunk_history(messages: list[dict], tokenizer, chunk_tokens: int, max_chunks: int) -> Chunking:
    """Render a history (without its persona message) and chunk it; an empty history gives no chunks."""
    if messages and messages[0].get("role") == "system":
        messages = messages[1:]
    return chunk_text(render_history(messages), tokenizer, chunk_tokens, max_chunks)
