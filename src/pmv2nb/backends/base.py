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
    cached_tokens_in: int = 0  # prompt tokens the server found in its prompt cache (billed at a lower rate)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, payload: str) -> "ChatResponse":
        return cls(**json.loads(payload))


class BackendError(RuntimeError):
    """A request failed for good (after retries, or for a reason retrying cannot fix)."""


class RetriesExhaustedError(BackendError):
    """A transient failure (rate limit, 5xx, dropped connection) outlasted every retry.

    Unlike a refused request, asking again later may well work, so a run records the row as failed and
    goes on with the others instead of stopping.
    """

    def __init__(self, message: str, tag: str = ""):
        super().__init__(message)
        self.tag = tag


class RequestsFailedError(BackendError):
    """Some requests of a batch ran out of retries while the others were answered.

    Carries what did arrive (``responses``, in request order, ``None`` where a request failed) and the
    error of each failed index (``failures``), so a caller can keep the answers and name the rest.
    """

    def __init__(self, responses: list["ChatResponse | None"], failures: dict[int, RetriesExhaustedError]):
        first = failures[min(failures)]
        super().__init__(f"{len(failures)} of {len(responses)} request(s) still failing after retries; "
                         f"the first: {first}")
        self.responses, self.failures = responses, failures


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


def deliver(results: Iterable[tuple[int, ChatResponse | RetriesExhaustedError]], size: int,
            on_result: OnResult | None) -> list[ChatResponse]:
    """Collect ``(index, response)`` pairs into an ordered list, reporting each one as it arrives.

    A pair may carry a :class:`RetriesExhaustedError` instead of a response: the rest are still collected
    (and reported, so the cache keeps them), then one :class:`RequestsFailedError` names every failure.
    """
    out: list[ChatResponse | None] = [None] * size
    failures: dict[int, RetriesExhaustedError] = {}
    for index, response in results:
        if isinstance(response, RetriesExhaustedError):
            failures[index] = response
            continue
        out[index] = response
        if on_result is not None:
            on_result(index, response)
    if failures:
        raise RequestsFailedError(out, failures)
    return out  # type: ignore[return-value]


def generate_some(backend: ChatBackend, requests: list[ChatRequest],
                  **options) -> tuple[list[ChatResponse | None], dict[int, BackendError]]:
    """Answers where they came (``None`` where not) and the error of each request that ran out of retries.

    For callers that can go on without some answers; any other error still propagates.
    """
    try:
        return backend.generate(requests, **options), {}
    except RequestsFailedError as err:
        return err.responses, dict(err.failures)
