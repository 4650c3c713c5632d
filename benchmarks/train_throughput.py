"""Measure training speed for one profile: seconds per optimizer step, tokens per second, peak memory.

Runs a short SFT and a short GRPO (from the SFT weights) into a temporary folder with the same
functions the notebooks call, then reads each run's metrics.csv. The first step is reported apart,
since it includes warm-up (allocation, compilation, vLLM start). On a GPU, peak memory is the GPU's;
on CPU it is the process's peak resident memory.

With ``--reuse both`` GRPO runs twice from the same SFT weights, with ``grpo.reuse_prompts`` on and
off, and each GRPO row also says how long rollout generation took in all (``generate_s``).

    python benchmarks/train_throughput.py [--profile tiny] [--sft-steps 3] [--grpo-steps 3]
        [--set model.name=/path/to/Qwen3-0.6B --set grpo.use_vllm=false] [--reuse both] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from pmv2nb import config
from pmv2nb.config import with_overrides
from pmv2nb.train.common import read_metrics
from pmv2nb.train.grpo import completions_per_step, train_grpo
from pmv2nb.train.sft import train_sft


def step_table(metrics: pd.DataFrame, stage: str) -> dict:
    """Per-step wall time from the log's clock, and tokens per second from TRL's cumulative token count."""
    steps = metrics[metrics["loss"].notna()].drop_duplicates("step", keep="last").sort_values("step")
    seconds = steps["wall_s"].diff().fillna(steps["wall_s"].iloc[0])
    tokens = steps["num_tokens"].diff().fillna(steps["num_tokens"].iloc[0])
    later = seconds.iloc[1:] if len(steps) > 1 else seconds
    later_tokens = tokens.iloc[1:] if len(steps) > 1 else tokens
    return {"stage": stage, "steps": len(steps), "first_step_s": round(float(seconds.iloc[0]), 2),
            "median_step_s": round(float(later.median()), 2),
            "tokens_per_s": round(float(later_tokens.sum() / later.sum()), 1)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def peak_memory_gb() -> dict:
    import torch

    if torch.cuda.is_available():
        return {"peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    return {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


@contextmanager
def generation_clock():
    """Seconds spent in TRL's rollout generation (``_generate``, which every GRPO trainer here inherits)."""
    from trl import GRPOTrainer

    original, spent = GRPOTrainer._generate, [0.0]

    def timed(trainer, prompts):
        started = time.perf_counter()
        try:
            return original(trainer, prompts)
        finally:
            spent[0] += time.perf_counter() - started

    GRPOTrainer._generate = timed
    try:
        yield spent
    finally:
        GRPOTrainer._generate = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--sft-steps", type=int, default=3)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=16, help="train rows to build examples from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="setting override, as on every pmv2nb command, e.g. grpo.use_vllm=false")
    parser.add_argument("--reuse", choices=("profile", "both"), default="profile",
                        help="'both': GRPO with grpo.reuse_prompts on and then off, from the same SFT weights")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own); 1 keeps timings steady on a shared CPU")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    profile = config.resolve(args.profile, {**config.parse_assignments(args.set), "sft.max_steps": args.sft_steps,
                                            "sft.rows": args.rows, "grpo.max_steps": args.grpo_steps,
                                            "grpo.rows": args.rows})
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sft_dir, grpo_dir = Path(folder) / "sft", Path(folder) / "grpo"
        train_sft(profile, sft_dir, progress=False)
        rows.append({**step_table(read_metrics(sft_dir), "sft"), **peak_memory_gb(),
                     "samples_per_step": profile.sft.batch_size})
        reuse_choices = (True, False) if args.reuse == "both" else (profile.grpo.reuse_prompts,)
        for reuse in reuse_choices:
            run = with_overrides(profile, {"grpo.reuse_prompts": reuse})
            with generation_clock() as generate_s:
                train_grpo(run, grpo_dir, str(sft_dir), cache=Path(folder) / "calls.sqlite", progress=False,
                           restart=True)
            rows.append({**step_table(read_metrics(grpo_dir), "grpo" + (" reuse" if reuse else " no reuse")),
                         **peak_memory_gb(), "samples_per_step": completions_per_step(profile.grpo),
                         "generate_s": round(generate_s[0], 2)})
    print(json.dumps({"profile": profile.name, "model": profile.model.name, "use_vllm": profile.grpo.use_vllm,
                      "sft_max_length": profile.sft.max_length, "grpo_max_prompt": profile.grpo.max_prompt_length,
                      "torch_threads": torch_threads()},
                     indent=None))
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
