"""The one chat interface every engine implements: a batch of message lists in, texts with usage out.

Keeping the interface this small is what lets the evaluation, the judges, the baselines and the
training rollouts share one cache and one retry policy, whatever answers the request: the OpenAI
API, a vLLM or ``transformers serve`` endpoint, a local checkpoint, or a heuristic baseline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Protocol


@dataclass(frozen=True)
class Sampling:
    """Decoding settings that change the answer, so they are part of every cache key."""

    max_tokens: int = 2048
    temperature: float = 0.7
    top_p: float = 0.8
    seed: int = 0


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict, ...] | list[dict]
    sampling: Sampling = Sampling()
    tag: str = ""  # where the request came from (question id, judge index): for error messages only


@dataclass
class ChatResponse:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    finish_reason: str = ""
    cached: bool = False
    served_model: str = ""  # the model name the server reported answering with (a dated snapshot, say)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, payload: str) -> "ChatResponse":
        return cls(**json.loads(payload))


class BackendError(RuntimeError):
    """A request failed for good (after retries, or for a reason retrying cannot fix)."""


class ContextTooLongError(BackendError):
    """The prompt does not fit the model's context window."""

    def __init__(self, message: str, tokens: int | None = None, limit: int | None = None, tag: str = ""):
        super().__init__(message)
        self.tokens, self.limit, self.tag = tokens, limit, tag
        self.tags = [tag]  # every request of the batch refused as too long (a backend may add the others' tags)


# called once per finished request, in the caller's thread, as soon as it is done
OnResult = Callable[[int, ChatResponse], None]


class ChatBackend(Protocol):
    """What the evaluation needs from an engine."""

    spec: str

    def cache_identity(self) -> dict:
        """What identifies the model for caching (name, endpoint, weights fingerprint), never a key."""

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        """Answer every request, in order; ``on_result(index, response)`` fires as each one completes."""


def request_key(identity: dict, request: ChatRequest) -> str:
    """A stable hash of (model identity, messages, sampling, seed): the cache key of one call."""
    payload = {"model": identity, "messages": list(request.messages), "sampling": asdict(request.sampling)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def deliver(results: Iterable[tuple[int, ChatResponse]], size: int, on_result: OnResult | None) -> list[ChatResponse]:
    """Collect ``(index, response)`` pairs into an ordered list, reporting each one as it arrives."""
    out: list[ChatResponse | None] = [None] * size
    for index, response in results:
        out[index] = response
        if on_result is not None:
            on_result(index, response)
    return out  # type: ignore[return-value]
