"""The preflight plan against measurements: the GPU numbers the README holds, and CPU peaks measured here.

(a) Every GPU measurement in the README's "Measured on one GPU" table (one H200, offline models), beside the
plan of the same profile, sizes and precision on an H200: peak memory (PyTorch's max_memory_allocated, so the
plan's CUDA-context part is left out) and seconds per step.
(b) One training step of the tiny Qwen3 and SmolLM2 on this CPU at several lengths, each in a fresh process:
the model is loaded in float32 (what training_dtypes gives on a CPU without bf16 units), TRL's fused LM head is
added as SFTTrainer/GRPOTrainer add it, Adam's moments are created first (so the step measured is a steady
one), then one forward, backward and optimizer step. Measured: peak resident memory minus resident memory
before the model was loaded, i.e. weights, gradients, moments, activations, logits and mask together: the
same parts the plan adds up for a CPU (which has no CUDA context). With and without gradient checkpointing, so
both activation formulas are checked.

    python benchmarks/plan_validation.py [--only gpu|cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from pmv2nb import config
from pmv2nb.train.plan import CARDS, GIB, Hardware, plan_stage

# README.md, "Measured on one GPU" (one H200; python benchmarks/train_throughput.py --profile P --set
# model.device=cuda --set grpo.mcq_fraction=1.0): sizes are each profile's own; bf16 rows trained bf16 weights
GPU_ROWS = [
    {"row": "tiny Qwen3, SFT, bf16", "profile": "tiny", "stage": "sft", "weights": "bf16", "s_step": 0.32, "gb": 0.19},
    {"row": "tiny Qwen3, GRPO, bf16", "profile": "tiny", "stage": "grpo", "weights": "bf16", "s_step": 2.66,
     "gb": 0.20},
    {"row": "tiny Qwen3, SFT, fp32 master", "profile": "tiny", "stage": "sft", "weights": "fp32", "s_step": 0.35,
     "gb": 0.29},
    {"row": "tiny Qwen3, GRPO, fp32 master", "profile": "tiny", "stage": "grpo", "weights": "fp32", "s_step": 2.62,
     "gb": 0.27},
    {"row": "SmolLM2-135M, SFT, bf16", "profile": "laptop", "stage": "sft", "weights": "bf16", "s_step": 0.65,
     "gb": 1.29},
    {"row": "SmolLM2-135M, GRPO, bf16", "profile": "laptop", "stage": "grpo", "weights": "bf16", "s_step": 1.79,
     "gb": 1.26},
]
WEIGHTS = {"bf16": {"model.dtype": "bfloat16", "model.train_weights": "dtype"},
           "fp32": {"model.dtype": "bfloat16", "model.train_weights": "float32"}}

# (profile, stage, rows, length or (prompt, completion), gradient checkpointing)
CPU_CASES = [
    ("tiny", "sft", 1, 1536, False), ("tiny", "sft", 1, 4096, False), ("tiny", "sft", 1, 8192, False),
    ("laptop", "sft", 1, 1024, False), ("laptop", "sft", 1, 2048, False), ("laptop", "sft", 1, 3072, False),
    ("laptop", "sft", 1, 2048, True), ("laptop", "sft", 1, 4096, True),
    ("laptop", "grpo", 4, (640, 24), False), ("laptop", "grpo", 4, (1024, 64), True),
]


def cpu_profile(name: str, stage: str, rows: int, length) -> config.Profile:
    if stage == "sft":
        return config.resolve(name, {"sft.max_length": length, "sft.micro_batch": rows, "sft.batch_size": rows})
    prompt, completion = length
    return config.resolve(name, {"grpo.max_prompt_length": prompt, "grpo.max_completion_length": completion,
                                 "grpo.micro_batch": rows, "grpo.batch_size": 1, "grpo.num_generations": rows})


def rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def measure(name: str, stage: str, rows: int, length, checkpointing: bool, threads: int) -> dict:
    """One steady training step in this (fresh) process; bytes above the resident memory before the model."""
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from pmv2nb.models import load_causal_lm, model_path

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    profile = cpu_profile(name, stage, rows, length)
    path = model_path(profile)
    before = rss_now()
    model = load_causal_lm(path, "float32")
    if checkpointing:
        model.gradient_checkpointing_enable()
    outputs = ("log_probs", "entropy", "is_top1") if stage == "sft" else ("log_probs", "entropy")  # as TRL asks
    add_fused_lm_head(model, outputs=outputs)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)  # the Trainer's adamw_torch_fused
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    vocab = model.config.vocab_size
    if stage == "sft":
        ids = torch.randint(0, vocab, (rows, length))
        mask, labels = torch.ones_like(ids), ids.clone()
    else:
        prompt, completion = length
        ids = torch.randint(0, vocab, (rows, prompt + completion))
        mask = torch.ones_like(ids)
        mask[1:, :8] = 0  # left padding, as TRL pads prompts across a batch: the sdpa mask is built
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :prompt] = -100
    import time

    started = time.perf_counter()
    output = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    (-output.log_probs.sum() / max(1, int((labels != -100).sum()))).backward()
    optimizer.step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"measured_gib": (peak - before) / GIB, "seconds": seconds}


def planned(profile: config.Profile, stage: str, hardware: Hardware) -> tuple[float, float]:
    """(GiB of the forward/backward phase without the CUDA context, seconds per step) as the plan has them."""
    plan = plan_stage(profile, stage, hardware)
    parts = {**plan.resident, **plan.phases["forward/backward"]}
    parts.pop("CUDA context, allocator slack", None)
    return sum(parts.values()) / GIB, plan.step_seconds


def miss(plan: float, measured: float) -> str:
    return f"{(plan - measured) / measured:+.0%}"


def gpu_table() -> list[dict]:
    h200 = Hardware(gpus=1, card=CARDS["h200"])
    rows = []
    for row in GPU_ROWS:
        profile = config.resolve(row["profile"], {"model.device": "cuda", "grpo.mcq_fraction": 1.0,
                                                  **WEIGHTS[row["weights"]]})
        gib, seconds = planned(profile, row["stage"], h200)
        measured_gib = row["gb"]  # train_throughput.py divides by 2**30: GiB
        rows.append({"case": row["row"], "plan GiB": round(gib, 2), "measured GiB": measured_gib,
                     "memory miss": miss(gib, measured_gib), "plan s/step": round(seconds, 3),
                     "measured s/step": row["s_step"], "time miss": miss(seconds, row["s_step"])})
    return rows


def cpu_table(threads: int) -> list[dict]:
    rows = []
    for name, stage, batch, length, checkpointing in CPU_CASES:
        print(f"measuring {name} {stage} {batch} x {length}{' with checkpointing' if checkpointing else ''}",
              file=sys.stderr, flush=True)
        case = json.dumps([name, stage, batch, length, checkpointing, threads])
        done = subprocess.run([sys.executable, __file__, "--worker", case], capture_output=True, text=True,
                              check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        hardware = Hardware(gpus=1, device="cpu", gradient_checkpointing=checkpointing)
        gib, _ = planned(cpu_profile(name, stage, batch, length), stage, hardware)
        sizes = f"{batch} x {length if stage == 'sft' else '+'.join(map(str, length))}"
        rows.append({"case": f"{name} {stage} {sizes}{', checkpointing' if checkpointing else ''}",
                     "plan GiB": round(gib, 2), "measured GiB": round(measured["measured_gib"], 2),
                     "memory miss": miss(gib, measured["measured_gib"]), "step s": round(measured["seconds"], 1)})
    return rows


def markdown(rows: list[dict]) -> str:
    """A Markdown table (for the README) without pandas' optional tabulate."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("gpu", "cpu"), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker))))
        return
    if args.only != "cpu":
        print("(a) README's H200 measurements against the plan on one H200")
        print(markdown(gpu_table()))
    if args.only != "gpu":
        print("\n(b) CPU, one steady step in a fresh process: peak RSS minus RSS before the model, against the plan")
        print(markdown(cpu_table(args.threads)))


if __name__ == "__main__":
    main()
