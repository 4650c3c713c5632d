"""The RAG baseline the authors ran (``rag:`` specs): the history cut into overlapping windows of messages,
the windows most similar to the query kept, in time order.

Follows their ``verl_custom/rag.py``: the persona system message is left out, windows of 6 messages
overlap by 2 (the last may be shorter), each window is embedded as ``Role: text`` lines, the query as
its raw text (no options, no recall sentence), and the top 10 by cosine similarity are kept, all of
them when there are no more. They embedded with text-embedding-3-large; we use the offline MiniLM of
``baseline:dense``, which reads only the first 256 word pieces of a window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..messages import content_text


@dataclass(frozen=True)
class Retrieval:
    """Window size and overlap in messages, and how many windows to keep (``eval.rag_*``)."""

    window: int = 6
    overlap: int = 2
    top_k: int = 10

    def tag(self) -> str:
        """The settings in a file name or result key: ``w6o2k10``."""
        return f"w{self.window}o{self.overlap}k{self.top_k}"

    def __post_init__(self):
        if self.window < 1 or not 0 <= self.overlap < self.window or self.top_k < 1:
            raise ValueError(f"RAG needs window >= 1, 0 <= overlap < window and top_k >= 1, got {self}")


def windows(n: int, window: int = 6, overlap: int = 2) -> list[tuple[int, int]]:
    """``(start, end)`` of each window over ``n`` messages; it stops at the first window reaching the end."""
    spans = []
    for start in range(0, n, window - overlap):
        spans.append((start, min(start + window, n)))
        if start + window >= n:
            break
    return spans


def window_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role'].capitalize()}: {content_text(m['content'])}" for m in messages)


# window embeddings per history: the questions of one persona share a history, so it is embedded once
_EMBEDDED: dict[str, object] = {}
_QUERIES: dict[str, object] = {}  # query vectors by text, shared by a row's order variants and repeated runs


def _window_vectors(texts: list[str]):
    from ..backends.baselines import minilm

    key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    if key not in _EMBEDDED:
        if len(_EMBEDDED) >= 64:
            _EMBEDDED.clear()
        _EMBEDDED[key] = minilm().encode(texts, normalize_embeddings=True, batch_size=64)
    return _EMBEDDED[key]


def embed_queries(texts: list[str]) -> None:
    """Embed the queries not seen yet in one batch: one call per query is slow, above all on a busy CPU."""
    from ..backends.baselines import minilm

    todo = sorted({t for t in texts if t not in _QUERIES})
    if not todo:
        return
    if len(_QUERIES) + len(todo) > 4096:
        _QUERIES.clear()
    _QUERIES.update(zip(todo, minilm().encode(todo, normalize_embeddings=True, batch_size=64)))


def retrieve(history: list[dict], query: str, settings: Retrieval = Retrieval()) -> list[tuple[int, int]]:
    """The windows kept for ``query`` (persona message already left out of ``history``), in time order."""
    spans = windows(len(history), settings.window, settings.overlap)
    if len(spans) <= settings.top_k:
        return spans
    vectors = _window_vectors([window_text(history[start:end]) for start, end in spans])
    embed_queries([query])
    similarity = vectors @ _QUERIES[query]
    best = sorted(range(len(spans)), key=lambda i: (-float(similarity[i]), i))[:settings.top_k]
    return [spans[i] for i in sorted(best)]


def excerpt(history: list[dict], spans: list[tuple[int, int]]) -> list[dict]:
    """The messages the windows cover, in time order, a message shared by two windows kept once."""
    kept = sorted({i for start, end in spans for i in range(start, end)})
    return [history[i] for i in kept]
