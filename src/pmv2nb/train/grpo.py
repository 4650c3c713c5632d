"""GRPO with TRL's GRPOTrainer: verifiable MCQ rewards mixed with judge-scored open-ended rewards.

The mix is a parameter: 0.8 (the paper), 1.0 (MCQ only) and 0.0 (open-ended only) give the
paper's recipe and its two ablations from the same code. Generation uses the trainer's own
``generate`` on CPU, reading each repeated prompt once (:mod:`.grpo_reuse`), and vLLM (colocated,
or a separate ``trl vllm-serve`` server) on GPUs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..config import GRPOSettings, Profile
from ..models import tokenizer_for
from .common import (
    EngineValues, accumulation, checkpoint_args, hardware_args, lora_config, report_args, policy, protocol_record,
    start_run_folder, fetched_start, train_and_save, trainer_default_clipping, training_dtypes,
)
from .colocated_vllm import require_vllm
from .plan import preflight
from .prepared import PREPARED_FOLDER
from .examples import prepared_grpo_prompts
from .rewards import rl_rewards


def require_vllm_if_asked(use_vllm: bool) -> None:
    """vLLM generation needs the gpu extra and a CUDA device; say so before any model is loaded."""
    require_vllm(use_vllm, "GRPO generation", "grpo.use_vllm / --vllm-mode",
                 "Without them, train with the tiny profile, which generates with transformers on the CPU.")


def completions_per_step(settings: GRPOSettings) -> int:
    return settings.batch_size * settings.num_generations


def completions_per_update(settings: GRPOSettings) -> int:
    """Completions behind one optimizer update: a rollout batch split ``grpo.updates_per_batch`` ways."""
    total, updates = completions_per_step(settings), settings.updates_per_batch
    if updates < 1 or total % updates or (total // updates) % settings.num_generations:
        raise ValueError(f"grpo.updates_per_batch {updates} must split the {settings.batch_size} prompts of a "
                         f"rollout batch into equal mini-batches of whole prompt groups")
    return total // updates


def micro_batch_for(settings: GRPOSettings) -> int:
    """Completions per forward/backward pass on one device (``grpo.micro_batch``, default: up to 8)."""
    return settings.micro_batch or min(completions_per_update(settings), 8)


def schedule_args(settings: GRPOSettings, processes: int | None = None) -> dict:
    """GRPOConfig's step, batch and schedule arguments for ``grpo.*``.

    ``grpo.updates_per_batch`` U: one rollout batch of ``batch_size`` prompts feeds U optimizer updates,
    each on 1/U of it (the authors: 32 prompts in mini-batches of 16, so 2), so TRL counts U optimizer
    steps per rollout batch; ``grpo.max_steps`` counts rollout batches, as the paper's "about 500 steps".
    ``processes``: the launch's (WORLD_SIZE) unless given, as the preflight plan gives its GPU count.
    """
    micro = micro_batch_for(settings)
    per_update = accumulation(completions_per_update(settings), micro, processes)
    return {"max_steps": settings.max_steps * settings.updates_per_batch, "lr_scheduler_type": settings.lr_scheduler,
            "per_device_train_batch_size": micro, "gradient_accumulation_steps": per_update,
            "steps_per_generation": per_update * settings.updates_per_batch}


IMPORTANCE_SAMPLING = ("off", "sequence_mask", "token_mask", "sequence_truncate", "token_truncate")


def vllm_config_args(settings: GRPOSettings) -> dict:
    """GRPOConfig's vLLM arguments for ``grpo.*``; nothing without vLLM.

    TRL switches its importance-sampling correction on by default (a rollout whose sampling ratio passes 3
    is masked); neither protocol has it, so it is a named setting here, off unless asked for.
    """
    from ..config import check_choice

    check_choice("grpo.vllm_importance_sampling", settings.vllm_importance_sampling, IMPORTANCE_SAMPLING)
    if not settings.use_vllm:
        return {}
    correction = settings.vllm_importance_sampling != "off"
    args = {"use_vllm": True, "vllm_mode": settings.vllm_mode,
            "vllm_gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
            "vllm_max_model_length": settings.max_prompt_length + settings.max_completion_length,
            "vllm_importance_sampling_correction": correction}
    if correction:
        args.update(vllm_importance_sampling_mode=settings.vllm_importance_sampling,
                    vllm_importance_sampling_clip_max=settings.vllm_importance_sampling_cap)
    if settings.vllm_mode == "colocate":
        args["vllm_enable_sleep_mode"] = settings.vllm_sleep_mode
    if settings.vllm_mode == "server" and settings.vllm_server_url:
        args["vllm_server_base_url"] = settings.vllm_server_url
    return args


def train_grpo(profile: Profile, out: str | Path, init: str | None = None, *, cache: str | Path | None = None,
               progress: bool = True, restart: bool = False) -> dict:
    """Run the profile's GRPO recipe (``profile.grpo``) from ``init`` (usually the SFT run folder) into ``out``.

    The task mix, judge, steps, LoRA and vLLM use are settings (``grpo.mcq_fraction`` ...); notebook 04's
    ablations change them with :func:`~pmv2nb.config.with_overrides`.
    """
    from trl import GRPOConfig

    from .grpo_reuse import PromptReuseGRPOTrainer

    settings = profile.grpo
    out = Path(out)
    if settings.vllm_server_url and not (settings.use_vllm and settings.vllm_mode == "server"):
        raise ValueError("a vLLM server URL needs server mode: add --vllm-mode server "
                         "(or set grpo.use_vllm=true and grpo.vllm_mode=server)")
    hardware = hardware_args(profile, "GRPO")
    reporting = report_args(profile)
    schedule = schedule_args(settings)
    preflight(profile, "grpo", EngineValues(trainer_default_clipping(GRPOConfig), "GRPOConfig's max_grad_norm",
                                            schedule["gradient_accumulation_steps"],
                                            schedule["per_device_train_batch_size"],
                                            training_dtypes(profile, settings.use_lora)[1]))
    require_vllm_if_asked(settings.use_vllm)
    rewards = rl_rewards(settings, profile.eval, cache or profile.cache_path())
    start = fetched_start(profile, init)
    tokenizer = tokenizer_for(start)

    prompts, info = prepared_grpo_prompts(profile, tokenizer, Path(out).parent / PREPARED_FOLDER, progress=progress)
    if not info["prompts"]:
        raise ValueError(f"no GRPO prompts left: all {info['dropped_rows']} rows are longer than "
                         f"{settings.drop_over or settings.max_prompt_length} tokens and grpo.long_prompts is 'drop'; "
                         f"raise grpo.drop_over or set grpo.long_prompts=cut")
    vllm_args = vllm_config_args(settings)
    model, init_kwargs = policy(start, training_dtypes(profile, settings.use_lora)[0])
    config = GRPOConfig(
        output_dir=str(out), learning_rate=settings.learning_rate, **schedule,
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, beta=settings.beta, disable_tqdm=not progress,
        model_init_kwargs=init_kwargs,
        **checkpoint_args(settings), **vllm_args, **hardware, **reporting,
    )
    folder = start_run_folder(out, "grpo", restart)
    trainer = PromptReuseGRPOTrainer(
        model=model, reward_funcs=rewards, args=config, processing_class=tokenizer,
        reuse_prompts=settings.reuse_prompts,
        train_dataset=prompts, callbacks=folder.callbacks(),
        peft_config=lora_config(settings.lora_rank) if settings.use_lora else None,
    )
    summary = {"stage": "grpo", "profile": profile.name, "init": start, "out": str(out), "steps": settings.max_steps,
               "prompts": info["prompts"], "mcq_prompts": info["mcq_prompts"],
               "lengths": info["lengths"], "settings": asdict(settings), **protocol_record(profile)}
    return train_and_save(trainer, folder, tokenizer, summary)
