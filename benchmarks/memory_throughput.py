"""Measure the memory agent's update loop: users per second and generated tokens per second,
batching every user's update into one request per step versus updating one user at a time.

Each user is a (history, question) pair with the query shown in its updates, so no two users share
notes and nothing is answered from a cache; the backend is used directly. The model is loaded and
warmed up before timing. On a GPU use a vLLM spec; on CPU the HF backend with the tiny model.

    python benchmarks/memory_throughput.py [--profile tiny] [--model hf:tiny] [--users 16] [--max-chunks 2]
    python benchmarks/memory_throughput.py --profile small --model vllm:Qwen/Qwen3-0.6B --users 16
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from pmv2nb import config
from pmv2nb.backends import ChatRequest, Sampling, make_backend
from pmv2nb.data.loader import load_profile_split
from pmv2nb.evaluate.tasks import rows_with_history
from pmv2nb.memory.agent import Chunker, run_updates
from pmv2nb.memory.run import backend_rewriter
from pmv2nb.models import default_model_spec, tokenizer_for


def users(profile: config.Profile, model: str, count: int, max_chunks: int | None):
    """``count`` update jobs, taken from the benchmark split first, then train and val if it runs short."""
    settings = replace(profile.memory, max_chunks=max_chunks or profile.memory.max_chunks)
    tokenizer = tokenizer_for(model)
    jobs = []
    for split in ("benchmark", "train", "val"):
        data = load_profile_split(profile, split)
        chunker = Chunker(data, tokenizer, settings)
        jobs += [chunker.job(row, data.questions["query_text"].iat[row]) for row in rows_with_history(data, "32k")]
        if len(jobs) >= count:
            break
    if len(jobs) < count:
        raise SystemExit(f"only {len(jobs)} users available, fewer than --users {count}")
    return jobs[:count], settings


def timed(jobs, backend, sampling, settings, group: int) -> dict:
    started = time.perf_counter()
    generated = updates = 0
    for start in range(0, len(jobs), group):
        trajectories = run_updates(jobs[start:start + group], backend_rewriter(backend, sampling), settings)
        for trajectory in trajectories.values():
            generated += sum(step.tokens_out for step in trajectory.steps)
            updates += len(trajectory.steps)
    seconds = time.perf_counter() - started
    return {"users_per_batch": group, "seconds": round(seconds, 2), "updates": updates,
            "users_per_s": round(len(jobs) / seconds, 3), "generated_tokens_per_s": round(generated / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--model", default=None, help="backend spec (default: the profile's model)")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--max-chunks", type=int, default=None, help="fewer chunks per user for a quicker run")
    args = parser.parse_args()
    profile = config.resolve(args.profile)
    model = args.model or default_model_spec(profile)
    jobs, settings = users(profile, model, args.users, args.max_chunks)
    backend = make_backend(model, concurrency=args.users, batch_size=args.users)
    sampling = Sampling(max_tokens=settings.memory_tokens, temperature=0.7, seed=profile.seed)
    backend.generate([ChatRequest([{"role": "user", "content": "Hello"}], replace(sampling, max_tokens=8))])  # warm-up
    batched = timed(jobs, backend, sampling, settings, len(jobs))
    single = timed(jobs, backend, sampling, settings, 1)
    import torch

    report = {"profile": profile.name, "model": model, "users": len(jobs), "chunk_tokens": settings.chunk_tokens,
              "max_chunks": settings.max_chunks, "memory_tokens": settings.memory_tokens,
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "batched": batched, "one_at_a_time": single,
              "speedup": round(batched["users_per_s"] / single["users_per_s"], 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
