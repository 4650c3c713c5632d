"""One chat interface over many engines, chosen by a spec string shared by notebooks and the CLI.

    openai:gpt-5-chat                        the OpenAI API (key from OPENAI_API_KEY)
    openai:NAME@http://127.0.0.1:8000/v1     any OpenAI-compatible server (vllm serve, transformers serve)
    vllm:Qwen/Qwen3-4B-Instruct-2507         vLLM's offline engine (GPU)
    hf:PATH   hf:tiny   hf:smollm2-135m-instruct   local transformers generation (CPU or GPU)
    baseline:random|longest|shortest|bm25|dense   heuristic answerers for multiple choice
"""

from __future__ import annotations

from .base import (
    BackendError, ChatBackend, ChatRequest, ChatResponse, ContextTooLongError, RequestsFailedError,
    RetriesExhaustedError, Sampling, generate_some, request_key,
)

__all__ = ["BackendError", "ChatBackend", "ChatRequest", "ChatResponse", "ContextTooLongError", "RequestsFailedError",
           "RetriesExhaustedError", "Sampling", "generate_some", "make_backend", "request_key", "split_spec"]

ENGINES = ("openai", "vllm", "hf", "baseline")


def split_spec(spec: str) -> tuple[str, str]:
    """``"engine:rest"`` -> (engine, rest), with a message listing the valid forms on a bad spec."""
    engine, sep, rest = spec.partition(":")
    if not sep or engine not in ENGINES or not rest:
        raise ValueError(f"bad model spec {spec!r}: expected one of {', '.join(e + ':…' for e in ENGINES)} "
                         f"(see pmv2nb.backends for examples)")
    return engine, rest


def make_backend(spec: str, concurrency: int = 8, batch_size: int = 4, dtype: str = "auto",
                 api_sampling: str = "capped", reasoning_tokens: int | None = None) -> ChatBackend:
    """Build the backend a spec names; nothing is loaded or contacted until the first request.

    ``dtype`` is the precision of local models, transformers and vLLM (``auto``: bfloat16 where the hardware
    has it); it is passed on because a trained run is saved as float32 master weights.
    ``api_sampling`` and ``reasoning_tokens`` (``eval.api_sampling``, ``eval.reasoning_tokens``) shape calls to
    the OpenAI API itself; every other engine, a local OpenAI-compatible server included, ignores them.
    """
    engine, rest = split_spec(spec)
    if engine in ("vllm", "hf"):
        from ..models import check_local_folder

        check_local_folder(spec, rest)  # a missing run folder is named here, not read as a hub id later
    if engine == "openai":
        from .openai_http import DEFAULT_REASONING_TOKENS, OpenAIBackend

        api = {"api_sampling": api_sampling,
               "reasoning_tokens": DEFAULT_REASONING_TOKENS if reasoning_tokens is None else reasoning_tokens}
        name, at, url = rest.rpartition("@")
        if at and url.startswith(("http://", "https://")):
            return OpenAIBackend(name, url, concurrency=concurrency, **api)
        return OpenAIBackend(rest, concurrency=concurrency, **api)
    if engine == "vllm":
        from .vllm_offline import VLLMBackend

        return VLLMBackend(rest, dtype=dtype)
    if engine == "hf":
        from .hf_local import HFBackend

        return HFBackend(rest, batch_size=batch_size, dtype=dtype)
    from .baselines import BaselineBackend

    return BaselineBackend(rest)
