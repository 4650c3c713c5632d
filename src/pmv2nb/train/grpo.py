"""GRPO with TRL's GRPOTrainer: verifiable MCQ rewards mixed with judge-scored open-ended rewards.

The mix is a parameter: 0.8 (the paper), 1.0 (MCQ only) and 0.0 (open-ended only) give the
paper's recipe and its two ablations from the same code. Generation uses the trainer's own
``generate`` on CPU and vLLM (colocated, or a separate ``trl vllm-serve`` server) on GPUs.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from ..config import GRPOSettings, Profile
from ..data.loader import load_profile_split
from ..evaluate.runner import default_cache_path
from .common import (
    MetricsCSV, accumulation, clear_run_folder, hardware_args, lora_config, policy, starting_point, tokenizer_for,
    train_and_save, training_dtypes,
)
from .examples import grpo_prompts
from .rewards import mixed_rewards


def require_vllm_if_asked(use_vllm: bool) -> None:
    """vLLM generation needs the gpu extra and a CUDA device; say so before any model is loaded."""
    if not use_vllm:
        return
    from ..backends.vllm_offline import VLLMUnavailableError, require_vllm

    try:
        require_vllm()
    except VLLMUnavailableError:
        raise VLLMUnavailableError(
            'GRPO generation with vLLM (grpo.use_vllm / --vllm-mode) needs an NVIDIA GPU and the gpu extra '
            '(pip install -e ".[gpu]"). Without them, train with the tiny profile, which generates with '
            'transformers on the CPU.') from None


def completions_per_step(settings: GRPOSettings) -> int:
    return settings.batch_size * settings.num_generations


def micro_batch_for(settings: GRPOSettings, micro_batch: int | None = None) -> int:
    """Completions per forward/backward pass on one device (default: up to 8)."""
    return micro_batch or min(completions_per_step(settings), 8)


def train_grpo(profile: Profile, out: str | Path, init: str | None = None, *, mcq_fraction: float | None = None,
               judge: str | None = None, max_steps: int | None = None, use_lora: bool | None = None,
               use_vllm: bool | None = None, vllm_mode: str | None = None, vllm_server_url: str | None = None,
               rows: int | None = None, micro_batch: int | None = None, cache: str | Path | None = None,
               progress: bool = True) -> dict:
    """Run the profile's GRPO recipe from ``init`` (usually the SFT run folder) and save it in ``out``."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = profile.grpo
    settings = replace(settings, **{k: v for k, v in {
        "mcq_fraction": mcq_fraction, "judge": judge, "max_steps": max_steps, "use_lora": use_lora,
        "use_vllm": use_vllm, "vllm_mode": vllm_mode}.items() if v is not None})
    out = Path(out)
    if vllm_server_url and not (settings.use_vllm and settings.vllm_mode == "server"):
        raise ValueError("a vLLM server URL needs server mode: add --vllm-mode server")
    hardware = hardware_args(profile, "GRPO")
    require_vllm_if_asked(settings.use_vllm)
    rewards = mixed_rewards(settings.mcq_fraction, settings.judge, settings.judges, cache or default_cache_path(),
                            settings.require_think)
    start = starting_point(profile, init)
    tokenizer = tokenizer_for(start, profile)

    split = load_profile_split(profile, "train")
    records, report = grpo_prompts(split, tokenizer, settings.max_prompt_length, settings.mcq_fraction,
                                   profile.data.context_size, limit=rows, seed=profile.seed, progress=progress)
    micro = micro_batch_for(settings, micro_batch)
    vllm_args = {}
    if settings.use_vllm:
        vllm_args = {"use_vllm": True, "vllm_mode": settings.vllm_mode, "vllm_gpu_memory_utilization": 0.35,
                     "vllm_max_model_length": settings.max_prompt_length + settings.max_completion_length}
        if settings.vllm_mode == "server" and vllm_server_url:
            vllm_args["vllm_server_base_url"] = vllm_server_url
    model, init_kwargs = policy(start, training_dtypes(profile)[0])
    config = GRPOConfig(
        output_dir=str(out), max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation(completions_per_step(settings), micro),
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, beta=settings.beta, disable_tqdm=not progress,
        model_init_kwargs=init_kwargs,
        **vllm_args, **hardware,
    )
    clear_run_folder(out)
    metrics = MetricsCSV(out, "grpo")
    trainer = GRPOTrainer(
        model=model, reward_funcs=rewards, args=config, processing_class=tokenizer,
        train_dataset=Dataset.from_list(records), peft_config=lora_config() if settings.use_lora else None,
        callbacks=[metrics],
    )
    summary = {"stage": "grpo", "profile": profile.name, "init": start, "out": str(out), "steps": settings.max_steps,
               "prompts": len(records), "mcq_prompts": sum(r["task"] == "mcq" for r in records),
               "lengths": report.summary(), "settings": asdict(settings)}
    return train_and_save(trainer, out, tokenizer, summary)
