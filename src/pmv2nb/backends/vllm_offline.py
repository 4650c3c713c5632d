"""vLLM's offline engine for fast batch generation from local checkpoints (GPU only).

vLLM is an optional extra (``pip install -e ".[gpu]"``) and needs CUDA, so both are checked
before anything loads, with a message naming the CPU alternative.

Prefix caching is switched on explicitly rather than left to the version's default: every question of a
persona repeats its whole history, and with the cache the engine reads that history once per batch
instead of once per question (the evaluation sends a persona's questions together for this reason).
"""

from __future__ import annotations

import time

from .base import ChatRequest, ChatResponse, OnResult, deliver


class VLLMUnavailableError(RuntimeError):
    """vLLM cannot run here (no GPU or the extra is not installed)."""


def require_vllm():
    import torch

    if not torch.cuda.is_available():
        raise VLLMUnavailableError(
            "vllm: specs need an NVIDIA GPU and none is visible. On CPU use hf:PATH for local checkpoints "
            "(slow but exact), or point openai:NAME@URL at a vLLM server running elsewhere.")
    try:
        import vllm
    except ImportError:
        raise VLLMUnavailableError(
            'vLLM is not installed: run pip install -e ".[gpu]" (it pins torch and transformers to versions '
            "that resolve with the rest of the project).") from None
    return vllm


class VLLMBackend:
    """``vllm:MODEL`` (hub id or local folder); one engine per backend, loaded on first use."""

    def __init__(self, model: str, max_model_len: int | None = None, gpu_memory_utilization: float = 0.85,
                 tensor_parallel_size: int = 1, dtype: str = "auto"):
        require_vllm()
        from ..models import resolve_dtype

        self.spec, self.model = f"vllm:{model}", model
        # explicit, since a run folder holds float32 master weights and vLLM would otherwise pick by its config
        self.engine_args = {"model": model, "max_model_len": max_model_len, "dtype": resolve_dtype(dtype, "cuda"),
                            "tensor_parallel_size": tensor_parallel_size,
                            "gpu_memory_utilization": gpu_memory_utilization, "enable_prefix_caching": True}
        self.priced_as = None
        self._engine = None

    def cache_identity(self) -> dict:
        from .hf_local import weights_fingerprint
        from pathlib import Path

        folder = Path(self.model)
        return {"engine": "vllm", "path": self.model,
                "weights": weights_fingerprint(folder) if folder.is_dir() else "hub"}

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        vllm = require_vllm()
        if self._engine is None:
            self._engine = vllm.LLM(**{k: v for k, v in self.engine_args.items() if v is not None})
        params = [vllm.SamplingParams(max_tokens=r.sampling.max_tokens, temperature=r.sampling.temperature,
                                      top_p=r.sampling.top_p, seed=r.sampling.seed) for r in requests]
        started = time.perf_counter()
        outputs = self._engine.chat([list(r.messages) for r in requests], sampling_params=params, use_tqdm=progress)
        each = (time.perf_counter() - started) / max(1, len(requests))
        results = ((i, ChatResponse(text=out.outputs[0].text, tokens_in=len(out.prompt_token_ids),
                                    tokens_out=len(out.outputs[0].token_ids), latency_s=each,
                                    finish_reason=out.outputs[0].finish_reason or ""))
                   for i, out in enumerate(outputs))
        return deliver(results, len(requests), on_result)
