"""Measure training speed for one profile: seconds per optimizer step, tokens per second, peak memory.

Runs a short SFT and a short GRPO (from the SFT weights) into a temporary folder (or ``--keep DIR``)
with the same functions the notebooks call, then reads each run's metrics.csv. The first step is
reported apart, since it includes warm-up (allocation, compilation, vLLM start). On a GPU, peak memory
is the GPU's, per stage; on CPU it is the process's peak resident memory so far. For GRPO it also
prints what shows the run learned something: the mean reward, the share of prompt groups whose
rewards did not vary (no gradient), and how far the weights moved from the SFT init.

With ``--reuse both`` GRPO runs twice from the same SFT weights, with ``grpo.reuse_prompts`` on and
off, and each GRPO row also says how long rollout generation took in all (``generate_s``).

    python benchmarks/train_throughput.py [--profile tiny] [--sft-steps 3] [--grpo-steps 3]
        [--set model.name=/path/to/Qwen3-0.6B --set grpo.use_vllm=false] [--reuse both] [--threads 1]
    python benchmarks/train_throughput.py --profile laptop --set model.device=cuda   # bf16 on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pandas as pd

from pmv2nb import config
from pmv2nb.config import with_overrides
from pmv2nb.train.common import on_gpu, read_metrics, training_dtypes, weight_change
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


def peak_memory_gb() -> dict:
    """The peak since the last call on a GPU (so each stage gets its own), the process's peak on CPU."""
    import torch

    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        return {"peak_gpu_gb": round(peak / 2**30, 2)}
    return {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def learning_signal(metrics: pd.DataFrame, init: Path, trained: Path) -> dict:
    """GRPO's evidence of learning: mean reward, groups without reward spread, weights moved from the init."""
    steps = metrics[metrics["loss"].notna()]
    moved = weight_change(init, trained)
    return {"mean_reward": round(float(steps["reward"].mean()), 3),
            "zero_std_groups": round(float(steps["frac_reward_zero_std"].mean()), 3),
            "tensors_changed": f"{moved['tensors_changed']}/{moved['tensors']}",
            "relative_change": f"{moved['relative_change']:.2e}"}


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
    parser.add_argument("--keep", metavar="DIR", help="write the runs to DIR/sft and DIR/grpo and keep them")
    parser.add_argument("--reuse", choices=("profile", "both"), default="profile",
                        help="'both': GRPO with grpo.reuse_prompts on and then off, from the same SFT weights")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own); 1 keeps timings steady on a shared CPU")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.resolve(args.profile, {**config.parse_assignments(args.set), "sft.max_steps": args.sft_steps,
                                            "sft.rows": args.rows, "grpo.max_steps": args.grpo_steps,
                                            "grpo.rows": args.rows})
    rows = []
    with (nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as folder:
        sft_dir, grpo_dir = Path(folder) / "sft", Path(folder) / "grpo"
        peak_memory_gb()
        train_sft(profile, sft_dir, progress=False, restart=True)
        rows.append({**step_table(read_metrics(sft_dir), "sft"), **peak_memory_gb(),
                     "samples_per_step": profile.sft.batch_size})
        reuse_choices = (True, False) if args.reuse == "both" else (profile.grpo.reuse_prompts,)
        for reuse in reuse_choices:
            run = with_overrides(profile, {"grpo.reuse_prompts": reuse})
            with generation_clock() as generate_s:
                train_grpo(run, grpo_dir, str(sft_dir), cache=Path(folder) / "calls.sqlite", progress=False,
                           restart=True)
            label = "grpo" if profile.grpo.use_vllm else "grpo" + (" reuse" if reuse else " no reuse")
            rows.append({**step_table(read_metrics(grpo_dir), label), **peak_memory_gb(),
                         "samples_per_step": completions_per_step(profile.grpo), "generate_s": round(generate_s[0], 2),
                         **learning_signal(read_metrics(grpo_dir), sft_dir, grpo_dir)})
    weights, mixed = training_dtypes(profile)
    print(json.dumps({"profile": profile.name, "model": profile.model.name, "use_vllm": profile.grpo.use_vllm,
                      "device": "cuda" if on_gpu(profile) else "cpu", "weights": weights, "mixed_precision": mixed,
                      "sft_max_length": profile.sft.max_length, "grpo_max_prompt": profile.grpo.max_prompt_length,
                      "grpo_mcq_fraction": profile.grpo.mcq_fraction, "torch_threads": torch.get_num_threads()}))
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
