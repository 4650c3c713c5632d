"""SFT cold start with TRL's SFTTrainer: teach the answer formats before reinforcement learning.

Examples are stored as conversations (``messages``) and handed to TRL as prompt/completion pairs,
so the loss covers only the final reply: the tens of thousands of history tokens, including the
old chatbot turns inside them, are context, not targets.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..config import Profile
from ..data.loader import load_profile_split
from ..models import tokenizer_for
from .common import (
    MetricsCSV, accumulation, clear_run_folder, hardware_args, lora_config, policy, starting_point,
    protocol_record, train_and_save, training_dtypes,
)
from .examples import sft_examples


def to_prompt_completion(examples: list[dict]) -> list[dict]:
    """TRL's conversational prompt/completion form: everything but the last message, then the last message."""
    return [{"prompt": e["messages"][:-1], "completion": e["messages"][-1:]} for e in examples]


def train_sft(profile: Profile, out: str | Path, init: str | None = None, *, progress: bool = True) -> dict:
    """Run the profile's SFT recipe (``profile.sft``) and save the result in ``out``; returns a summary dict.

    Steps, LoRA, the train-row slice and the micro-batch are settings (``sft.max_steps`` ...): change
    them with :func:`pmv2nb.config.resolve` or :func:`~pmv2nb.config.with_overrides`.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    settings = profile.sft
    steps, lora = settings.max_steps, settings.use_lora
    out = Path(out)
    micro_batch = settings.micro_batch or 1  # long-context examples: one sequence per device pass unless asked
    hardware = hardware_args(profile, "SFT")
    start = starting_point(profile, init)
    tokenizer = tokenizer_for(start)
    size = profile.data.context_size

    train_split = load_profile_split(profile, "train")
    train, report = sft_examples(train_split, tokenizer, settings.max_length, size, limit=settings.rows,
                                 think=settings.think_instruction, progress=progress, style=profile.train_prompt)
    val_split = load_profile_split(profile, "val")
    val, _ = sft_examples(val_split, tokenizer, settings.max_length, size, limit=settings.eval_rows,
                          think=settings.think_instruction, progress=False, style=profile.train_prompt)

    model, init_kwargs = policy(start, training_dtypes(profile)[0])
    config = SFTConfig(
        output_dir=str(out), max_steps=steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=micro_batch, per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation(settings.batch_size, micro_batch),
        max_length=settings.max_length, truncation_mode="keep_start", completion_only_loss=True,
        eval_strategy="steps", eval_steps=min(settings.eval_every, steps), lr_scheduler_type="cosine",
        max_grad_norm=settings.max_grad_norm,
        warmup_steps=0.05,
        disable_tqdm=not progress, **hardware,
        model_init_kwargs=init_kwargs,
    )
    clear_run_folder(out)
    metrics = MetricsCSV(out, "sft")
    trainer = SFTTrainer(
        model=model, args=config, processing_class=tokenizer,
        train_dataset=Dataset.from_list(to_prompt_completion(train)),
        eval_dataset=Dataset.from_list(to_prompt_completion(val)),
        peft_config=lora_config(settings.lora_rank) if lora else None, callbacks=[metrics],
    )
    summary = {"stage": "sft", "profile": profile.name, "init": start, "out": str(out), "lora": lora,
               "steps": steps, "examples": len(train), "eval_examples": len(val), "lengths": report.summary(),
               "settings": asdict(settings), **protocol_record(profile)}
    return train_and_save(trainer, out, tokenizer, summary)


def sft_run_for(profile: Profile, folder: str | Path | None = None) -> Path:
    """The SFT run a later stage starts from: ``folder``, else ``runs/sft-<profile>``.

    A missing run is trained on the spot in the offline CPU profiles (minutes); in the GPU profiles
    it is an error that points at notebook 03, since that run takes hours.
    """
    path = Path(folder) if folder else profile.path("runs") / f"sft-{profile.name}"
    if not (path / "run.json").is_file():
        if not profile.offline:
            raise FileNotFoundError(f"no SFT run in {path}: run notebook 03 (or `pmv2nb sft`) first, or set SFT_DIR")
        print(f"no SFT run in {path}; training the {profile.name} profile's one now ({profile.sft.max_steps} steps)")
        train_sft(profile, path, progress=False)
    return path
