"""SFT cold start with TRL's SFTTrainer: teach the answer formats before reinforcement learning.

Examples are stored as conversations (``messages``). Which tokens are targets is ``sft.loss_turns``:

- ``final`` (the paper protocol): TRL gets prompt/completion pairs, so the loss covers only the final
  reply; the tens of thousands of history tokens, old chatbot turns included, are context.
- ``all`` (the authors' code): every assistant message is a target, the history's chatbot replies
  too. The conversation is rendered and tokenized here and TRL gets ``input_ids`` with an
  ``assistant_masks`` column, which it turns into labels without tokenizing again. The mask is found
  by character offsets in the rendered text, so it needs no ``{% generation %}`` markers in the
  chat template (SmolLM2's and Qwen3's have none).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import Profile, SFTSettings, check_choice
from ..data.loader import load_profile_split
from ..evaluate.tasks import MODES as TASKS
from ..models import tokenizer_for
from .common import (
    EngineValues, accumulation, checkpoint_args, hardware_args, lora_config, report_args, policy, protocol_record,
    start_run_folder, fetched_start, train_and_save, training_dtypes,
)
from .plan import preflight
from .examples import LengthReport, sft_example_stream, sft_examples
from .prepared import (
    INFO_FILE, PREPARED_FOLDER, ROWS_FILE, code_identity, file_identity, prepared_rows, tokenizer_identity,
    write_token_rows,
)
from .tokens import ChatTokens, common_prefix_length, overlap_mask

LOSS_TURNS = ("final", "all")
TASK_MIXES = ("both", "rl_mix")


def to_prompt_completion(examples: list[dict]) -> list[dict]:
    """TRL's conversational prompt/completion form: everything but the last message, then the last message."""
    return [{"prompt": e["messages"][:-1], "completion": e["messages"][-1:]} for e in examples]


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation as the chat template renders it, and the character span of every assistant reply.

    A span is the reply's text followed by the template's end-of-turn marker (what the model must
    learn to emit to stop). The template is rendered once more with numbered placeholders for the
    contents: the text between placeholders is scaffolding (role headers, end markers, an empty think
    block), and walking that scaffolding through the real rendering tells where each content lies,
    even when the template rewrote it (Qwen3 trims leading newlines of a final reply).
    """
    marks = [f"@@pmv2nb-{i}@@" for i in range(len(messages))]
    skeleton = tokenizer.apply_chat_template([{"role": m["role"], "content": mark} for m, mark in zip(messages, marks)],
                                             tokenize=False)
    text = tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                         tokenize=False)
    pieces, rest = [], skeleton
    for mark in marks:
        before, found, rest = rest.partition(mark)
        if not found:
            raise ValueError(f"the chat template leaves out message {len(pieces)}; sft.loss_turns='all' needs "
                             "every message's text in the rendering")
        pieces.append(before)
    if not text.startswith(pieces[0]) or not text.endswith(rest):
        raise ValueError("the chat template renders this conversation unlike its placeholder version")
    contents, at = [], len(pieces[0])
    for i, message in enumerate(messages):
        after = pieces[i + 1] if i + 1 < len(messages) else rest
        if text.startswith(message["content"] + after, at):  # the usual case: the content as written
            end = at + len(message["content"])
        else:
            end = text.find(after, at) if i + 1 < len(messages) else len(text) - len(rest)
            if end < at:
                raise ValueError(f"message {i} cannot be located in the rendered conversation")
        contents.append((at, end))
        at = end + len(after)
    return text, reply_spans(messages, contents, pieces[1:] + [rest])


def reply_spans(messages: list[dict], contents: list[tuple[int, int]], after: list[str]) -> list[tuple[int, int]]:
    """The character span of each assistant reply: its content and, where the template writes it next, the
    end-of-turn marker that follows the final reply (``after[i]`` is the template's text after content i)."""
    closing = after[-1] if messages and messages[-1]["role"] == "assistant" else ""
    return [(start, end + len(closing) if following.startswith(closing) else end)
            for message, (start, end), following in zip(messages, contents, after) if message["role"] == "assistant"]


def assistant_token_mask(tokenizer, messages: list[dict]) -> dict:
    """``input_ids`` of the rendered conversation and ``assistant_masks``: 1 on each token that overlaps a reply span.

    The ids are the tokenizer's reading of the rendered text, as ``apply_chat_template(tokenize=True)`` gives them.
    """
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask, current = [], 0  # spans and tokens both run left to right: one pass over each (histories are long)
    for start, end in encoded["offset_mapping"]:
        while current < len(spans) and spans[current][1] <= start:
            current += 1
        mask.append(int(current < len(spans) and end > spans[current][0] and start < spans[current][1]))
    return {"input_ids": list(encoded["input_ids"]), "assistant_masks": mask}


def to_token_targets(examples: list[dict], tokenizer) -> list[dict]:
    """The examples pre-tokenized for TRL with every assistant turn as a target (``sft.loss_turns='all'``)."""
    return [assistant_token_mask(tokenizer, e["messages"]) for e in examples]


def token_row(chat: ChatTokens, messages: list[dict], loss_turns: str, max_length: int) -> dict | None:
    """One example as SFTTrainer's own preparation would leave it: ``input_ids`` and ``labels`` (-100 off the
    targets), cut to ``max_length`` from the end; None when the cut leaves no target (TRL drops such rows).

    ``final``: the targets are what prompt + reply adds to the prompt rendered with a generation prompt
    (TRL's prompt/completion rule). ``all``: every token overlapping an assistant reply (:func:`assistant_spans`).
    """
    if loss_turns == "final":
        prompt = chat.ids(messages[:-1], add_generation_prompt=True)
        ids = chat.ids(messages)
        labels = ids.copy()
        labels[:common_prefix_length(prompt, ids)] = -100
    else:
        rendered = chat.render(messages)
        if rendered.contents is None:  # the template rewrote a content: locate the replies the slow way
            encoded = assistant_token_mask(chat.tokenizer, messages)
            ids, mask = np.asarray(encoded["input_ids"], dtype=np.int32), np.asarray(encoded["assistant_masks"])
        else:
            ids, offsets = chat.encode(rendered.text, offsets=True)
            mask = overlap_mask(offsets, reply_spans(messages, list(rendered.contents), list(rendered.pieces[1:])))
        labels = np.where(mask == 1, ids, -100).astype(np.int32)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels} if (labels != -100).any() else None


def prepared_sft_rows(profile: Profile, split: str, tokenizer, limit: int | None, root: str | Path, *,
                      progress: bool = True):
    """A split's SFT rows, ready for SFTTrainer (its own preparation skipped), and what they hold.

    Built once into ``root`` by the first process that gets there (:mod:`pmv2nb.train.prepared`),
    keyed by the data, the tokenizer, the code and every setting that shapes the rows; memory-mapped.
    """
    from .. import answers, prompts
    from . import examples, tokens

    settings = profile.sft
    check_choice("sft.loss_turns", settings.loss_turns, LOSS_TURNS)
    check_choice("sft.task_mix", settings.task_mix, TASK_MIXES)
    data = load_profile_split(profile, split)
    fraction = profile.grpo.mcq_fraction if settings.task_mix == "rl_mix" else None
    shape = dict(max_length=settings.max_length, size=profile.data.context_size, limit=limit,
                 think=settings.think_instruction, mcq_fraction=fraction, seed=profile.seed)
    parts = {"table": file_identity(data.table), "split": split, "tokenizer": tokenizer_identity(tokenizer),
             "code": code_identity(answers, prompts, examples, tokens, sys.modules[__name__]),
             "loss_turns": settings.loss_turns, "style": asdict(profile.train_prompt), **shape}

    def build(folder: Path) -> None:
        builder, stream = sft_example_stream(data, tokenizer, style=profile.train_prompt, progress=progress,
                                             **shape)
        tasks = dict.fromkeys(TASKS, 0)

        def rows():
            for example in stream:
                tasks[example["task"]] += 1
                row = token_row(builder.chat, example["messages"], settings.loss_turns, settings.max_length)
                if row is not None:
                    yield row

        count = write_token_rows(folder / ROWS_FILE, rows(), ("input_ids", "labels"))
        (folder / INFO_FILE).write_text(json.dumps({
            "examples": sum(tasks.values()), "rows": count, "tasks": tasks, "lengths": builder.report.summary(),
            "chat_tokens": builder.chat.stats}))

    return prepared_rows(root, f"sft-{split}", parts, build, f"SFT rows ({split})", progress)


def trainer_rows(examples: list[dict], tokenizer, loss_turns: str) -> list[dict]:
    """The rows SFTTrainer gets for ``sft.loss_turns``: prompt/completion pairs, or pre-tokenized with a mask."""
    check_choice("sft.loss_turns", loss_turns, LOSS_TURNS)
    return to_token_targets(examples, tokenizer) if loss_turns == "all" else to_prompt_completion(examples)


def sft_examples_for(profile: Profile, data, tokenizer, limit: int | None = None, *,
                     progress: bool = True) -> tuple[list[dict], LengthReport]:
    """A split's SFT conversations as the profile builds them (its length, size, think and task-mix settings).

    ``sft.task_mix`` picks the rows' tasks: ``both`` gives every row an MCQ and an open-ended example,
    ``rl_mix`` one example per row in the GRPO mix (``grpo.mcq_fraction``, the profile's seed).
    """
    settings = profile.sft
    check_choice("sft.task_mix", settings.task_mix, TASK_MIXES)
    fraction = profile.grpo.mcq_fraction if settings.task_mix == "rl_mix" else None
    return sft_examples(data, tokenizer, settings.max_length, profile.data.context_size, limit=limit,
                        think=settings.think_instruction, mcq_fraction=fraction, seed=profile.seed, progress=progress,
                        style=profile.train_prompt)


def micro_batch_for(settings: SFTSettings) -> int:
    """Sequences per device pass (``sft.micro_batch``): one unless asked, since the examples are long contexts."""
    return settings.micro_batch or 1


def train_sft(profile: Profile, out: str | Path, init: str | None = None, *, progress: bool = True,
              restart: bool = False) -> dict:
    """Run the profile's SFT recipe (``profile.sft``) and save the result in ``out``; returns a summary dict.

    Steps, LoRA, the train-row slice and the micro-batch are settings (``sft.max_steps`` ...): change
    them with :func:`pmv2nb.config.resolve` or :func:`~pmv2nb.config.with_overrides`.
    """
    from trl import SFTConfig, SFTTrainer

    settings = profile.sft
    check_choice("sft.loss_turns", settings.loss_turns, LOSS_TURNS)
    steps, lora = settings.max_steps, settings.use_lora
    out = Path(out)
    micro_batch = micro_batch_for(settings)
    hardware = hardware_args(profile, "SFT")
    reporting = report_args(profile)
    accumulate = accumulation(settings.batch_size, micro_batch)
    preflight(profile, "sft", EngineValues(settings.max_grad_norm, "sft.max_grad_norm", accumulate, micro_batch,
                                           training_dtypes(profile, lora)[1]))
    start = fetched_start(profile, init)
    tokenizer = tokenizer_for(start)
    prepared = out.parent / PREPARED_FOLDER
    train, info = prepared_sft_rows(profile, "train", tokenizer, settings.rows, prepared, progress=progress)
    val, val_info = (prepared_sft_rows(profile, "val", tokenizer, settings.eval_rows, prepared, progress=False)
                     if settings.eval_every else (None, {"rows": 0}))

    model, init_kwargs = policy(start, training_dtypes(profile, lora)[0])
    config = SFTConfig(
        output_dir=str(out), max_steps=steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=micro_batch, per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=accumulate,
        max_length=settings.max_length, truncation_mode="keep_start", completion_only_loss=True,
        **({"eval_strategy": "steps", "eval_steps": min(settings.eval_every, steps)} if settings.eval_every
           else {"eval_strategy": "no"}),
        lr_scheduler_type="cosine",
        max_grad_norm=settings.max_grad_norm,
        warmup_steps=0.05,
        disable_tqdm=not progress, **checkpoint_args(settings), **hardware, **reporting,
        model_init_kwargs=init_kwargs, dataset_kwargs={"skip_prepare_dataset": True},  # rows come ready
    )
    folder = start_run_folder(out, "sft", restart)
    trainer = SFTTrainer(
        model=model, args=config, processing_class=tokenizer,
        train_dataset=train, eval_dataset=val,
        peft_config=lora_config(settings.lora_rank) if lora else None, callbacks=folder.callbacks(),
    )
    summary = {"stage": "sft", "profile": profile.name, "init": start, "out": str(out), "lora": lora,
               "steps": steps, "examples": info["rows"], "eval_examples": val_info["rows"], "lengths": info["lengths"],
               "loss_turns": settings.loss_turns, "task_mix": settings.task_mix, "tasks": info["tasks"],
               "settings": asdict(settings), **protocol_record(profile)}
    return train_and_save(trainer, folder, tokenizer, summary)


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
