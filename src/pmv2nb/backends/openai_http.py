"""OpenAI-compatible HTTP backend: the OpenAI API, ``vllm serve`` and ``transformers serve`` alike.

Uses the official ``openai`` client with its own retries switched off, so that one policy applies
everywhere: transient failures (429, 5xx, timeouts, dropped connections) are retried with
exponential backoff, permanent ones (bad key, unknown model, prompt too long) stop the run at once
with a message that says what to change. A request whose transient failure outlasts the retries
fails alone (``RetriesExhaustedError``): the batch's other requests are still answered and delivered.
Requests run on a bounded thread pool.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm.auto import tqdm

from .base import BackendError, ChatRequest, ChatResponse, ContextTooLongError, OnResult, RetriesExhaustedError, deliver

OPENAI_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"
LOCAL_KEY_ENV = "PMV2NB_API_KEY"
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}

# names the paper uses -> names the API serves
ALIASES = {"gpt-5-chat": "gpt-5-chat-latest"}


class MissingKeyError(BackendError):
    """An API key is needed and the environment has none."""


def read_dotenv(path: Path | None = None) -> None:
    """Copy ``KEY=value`` lines of a ``.env`` file into the environment, never overriding what is set."""
    from ..config import repo_root

    path = path or repo_root() / ".env"
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            os.environ.setdefault(name.strip().removeprefix("export ").strip(), value.strip().strip("\"'"))


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models: no temperature/top_p, ``max_completion_tokens``, a developer role."""
    name = model.lower()
    return name.startswith(("o1", "o3", "o4")) or (name.startswith("gpt-5") and "chat" not in name)


class OpenAIBackend:
    """Chat completions over HTTP with bounded concurrency and retries."""

    def __init__(self, model: str, base_url: str | None = None, concurrency: int = 8, max_retries: int = 6,
                 timeout_s: float = 600.0, backoff_s: float = 1.0):
        from openai import OpenAI

        read_dotenv()
        # no URL in the spec means the OpenAI API (or what OPENAI_BASE_URL points at, e.g. a proxy):
        # a key is required and calls are priced
        self.official = base_url is None
        self.model = ALIASES.get(model, model) if self.official else model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.spec = f"openai:{model}" if self.official else f"openai:{model}@{self.base_url}"
        self.concurrency, self.max_retries, self.backoff_s = max(1, concurrency), max_retries, backoff_s
        key = os.environ.get(KEY_ENV) if self.official else os.environ.get(LOCAL_KEY_ENV) or os.environ.get(KEY_ENV)
        if self.official and not key:
            raise MissingKeyError(
                f"{self.spec} needs an OpenAI API key: set {KEY_ENV} in the environment (or in a .env file at "
                f"the repository root). Without one, evaluate a local model instead: hf:PATH, "
                f"openai:NAME@http://127.0.0.1:PORT/v1 for a vllm/transformers server, or a baseline:… spec."
            )
        self.client = OpenAI(base_url=self.base_url, api_key=key or "EMPTY", max_retries=0, timeout=timeout_s)
        self.priced_as = self.model if self.official else None

    def cache_identity(self) -> dict:
        return {"engine": "openai", "model": self.model, "base_url": self.base_url}

    def _arguments(self, request: ChatRequest) -> dict:
        sampling = request.sampling
        messages = list(request.messages)
        if self.official and is_reasoning_model(self.model):
            messages = [{**m, "role": "developer"} if m["role"] == "system" else m for m in messages]
            return {"model": self.model, "messages": messages, "max_completion_tokens": sampling.max_tokens,
                    "seed": sampling.seed}
        return {"model": self.model, "messages": messages, "max_tokens": sampling.max_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}

    def _permanent(self, err, request: ChatRequest) -> BackendError:
        import openai

        where = f"{self.spec} ({request.tag})" if request.tag else self.spec
        if isinstance(err, openai.AuthenticationError):
            return BackendError(f"{where}: the server rejected the API key (401). Check {KEY_ENV}.")
        message = getattr(err, "message", str(err))
        code = getattr(err, "code", None)
        if code == "context_length_exceeded" or "context length" in message.lower() or "too long" in message.lower():
            return ContextTooLongError(f"{where}: the prompt is longer than the model's context window: {message}",
                                       tag=request.tag)
        status = getattr(err, "status_code", "?")
        return BackendError(f"{where}: request refused with HTTP {status}: {message}")

    def _call(self, request: ChatRequest) -> ChatResponse:
        import openai

        for attempt in range(self.max_retries + 1):
            started = time.perf_counter()
            try:
                reply = self.client.chat.completions.create(**self._arguments(request))
            except (openai.APITimeoutError, openai.APIConnectionError) as err:
                failure = err
            except openai.APIStatusError as err:
                if err.status_code not in RETRYABLE_STATUS:
                    raise self._permanent(err, request) from None
                failure = err
            else:
                usage = reply.usage
                choice = reply.choices[0]
                return ChatResponse(text=choice.message.content or "",
                                    tokens_in=usage.prompt_tokens if usage else 0,
                                    tokens_out=usage.completion_tokens if usage else 0,
                                    latency_s=time.perf_counter() - started,
                                    finish_reason=choice.finish_reason or "")
            if attempt == self.max_retries:
                raise RetriesExhaustedError(f"{self.spec} ({request.tag}): still failing after {attempt + 1} "
                                            f"attempts: {type(failure).__name__}: {failure}", request.tag) from None
            time.sleep(self._delay(failure, attempt))
        raise AssertionError("unreachable")

    def _delay(self, failure, attempt: int) -> float:
        response = getattr(failure, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:
            return min(60.0, float(after))
        except (TypeError, ValueError):
            return min(60.0, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        return deliver(self._run(requests, progress), len(requests), on_result)

    def _run(self, requests: list[ChatRequest], progress: bool):
        bar = tqdm(total=len(requests), desc=self.model[-30:], disable=not progress, leave=False)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        waiting = {pool.submit(self._call, request): index for index, request in enumerate(requests)}
        try:
            while waiting:
                finished, _ = wait(waiting, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = waiting.pop(future)
                    try:
                        outcome = future.result()
                    except RetriesExhaustedError as err:  # the others go on; deliver() reports it at the end
                        outcome = err
                    yield index, outcome
                    bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
