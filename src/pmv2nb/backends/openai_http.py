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
import re
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm.auto import tqdm

from ..config import check_choice
from .base import BackendError, ChatRequest, ChatResponse, ContextTooLongError, OnResult, RetriesExhaustedError, deliver

OPENAI_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"
LOCAL_KEY_ENV = "PMV2NB_API_KEY"
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}

# The paper's model names -> the dated snapshots the API serves, so a run asked today and one asked next
# year reach the same weights. GPT-5-Chat has no snapshot: its only API name follows each new release.
ALIASES = {
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5-chat": "gpt-5-chat-latest",
}
MOVING_ALIASES = frozenset({"gpt-5-chat-latest"})  # served names whose weights change without notice

API_SAMPLING = ("capped", "none")  # eval.api_sampling
# eval.reasoning_tokens: OpenAI's reasoning guide advises leaving at least 25,000 tokens for reasoning plus answer
DEFAULT_REASONING_TOKENS = 25_000


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


def cached_prompt_tokens(usage) -> int:
    """Prompt tokens the server answered from its prompt cache; 0 when it does not say (older servers,
    ``transformers serve``, vLLM without usage details)."""
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    return int(getattr(details, "cached_tokens", None) or 0)


# OpenAI caches prompt prefixes from 1,024 tokens on; at about four characters a token
CACHE_MIN_PREFIX_CHARS = 4096


def prompt_text(messages) -> str:
    """A conversation as one string in sending order, as a cache keyed on the prompt's prefix reads it."""
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def shared_prefix_runs(texts: list[str], min_chars: int) -> list[list[int]]:
    """Indices of ``texts`` in runs of neighbours that share at least ``min_chars`` leading characters.

    The runner already sends a persona's questions side by side, so comparing neighbours finds them.
    """
    runs: list[list[int]] = []
    for index, text in enumerate(texts):
        previous = texts[index - 1] if index else ""
        if runs and len(text) >= min_chars and text[:min_chars] == previous[:min_chars]:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


class OpenAIBackend:
    """Chat completions over HTTP with bounded concurrency and retries."""

    def __init__(self, model: str, base_url: str | None = None, concurrency: int = 8, max_retries: int = 6,
                 timeout_s: float = 600.0, backoff_s: float = 1.0, api_sampling: str = "capped",
                 reasoning_tokens: int = DEFAULT_REASONING_TOKENS):
        from openai import OpenAI

        check_choice("eval.api_sampling", api_sampling, API_SAMPLING)
        read_dotenv()
        # no URL in the spec means the OpenAI API (or what OPENAI_BASE_URL points at, e.g. a proxy):
        # a key is required and calls are priced
        self.official = base_url is None
        self.model = ALIASES.get(model, model) if self.official else model
        # what to send besides the messages; local servers (vllm, transformers serve) always get our sampling
        self.api_sampling = api_sampling if self.official else "capped"
        self.reasoning_tokens = max(0, reasoning_tokens)
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
        if self.official and self.model in MOVING_ALIASES:
            warnings.warn(f"openai:{model} is served as {self.model}, a name that moves to each new release; result "
                          f"rows record the model the API reports in served_model", stacklevel=2)
        self.priced_as = self.model if self.official else None

    def cache_identity(self) -> dict:
        identity = {"engine": "openai", "model": self.model, "base_url": self.base_url}
        # what is sent besides the request's own sampling changes the answer, so it separates cached calls
        if self.api_sampling != "capped":
            identity["api_sampling"] = self.api_sampling
        elif self.official and is_reasoning_model(self.model):
            identity["reasoning_tokens"] = self.reasoning_tokens
        return identity

    def _arguments(self, request: ChatRequest) -> dict:
        sampling = request.sampling
        messages = list(request.messages)
        reasoning = self.official and is_reasoning_model(self.model)
        if reasoning:
            messages = [{**m, "role": "developer"} if m["role"] == "system" else m for m in messages]
        arguments = {"model": self.model, "messages": messages, "seed": sampling.seed}
        if self.api_sampling == "none":  # the API's own defaults for length and sampling, as the authors ran it
            return arguments
        if reasoning:
            # hidden reasoning counts against this cap too: without room for it a reply can end before its answer
            return {**arguments, "max_completion_tokens": sampling.max_tokens + self.reasoning_tokens}
        return {**arguments, "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
                "top_p": sampling.top_p}

    def _permanent(self, err, request: ChatRequest) -> BackendError:
        import openai

        where = f"{self.spec} ({request.tag})" if request.tag else self.spec
        if isinstance(err, openai.AuthenticationError):
            return BackendError(f"{where}: the server rejected the API key (401). Check {KEY_ENV}.")
        message = getattr(err, "message", str(err))
        code = getattr(err, "code", None)
        if code == "context_length_exceeded" or "context length" in message.lower() or "too long" in message.lower():
            limit = re.search(r"maximum context length is ([\d,]+)", message)
            tokens = re.search(r"resulted in ([\d,]+) tokens", message)
            return ContextTooLongError(f"{where}: the prompt is longer than the model's context window: {message}",
                                       tokens=int(tokens[1].replace(",", "")) if tokens else None,
                                       limit=int(limit[1].replace(",", "")) if limit else None, tag=request.tag)
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
                                    finish_reason=choice.finish_reason or "", served_model=reply.model or "",
                                    cached_tokens_in=cached_prompt_tokens(usage))
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
        """Send the requests ``concurrency`` at a time, each run of prompts sharing a long prefix (a persona's
        questions) led by its first alone: a prompt cache holds a prefix only once a request has read it, so
        the others go out when their leader is answered and find it cached (OpenAI bills that prefix at the
        cached rate; vLLM skips recomputing it)."""
        bar = tqdm(total=len(requests), desc=self.model[-30:], disable=not progress, leave=False)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        followers: dict[int, list[int]] = {}
        waiting = {}
        for group in shared_prefix_runs([prompt_text(r.messages) for r in requests], CACHE_MIN_PREFIX_CHARS):
            waiting[pool.submit(self._call, requests[group[0]])] = group[0]
            followers[group[0]] = group[1:]
        failure: BaseException | None = None
        try:
            while waiting:
                finished, _ = wait(waiting, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = waiting.pop(future)
                    if future.cancelled():
                        continue
                    error = future.exception()
                    # a leader's followers go out unless the run is stopping (an error other than these two)
                    ends_alone = error is None or isinstance(error, (RetriesExhaustedError, ContextTooLongError))
                    if ends_alone and (failure is None or isinstance(failure, ContextTooLongError)):
                        waiting.update((pool.submit(self._call, requests[i]), i) for i in followers.pop(index, ()))
                    if error is None:
                        yield index, future.result()
                        bar.update()
                    elif isinstance(error, RetriesExhaustedError):  # fails alone: deliver() reports it at the end
                        yield index, error
                        bar.update()
                    elif isinstance(error, ContextTooLongError) and isinstance(failure, (ContextTooLongError,
                                                                                       type(None))):
                        # one over-long prompt says nothing of the others: they finish, and the error names every
                        # refused request, so a caller that cuts them (eval.fit_history on_error) retries once
                        if failure is None:
                            failure = error
                        else:
                            failure.tags.append(error.tag)
                    elif failure is None or isinstance(failure, ContextTooLongError):
                        # stop what has not started; calls already under way are paid for, so they are still
                        # handed over (and reach the cache) before the error is raised
                        failure = error
                        for pending in waiting:
                            pending.cancel()
            if failure is not None:
                raise failure
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
