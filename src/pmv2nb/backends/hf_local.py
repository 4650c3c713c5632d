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
    from ..messages import content_text

    return [{"role": m["role"], "content": content_text(m["content"])} for m in messages]


def weights_fingerprint(folder: Path) -> str:
    """Changes whenever the saved weights or config change, so a retrained checkpoint misses the cache."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.suffix in {".json", ".safetensors", ".bin"}:
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# Prompts sharing at least this many leading tokens (a persona's history, or the memory agent's notes,
# about 110 tokens on the laptop profile) compute them once; at 110 shared of about 370 tokens, reuse
# answered 1.20x faster on 2 CPU cores (benchmarks/history_reuse.py --from-notes).
MIN_SHARED_PREFIX = 64


class HFBackend:
    """``hf:PATH`` (a saved checkpoint, LoRA adapter folder or hub id) or a built-in offline model
    (``hf:tiny``, the random Qwen3; ``hf:smollm2-135m-instruct``, the real small instruction model).

    ``dtype`` ``auto`` picks bfloat16 on a GPU or a CPU with bf16 units, else float32.
    """

    def __init__(self, path: str, device: str | None = None, dtype: str | None = None, batch_size: int = 4,
                 min_shared_prefix: int = MIN_SHARED_PREFIX):
        from ..models import BUILTIN_MODELS, builtin_model_dir

        self.spec = f"hf:{path}"
        self.path = str(builtin_model_dir(path)) if path in BUILTIN_MODELS else path
        self.device, self.dtype, self.batch_size = device, dtype or "auto", max(1, batch_size)
        self.min_shared_prefix = min_shared_prefix
        self.priced_as = None
        self._model = self._tokenizer = None
        self._prefixes = PrefixStore()
        self.prefill_tokens_saved = 0  # prompt tokens answered from a shared prefix instead of recomputed

    def _resolved(self) -> tuple[str, str]:
        import torch

        from ..models import resolve_dtype

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return device, resolve_dtype(self.dtype, device)

    def cache_identity(self) -> dict:
        folder = Path(self.path)
        fingerprint = weights_fingerprint(folder) if folder.is_dir() else "hub"
        return {"engine": "hf", "path": self.path, "weights": fingerprint, "dtype": self._resolved()[1]}

    def _load(self):
        if self._model is None:
            from ..models import load_causal_lm, load_tokenizer

            device, dtype = self._resolved()
            self._tokenizer = load_tokenizer(self.path, padding_side="left")
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
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for index, request in enumerate(requests):
            if len(ids[index]) + request.sampling.max_tokens > limit:
                raise ContextTooLongError(
                    f"{self.spec} ({request.tag}): prompt of {len(ids[index])} tokens plus "
                    f"{request.sampling.max_tokens} new tokens exceeds the model's {limit}-token context",
                    tokens=len(ids[index]), limit=limit, tag=request.tag)
        by_sampling: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_sampling.setdefault(json.dumps(request.sampling.__dict__, sort_keys=True), []).append(index)
        batches = []
        for members in by_sampling.values():
            batches += plan_batches(members, ids, self.batch_size, self.min_shared_prefix)
        for batch, prefix_length in tqdm(batches, desc=f"generate ({Path(self.path).name[:24]})",
                                         disable=not progress, leave=False):
            yield from self._generate_batch(batch, requests, ids, prefix_length)

    def _generate_batch(self, batch: list[int], requests: list[ChatRequest], ids: list[list[int]],
                        prefix_length: int):
        import torch

        sampling = requests[batch[0]].sampling
        seed = int(hashlib.sha256(",".join(str(requests[i].sampling.seed) for i in batch).encode()).hexdigest()[:8], 16)
        started = time.perf_counter()
        prefix = None
        if prefix_length:
            prefix = self._prefixes.get(self._model, ids[batch[0]][:prefix_length])
            self.prefill_tokens_saved += prefix.length * len(batch) - (prefix.length if prefix.fresh else 0)
        torch.manual_seed(seed)
        samples = sample_completions(self._model, self._tokenizer, [ids[i] for i in batch], sampling.max_tokens,
                                     sampling.temperature, sampling.top_p, prefix=prefix)
        elapsed = (time.perf_counter() - started) / len(batch)
        for index, done in zip(batch, samples):
            yield index, ChatResponse(text=done.text, tokens_in=done.tokens_in, tokens_out=done.tokens_out,
                                      latency_s=elapsed, finish_reason=done.finish_reason)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def plan_batches(members: list[int], ids: list[list[int]], batch_size: int,
                 min_shared: int = MIN_SHARED_PREFIX) -> list[tuple[list[int], int]]:
    """Batches of request indices, each with the length of the token prefix all its prompts share (0: none).

    Prompts are sorted by their tokens, so the questions of one history (or of one set of notes) sit
    side by side; a run of prompts sharing at least ``min_shared`` leading tokens is batched together
    and reuses one computed prefix. A prompt does not join a run when that would cost the run most of
    its prefix, or when it shares far more with the prompt after it: two histories' questions, which
    share only the system prompt, stay two groups. The rest are batched by length so padding stays
    small. The shared prefix always leaves each prompt at least one token of its own, which generation
    needs as input.
    """
    ordered = sorted(members, key=lambda i: ids[i])
    # tokens each prompt shares with the next in this order, each keeping one token of its own
    links = [min(common_prefix_length(ids[a], ids[b]), len(ids[a]) - 1, len(ids[b]) - 1)
             for a, b in zip(ordered, ordered[1:])] + [0]
    groups: list[tuple[list[int], int]] = []
    for position, index in enumerate(ordered):
        if groups:
            group, shared = groups[-1]
            common = min(shared, links[position - 1])  # sorted order: what it shares with the whole run
            keeps_most = len(group) == 1 or 2 * common >= shared
            if common >= min_shared and keeps_most and 2 * common >= links[position]:
                groups[-1] = (group + [index], common)
                continue
        groups.append(([index], len(ids[index]) - 1))
    batches, singles = [], []
    for group, shared in groups:
        if len(group) == 1:
            singles += group
            continue
        group = sorted(group, key=lambda i: len(ids[i]))
        batches += [(group[s:s + batch_size], shared) for s in range(0, len(group), batch_size)]
    singles.sort(key=lambda i: len(ids[i]))
    batches += [(singles[s:s + batch_size], 0) for s in range(0, len(singles), batch_size)]
    return batches


@dataclass
class SharedPrefix:
    """A prompt prefix computed once: its token ids and the model's key/value cache for them."""

    ids: list[int]
    cache: object
    fresh: bool = True  # computed for this batch rather than found in the store

    @property
    def length(self) -> int:
        return len(self.ids)

    def expanded(self, rows: int):
        """A copy of the cache repeated for ``rows`` prompts (generation extends it in place)."""
        import copy

        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def prefill(model, input_ids, attention_mask):
    """The key/value cache of a (left-padded) batch, read with the position ids ``generate`` would give it,
    so a later ``generate`` over the same tokens plus more continues from it as if it had read them itself.

    Only the last position's logits are computed: the cache is what is wanted, and scoring every
    position through the vocabulary-sized head would cost about a fifth of a small model's forward pass.
    """
    import torch

    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                     use_cache=True, logits_to_keep=1).past_key_values


class PrefixStore:
    """The last few computed prefixes, so a history split across calls (result chunks) is read once."""

    def __init__(self, keep: int = 2):
        self.keep, self._items = keep, []

    def get(self, model, ids: list[int]) -> SharedPrefix:
        import torch

        key = tuple(ids)
        for item in self._items:
            if tuple(item.ids) == key:
                return SharedPrefix(item.ids, item.cache, fresh=False)
        tokens = torch.tensor([ids], device=model.device)
        item = SharedPrefix(list(ids), prefill(model, tokens, torch.ones_like(tokens)))
        self._items = ([item] + self._items)[:self.keep]
        return item


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


def _generate_on_cpu(model, input_ids, attention, max_new_tokens: int, options: dict, extra: dict):
    """Generate with the prompt read by SDPA attention and the reply written by eager attention.

    On a CPU, SDPA reads a long left-padded prompt several times faster than eager attention, but
    each decoding step over a padded cache is about 2-3x slower (measured with SmolLM2 on 2 cores:
    8 steps of a batch of 7 over 3k tokens, 6-10 s with SDPA, 2.9 s eager). Both compute the same
    attention, so greedy replies are the same tokens; the first new token comes from the prompt pass.
    """
    import torch

    first = model.generate(input_ids=input_ids, attention_mask=attention, **extra,
                           **with_options(options, max_new_tokens=1, return_dict_in_generate=True))
    sequences = first.sequences
    if first.past_key_values is None:
        return sequences
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        mask = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        return model.generate(input_ids=sequences, attention_mask=mask, past_key_values=first.past_key_values,
                              **with_options(options, max_new_tokens=max_new_tokens - 1))
    finally:
        model.set_attn_implementation(previous)


def sample_completions(model, tokenizer, prompts: list[str] | list[list[int]], max_new_tokens: int,
                       temperature: float, top_p: float = 1.0, top_k: int | None = None,
                       prefix: SharedPrefix | None = None, synced_gpus: bool | None = None) -> list[Completion]:
    """Generate one reply per (already templated) prompt in a single left-padded batch.

    Prompts are texts or token ids. With ``prefix`` (tokens every prompt starts with, already
    computed) only the rest of each prompt is run through the model; the replies are the same as
    without it. ``top_k=0`` with ``top_p=1.0`` samples from the model's full distribution, as RL needs.
    ``synced_gpus`` goes to ``generate`` (None: transformers decides, which under ZeRO-3 or FSDP means
    every rank steps token by token with the others).
    """
    import torch

    if prompts and isinstance(prompts[0], str):
        prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = prefix.length if prefix is not None else 0
    if prefix is not None and any(list(p[:shared]) != prefix.ids or len(p) <= shared for p in prompts):
        raise ValueError("every prompt must start with the shared prefix and go on past it")
    pad = tokenizer.pad_token_id
    width = max(len(p) - shared for p in prompts)
    rows = [[pad] * (width - len(p) + shared) + list(p[shared:]) for p in prompts]
    mask = [[0] * (width - len(p) + shared) + [1] * (len(p) - shared) for p in prompts]
    input_ids = torch.tensor(rows, device=model.device)
    attention = torch.tensor(mask, device=model.device)
    extra = {}
    if prefix is not None:  # the prefix tokens go first, and their keys and values come from the cache
        head = torch.tensor([prefix.ids], device=model.device).expand(len(prompts), -1)
        input_ids = torch.cat([head, input_ids], dim=1)
        attention = torch.cat([torch.ones_like(head), attention], dim=1)
        extra["past_key_values"] = prefix.expanded(len(prompts))
    sample = temperature > 0
    options = dict(do_sample=sample, temperature=temperature if sample else None, top_p=top_p if sample else None,
                   top_k=top_k if sample else None, pad_token_id=pad)
    if synced_gpus is not None:
        options["synced_gpus"] = synced_gpus
    output = generate_tokens(model, input_ids, attention, max_new_tokens, options, extra)
    done = []
    for position, prompt in enumerate(prompts):
        new_tokens = output[position, input_ids.shape[1]:]
        length = reply_length(new_tokens, [tokenizer.eos_token_id, pad])
        kept = new_tokens[:length or len(new_tokens)]
        done.append(Completion(prompt_ids=list(prompt), completion_ids=kept.tolist(),
                               text=tokenizer.decode(kept, skip_special_tokens=True),
                               finish_reason="stop" if length else "length"))
    return done


def generate_tokens(model, input_ids, attention, max_new_tokens: int, options: dict, extra: dict):
    """``model.generate``'s sequences (prompt columns first), on a CPU through :func:`_generate_on_cpu`.

    ``options`` are sampling arguments (or a ``generation_config``); ``extra`` goes to the prompt pass
    only, e.g. a ``past_key_values`` cache that already holds the first prompt columns.
    """
    import torch

    with torch.no_grad():
        if model.device.type != "cpu" or max_new_tokens < 2 or not hasattr(model, "set_attn_implementation"):
            return model.generate(input_ids=input_ids, attention_mask=attention, **extra,
                                  **with_options(options, max_new_tokens=max_new_tokens))
        return _generate_on_cpu(model, input_ids, attention, max_new_tokens, options, extra)


def with_options(options: dict, **changes) -> dict:
    """``generate`` arguments ``options`` with ``changes`` made: on a copy of its ``generation_config`` when it
    has one, since transformers warns (and plans to refuse) a config passed beside loose generation arguments."""
    import copy

    if "generation_config" not in options:
        return {**options, **changes}
    config = copy.deepcopy(options["generation_config"])
    config.update(**changes)
    return {**options, "generation_config": config}


def reply_length(new_tokens, stop_ids) -> int | None:
    """Tokens of a reply up to and including its first stop token; None when it has none (cut at the cap)."""
    import torch

    stops = torch.isin(new_tokens, torch.tensor(list(stop_ids), device=new_tokens.device))
    return int(stops.nonzero()[0, 0]) + 1 if stops.any() else None
