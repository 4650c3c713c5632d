"""Measure what reading each history once saves in the local transformers backend.

The same multiple-choice prompts of the mini benchmark (a persona's questions share its whole
history) are answered greedily twice: with the shared prefix computed once per history and reused
for each question, and with every prompt read in full. It prints rows per second both ways, the
prompt tokens that reuse did not recompute, whether the replies are the same token for token, and
on its last line ``speedup X.XX``. The model is loaded and warmed up before timing.

``--from-notes`` measures the memory agent's final answers instead: each history is first read into
notes by the agent's update loop (untimed), then every question is answered from its history's notes,
as ``memory run`` asks them; the questions of one persona share the notes. ``--min-shared`` sets the
backend's reuse threshold (default: the backend's own).

    python benchmarks/history_reuse.py [--profile laptop] [--rows 28] [--max-tokens 8] [--batch-size 8]
        [--from-notes] [--min-shared N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

from pmv2nb import config
from pmv2nb.backends import ChatRequest, Sampling
from pmv2nb.backends.hf_local import HFBackend
from pmv2nb.data.loader import load_profile_split
from pmv2nb.evaluate.tasks import build_task, rows_with_history
from pmv2nb.models import BUILTIN_MODELS, tokenizer_for


def notes_prompts(profile: config.Profile, data, rows: list[int], backend: HFBackend) -> list[list[dict]]:
    """The memory agent's answer prompts for ``rows``: notes built by its own update loop, then each question."""
    from pmv2nb.memory.agent import Chunker, run_updates
    from pmv2nb.memory.run import answer_from_notes, backend_rewriter

    settings = profile.memory
    chunker = Chunker(data, tokenizer_for(profile.model.name), settings)
    jobs = {row: chunker.job(row) for row in rows}
    sampling = Sampling(max_tokens=settings.memory_tokens, temperature=0.0, seed=profile.seed)
    trajectories = run_updates(list(jobs.values()), backend_rewriter(backend, sampling), settings)
    notes = {row: trajectories[jobs[row].key].memory for row in rows}
    return [answer_from_notes(build_task(data, row, "mcq", "32k", "none"), notes[row]).messages for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--model", default=None, help="an hf: path or built-in name (default: the profile's model)")
    parser.add_argument("--rows", type=int, default=28)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--from-notes", action="store_true", help="answer from the memory agent's notes")
    parser.add_argument("--min-shared", type=int, default=None, help="shared prompt tokens worth reusing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1: steady on a shared CPU)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    profile = config.resolve(args.profile)
    model = args.model or profile.model.name
    if model not in BUILTIN_MODELS and profile.model.requires_gpu:
        raise SystemExit("this benchmark measures the local transformers backend; give --model or a CPU profile")
    data = load_profile_split(profile, "benchmark")
    rows = rows_with_history(data, "32k", args.rows)
    sampling = Sampling(max_tokens=args.max_tokens, temperature=0.0, seed=profile.seed)
    if args.from_notes:
        messages = notes_prompts(profile, data, rows, HFBackend(model, dtype=profile.model.dtype,
                                                                batch_size=args.batch_size))
    else:
        messages = [build_task(data, row, "mcq", "32k").messages for row in rows]
    requests = [ChatRequest(m, sampling) for m in messages]
    timings, replies = {}, {}
    arms = [("reuse", args.min_shared), ("full prompts", 10 ** 9)]
    if args.min_shared is not None:  # what the backend's own threshold does with the same prompts
        arms.append(("default threshold", None))
    for label, min_shared in arms:
        options = {} if min_shared is None else {"min_shared_prefix": min_shared}
        backend = HFBackend(model, dtype=profile.model.dtype, batch_size=args.batch_size, **options)
        backend.generate(requests[:1])  # load and warm up
        backend.prefill_tokens_saved = 0
        started = time.perf_counter()
        replies[label] = [r.text for r in backend.generate(requests)]
        timings[label] = (time.perf_counter() - started, backend.prefill_tokens_saved, backend._resolved()[1])
    report = {"model": model, "prompts": "notes" if args.from_notes else "histories", "min_shared": args.min_shared,
              "rows": len(rows), "histories": data.questions.iloc[rows]["persona_id"].nunique(),
              "max_tokens": args.max_tokens, "dtype": timings["reuse"][2],
              "rows_per_s_reuse": round(len(rows) / timings["reuse"][0], 3),
              "rows_per_s_full": round(len(rows) / timings["full prompts"][0], 3),
              "prefill_tokens_saved": timings["reuse"][1],
              "identical_replies": replies["reuse"] == replies["full prompts"]}
    if "default threshold" in timings:
        report.update({"rows_per_s_default_threshold": round(len(rows) / timings["default threshold"][0], 3),
                       "prefill_tokens_saved_default_threshold": timings["default threshold"][1]})
    print(json.dumps(report, indent=2))
    print(f"speedup {timings['full prompts'][0] / timings['reuse'][0]:.2f}")


if __name__ == "__main__":
    main()
