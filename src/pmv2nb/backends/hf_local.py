"""Local generation with Hugging Face transformers (CPU or GPU), batched with left padding.

This is the backend for checkpoints on disk: the tiny offline model in CI, an SFT or GRPO
checkpoint on a laptop GPU. Requests are grouped by sampling settings and sorted by length so
padding stays small. Image parts of multimodal messages are reduced to their text, since the
causal LMs used here read text only.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .base import ChatRequest, ChatResponse, ContextTooLongError, OnResult, deliver


def text_messages(messages) -> list[dict]:
    """Messages with content-part lists flattened to plain text."""
    from ..data.columns import content_text

    return [{"role": m["role"], "content": content_text(m["content"])} for m in messages]


def weights_fingerprint(folder: Path) -> str:
    """Changes whenever the saved weights or config change, so a retrained checkpoint misses the cache."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.suffix in {".json", ".safetensors", ".bin"}:
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class HFBackend:
    """``hf:PATH`` (a saved checkpoint, LoRA adapter folder or hub id) or ``hf:tiny`` (the offline random Qwen3)."""

    def __init__(self, path: str, device: str | None = None, dtype: str | None = None, batch_size: int = 4):
        from ..models import tiny_model_dir

        self.spec = f"hf:{path}"
        self.path = str(tiny_model_dir()) if path == "tiny" else path
        self.device, self.dtype, self.batch_size = device, dtype, max(1, batch_size)
        self.priced_as = None
        self._model = self._tokenizer = None

    def cache_identity(self) -> dict:
        folder = Path(self.path)
        fingerprint = weights_fingerprint(folder) if folder.is_dir() else "hub"
        return {"engine": "hf", "path": self.path, "weights": fingerprint}

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoTokenizer

            from ..models import load_causal_lm

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = self.dtype or ("bfloat16" if device == "cuda" else "float32")
            self._tokenizer = AutoTokenizer.from_pretrained(self.path, padding_side="left")
            self._model = load_causal_lm(self.path, dtype).to(device).eval()
        return self._model, self._tokenizer

    def context_limit(self) -> int:
        model, _ = self._load()
        return int(getattr(model.config, "max_position_embeddings", 1 << 30))

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        return deliver(self._run(requests, progress), len(requests), on_result)

    def _run(self, requests: list[ChatRequest], progress: bool):
        model, tokenizer = self._load()
        limit = self.context_limit()
        prompts = [tokenizer.apply_chat_template(text_messages(r.messages), add_generation_prompt=True, tokenize=False)
                   for r in requests]
        lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        for index, request in enumerate(requests):
            if lengths[index] + request.sampling.max_tokens > limit:
                raise ContextTooLongError(
                    f"{self.spec} ({request.tag}): prompt of {lengths[index]} tokens plus {request.sampling.max_tokens} "
                    f"new tokens exceeds the model's {limit}-token context", tokens=lengths[index], limit=limit,
                    tag=request.tag)
        order = sorted(range(len(requests)), key=lambda i: (json.dumps(requests[i].sampling.__dict__), lengths[i]))
        batches, current = [], []
        for index in order:
            if current and (len(current) == self.batch_size or requests[current[0]].sampling != requests[index].sampling):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        for batch in tqdm(batches, desc=f"generate ({Path(self.path).name[:24]})", disable=not progress, leave=False):
            yield from self._generate_batch(batch, requests, prompts)

    def _generate_batch(self, batch: list[int], requests: list[ChatRequest], prompts: list[str]):
        import torch

        sampling = requests[batch[0]].sampling
        seed = int(hashlib.sha256(",".join(str(requests[i].sampling.seed) for i in batch).encode()).hexdigest()[:8], 16)
        torch.manual_seed(seed)
        started = time.perf_counter()
        samples = sample_completions(self._model, self._tokenizer, [prompts[i] for i in batch], sampling.max_tokens,
                                     sampling.temperature, sampling.top_p)
        elapsed = (time.perf_counter() - started) / len(batch)
        for index, done in zip(batch, samples):
            yield index, ChatResponse(text=done.text, tokens_in=done.tokens_in, tokens_out=done.tokens_out,
                                      latency_s=elapsed, finish_reason=done.finish_reason)


@dataclass
class Completion:
    """One sampled reply with its token ids (the trainer scores these ids; the backend keeps only the text)."""

    prompt_ids: list[int]
    completion_ids: list[int]  # up to and including the first end-of-turn token
    text: str
    finish_reason: str  # "stop" or "length"

    @property
    def tokens_in(self) -> int:
        return len(self.prompt_ids)

    @property
    def tokens_out(self) -> int:
        return len(self.completion_ids)


def sample_completions(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
                       top_p: float = 1.0, top_k: int | None = None) -> list[Completion]:
    """Generate one reply per (already templated) prompt in a single left-padded batch.

    ``top_k=0`` with ``top_p=1.0`` samples from the model's full distribution, as RL needs.
    """
    import torch

    inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                       add_special_tokens=False).to(model.device)
    sample = temperature > 0
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=sample,
                                temperature=temperature if sample else None, top_p=top_p if sample else None,
                                top_k=top_k if sample else None, pad_token_id=tokenizer.pad_token_id)
    width = inputs["input_ids"].shape[1]
    done = []
    for position in range(len(prompts)):
        new_tokens = output[position, width:]
        stops = (new_tokens == tokenizer.eos_token_id) | (new_tokens == tokenizer.pad_token_id)
        length = int(stops.nonzero()[0, 0]) + 1 if stops.any() else len(new_tokens)
        mask = inputs["attention_mask"][position].bool()
        done.append(Completion(prompt_ids=inputs["input_ids"][position][mask].tolist(),
                               completion_ids=new_tokens[:length].tolist(),
                               text=tokenizer.decode(new_tokens[:length], skip_special_tokens=True),
                               finish_reason="stop" if stops.any() else "length"))
    return done
