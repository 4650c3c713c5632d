"""Measure what reading each history once saves in the local transformers backend.

The same multiple-choice prompts of the mini benchmark (a persona's questions share its whole
history) are answered greedily twice: with the shared prefix computed once per history and reused
for each question, and with every prompt read in full. It prints rows per second both ways, the
prompt tokens that reuse did not recompute, whether the replies are the same token for token, and
on its last line ``speedup X.XX``. The model is loaded and warmed up before timing.

    python benchmarks/history_reuse.py [--profile laptop] [--rows 28] [--max-tokens 8] [--batch-size 8]
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
from pmv2nb.models import BUILTIN_MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--model", default=None, help="an hf: path or built-in name (default: the profile's model)")
    parser.add_argument("--rows", type=int, default=28)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    profile = config.resolve(args.profile)
    model = args.model or profile.model.name
    if model not in BUILTIN_MODELS and profile.model.requires_gpu:
        raise SystemExit("this benchmark measures the local transformers backend; give --model or a CPU profile")
    data = load_profile_split(profile, "benchmark")
    rows = rows_with_history(data, "32k", args.rows)
    sampling = Sampling(max_tokens=args.max_tokens, temperature=0.0, seed=profile.seed)
    requests = [ChatRequest(build_task(data, row, "mcq", "32k").messages, sampling) for row in rows]
    timings, replies = {}, {}
    for label, min_shared in (("reuse", None), ("full prompts", 10 ** 9)):
        options = {} if min_shared is None else {"min_shared_prefix": min_shared}
        backend = HFBackend(model, dtype=profile.model.dtype, batch_size=args.batch_size, **options)
        backend.generate(requests[:1])  # load and warm up
        backend.prefill_tokens_saved = 0
        started = time.perf_counter()
        replies[label] = [r.text for r in backend.generate(requests)]
        timings[label] = (time.perf_counter() - started, backend.prefill_tokens_saved, backend._resolved()[1])
    report = {"model": model, "rows": len(rows), "histories": data.questions.iloc[rows]["persona_id"].nunique(),
              "max_tokens": args.max_tokens, "dtype": timings["reuse"][2],
              "rows_per_s_reuse": round(len(rows) / timings["reuse"][0], 3),
              "rows_per_s_full": round(len(rows) / timings["full prompts"][0], 3),
              "prefill_tokens_saved": timings["reuse"][1],
              "identical_replies": replies["reuse"] == replies["full prompts"]}
    print(json.dumps(report, indent=2))
    print(f"speedup {timings['full prompts'][0] / timings['reuse'][0]:.2f}")


if __name__ == "__main__":
    main()
