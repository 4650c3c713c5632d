"""GRPO for the memory agent: one rollout is every memory rewrite plus the final answer.

TRL's GRPOTrainer treats a rollout as one prompt and one completion. Here a rollout is ``T + 1``
separate conversations (one per chunk, then the answer from the notes), so this module extends
``transformers.Trainer`` with TRL's building blocks instead: ``unwrap_model_for_generation`` for
sampling (DDP and DeepSpeed aware), ``selective_log_softmax`` for scoring, and the same reward
functions as GRPO. For each question the policy samples ``num_generations`` rollouts; the final
answer's reward is normalized within that group, and the resulting advantage is given to every
turn of the rollout. Each turn is then trained as its own sequence (its own prompt and
completion), with the loss on completion tokens only.

One policy update per batch of rollouts, so the importance ratio is exactly one and no clipping is
needed; the loss is the token-level policy gradient plus an optional k3 KL term against the
starting weights (the adapter switched off under LoRA, otherwise a frozen copy in the type the
passes compute in).

Rollouts are sampled with transformers ``generate`` on weights gathered once, or on the GPU with a
vLLM engine colocated with training (``memory.rl.use_vllm``, :mod:`.colocated_vllm`).
"""

from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import Trainer

from .. import prompts
from ..answers import reward_labels
from ..backends.hf_local import Completion, sample_completions
from ..messages import content_text
from ..config import MemoryRLSettings, MemorySettings, Profile, TrainPromptSettings
from ..data.loader import PersonaMemData, load_profile_split
from ..evaluate.tasks import rows_with_history
from ..memory.agent import Chunker, MemoryJob, Trajectory, run_updates
from ..models import tokenizer_for
from .colocated_vllm import ColocatedVLLM, require_vllm
from .common import (
    EngineValues, RunFolder, accumulation, checkpoint_args, hardware_args, lora_config, report_args, protocol_record,
    show_progress_as_a_bar, start_run_folder, fetched_start, train_and_save, trainer_default_clipping,
    training_dtypes,
)
from .examples import split_tasks, training_options
from .plan import memory_lengths, preflight
from .rewards import rl_rewards
from .sharding import weights_for_generation

STAGE = "memory-grpo"  # the stage's name in metrics.csv and run.json
# rollouts sample from the policy's whole distribution, on either engine: no nucleus, no top-k cut
ROLLOUT_TOP_P, ROLLOUT_TOP_K = 1.0, 0
REWARD_COLUMNS = ("task", "gold_letter", "options", "query_text", "preference", "pref_type", "sensitive_info",
                  "prev_pref")


# ---------- data ----------

def memory_rl_items(data: PersonaMemData, mcq_fraction: float, size: str = "32k", limit: int | None = None,
                    seed: int = 0, style: TrainPromptSettings | None = None) -> list[dict]:
    """One item per question: its row, task (MCQ or open, in the profile's mix), answer turn and reward labels."""
    rows = rows_with_history(data, size, limit)
    assignment = split_tasks(rows, mcq_fraction, seed)
    items = []
    for row in rows:
        options, _, gold = training_options(data, row, style) if assignment[row] == "mcq" else (None, None, "")
        query = prompts.training_query(data.questions["user_query"].iat[row], options, style=style)
        items.append({"query_message": content_text(query["content"]), "gold_letter": gold, "options": options or [],
                      **reward_labels(data, row, assignment[row])})
    return items


def answer_messages(notes: str, item: dict) -> list[dict]:
    """The final turn: the notes in the system message, then the query (with options for MCQ).

    The boxed format's memory prompt, which ``pmv2nb memory run`` also uses for trained checkpoints.
    """
    return [prompts.boxed_system(notes), {"role": "user", "content": item["query_message"]}]


def micro_batch_for(settings: MemoryRLSettings) -> int:
    """Questions per device per step (``memory.rl.micro_batch``, one unless asked); their turns are trained in
    passes of ``memory.rl.turn_batch``."""
    return settings.micro_batch or 1


def answer_tokens(memory: MemorySettings) -> int:
    """The final answer's cap in rollouts: ``memory.rl.max_answer_tokens``, or with ``memory.answer_cap``
    'memory' the notes' own cap (the authors' single length limit)."""
    return memory.memory_tokens if memory.answer_cap == "memory" else memory.rl.max_answer_tokens


def schedule_args(settings: MemoryRLSettings) -> dict:
    """The learning-rate schedule: constant, after ``memory.rl.warmup_steps`` of linear warm-up if any."""
    if settings.warmup_steps:
        return {"lr_scheduler_type": "constant_with_warmup", "warmup_steps": settings.warmup_steps}
    return {"lr_scheduler_type": "constant"}


# ---------- the maths (kept free of the trainer so it can be tested on its own) ----------

def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """(reward - group mean) / (group std + eps) for consecutive groups of ``group_size`` rollouts."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped[:, :1])
    return ((grouped - grouped.mean(dim=1, keepdim=True)) / (std + eps)).view(-1)


@dataclass
class Turn:
    """One conversation of a rollout, trained as its own sequence with the rollout's advantage."""

    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float
    rollout: int
    kind: str  # "update" or "answer"


def rollout_turns(trajectories: list[Trajectory], answers: list[Completion], advantages: list[float]) -> list[Turn]:
    """Every update turn and the answer turn of each rollout, all carrying that rollout's advantage."""
    turns = []
    for index, (trajectory, answer, advantage) in enumerate(zip(trajectories, answers, advantages)):
        for step in trajectory.steps:
            turns.append(Turn(step.reply.prompt_ids, step.reply.completion_ids, advantage, index, "update"))
        turns.append(Turn(answer.prompt_ids, answer.completion_ids, advantage, index, "answer"))
    return turns


def pack_turns(turns: list[Turn], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompts left-padded and completions right-padded, so every completion starts in the same column."""
    prompt_width = max(len(t.prompt_ids) for t in turns)
    completion_width = max(max(len(t.completion_ids) for t in turns), 1)
    ids, attention, completion_mask = [], [], []
    for t in turns:
        left, right = prompt_width - len(t.prompt_ids), completion_width - len(t.completion_ids)
        ids.append([pad_id] * left + t.prompt_ids + t.completion_ids + [pad_id] * right)
        attention.append([0] * left + [1] * (len(t.prompt_ids) + len(t.completion_ids)) + [0] * right)
        completion_mask.append([1] * len(t.completion_ids) + [0] * right)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(attention),
            "completion_mask": torch.tensor(completion_mask, dtype=torch.float32),
            "advantages": torch.tensor([t.advantage for t in turns], dtype=torch.float32),
            "completion_width": completion_width}


def completion_logps(model, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities of each completion token under ``model`` (LM head run on completion positions only)."""
    from trl.trainer.utils import selective_log_softmax

    width = batch["completion_width"]
    attention = batch["attention_mask"]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
    logits = model(input_ids=batch["input_ids"], attention_mask=attention, position_ids=positions,
                   logits_to_keep=width + 1).logits[:, :-1, :]
    return selective_log_softmax(logits / temperature, batch["input_ids"][:, -width:])


def policy_loss(logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, normalizer: float,
                ref_logps: torch.Tensor | None = None, beta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-level GRPO loss summed over unmasked tokens and divided by ``normalizer``; also the mean KL."""
    ratio = torch.exp(logps - logps.detach())  # 1 in value; its gradient is the policy gradient
    per_token = -ratio * advantages.unsqueeze(1)
    kl = None
    if beta and ref_logps is not None:
        delta = ref_logps - logps
        per_token_kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * per_token_kl
        kl = (per_token_kl * mask).sum() / mask.sum().clamp(min=1)
    return (per_token * mask).sum() / normalizer, kl


# ---------- the trainer ----------

COMPUTE_TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def frozen_reference(model, mixed: str | None):
    """A frozen copy of the starting weights for the KL term, in the type the passes compute in (``mixed``, as
    :func:`~pmv2nb.train.common.training_dtypes` says): it never trains, so it needs no float32 master copy,
    and at 4B that halves its 16 GB on every GPU. Without mixed precision it keeps the weights' own type."""
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    return reference.to(COMPUTE_TYPES[mixed]) if mixed else reference


def prompt_ids(tokenizer, conversations: list[list[dict]]) -> list[list[int]]:
    """Each conversation templated for the assistant's reply, as token ids: what both engines are given."""
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


class _Sampler:
    """Samples replies from the policy for a batch of conversations (what run_updates calls a rewriter)."""

    def __init__(self, model, tokenizer, max_new_tokens: int, temperature: float, batch_size: int):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size

    def __call__(self, conversations: list[list[dict]], tags: list[str] | None = None) -> list[Completion]:
        prompts = prompt_ids(self.tokenizer, conversations)
        replies = []
        for start in range(0, len(prompts), self.batch_size):
            # on gathered weights a rank needs no other to generate, and must not wait for one: under ZeRO-3
            # or FSDP, generate would step every rank together, and a rank with fewer chunks makes fewer calls
            replies += sample_completions(self.model, self.tokenizer, prompts[start:start + self.batch_size],
                                          self.max_new_tokens, self.temperature, top_p=ROLLOUT_TOP_P,
                                          top_k=ROLLOUT_TOP_K, synced_gpus=False)
        return replies


class _VLLMSampler:
    """The same rewriter on a colocated vLLM engine: every conversation of the call in one request."""

    def __init__(self, engine: ColocatedVLLM, tokenizer, max_new_tokens: int, temperature: float):
        self.engine, self.tokenizer = engine, tokenizer
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def __call__(self, conversations: list[list[dict]], tags: list[str] | None = None) -> list[Completion]:
        return self.engine.sample(prompt_ids(self.tokenizer, conversations), self.max_new_tokens, self.temperature,
                                  top_p=ROLLOUT_TOP_P, top_k=ROLLOUT_TOP_K)


class MemoryGRPOTrainer(Trainer):
    """A Trainer whose training step samples memory rollouts, scores them, and trains every turn."""

    def __init__(self, model, args, train_dataset, tokenizer, reward_funcs: list, data: PersonaMemData,
                 memory: MemorySettings, size: str = "32k", ref_model=None, callbacks=None):
        super().__init__(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                         data_collator=lambda features: features, callbacks=callbacks)
        self.reward_funcs, self.memory, self.rl = reward_funcs, memory, memory.rl
        self.chunker = Chunker(data, tokenizer, memory, size)
        self.ref_model = ref_model
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.engine = self.colocated_engine() if self.rl.use_vllm else None

    def colocated_engine(self) -> ColocatedVLLM:
        """This rank's vLLM engine, with room for the longest turn (chunk, notes, instructions and reply)."""
        update_prompt, longest_reply, _ = memory_lengths(self.memory)
        return ColocatedVLLM(self.model, self.accelerator, self.processing_class,
                             self.rl.vllm_gpu_memory_utilization, update_prompt + longest_reply,
                             self.rl.vllm_sleep_mode)

    @contextlib.contextmanager
    def samplers(self, model):
        """For one rollout batch: a function from a reply cap to a sampler of the current policy.

        On vLLM the engine is woken with the policy's weights and put back to sleep afterwards; otherwise
        transformers generates on weights gathered once, since ranks read different numbers of chunks and
        a rank would wait for the others at every pass on sharded weights."""
        tokenizer, temperature = self.processing_class, self.rl.temperature
        if self.engine is not None:
            with self.engine.awake(self.model, self.state.global_step) as engine:
                yield lambda cap: _VLLMSampler(engine, tokenizer, cap, temperature)
            return
        was_training = model.training
        try:
            with weights_for_generation(model, self.accelerator) as policy:
                policy.eval()
                yield lambda cap: _Sampler(policy, tokenizer, cap, temperature, self.rl.generation_batch)
        finally:
            model.train(was_training)

    def update_query(self, item: dict) -> str | None:
        """What each update sees of the item's question (``memory.update_query``)."""
        if self.memory.update_query == "none":
            return None
        if self.memory.update_query == "query":
            return item["query_text"]
        return content_text(answer_messages(self.memory.initial_memory, item)[-1]["content"])  # query + options

    def rollouts(self, model, items: list[dict]) -> tuple[list[Turn], dict[str, float]]:
        """Sample num_generations rollouts per item, score the answers, and return every turn with its advantage."""
        group = self.rl.num_generations
        jobs = []
        for i, item in enumerate(items):
            chunking = self.chunker(item["row"])
            query = self.update_query(item)
            jobs += [MemoryJob(key=f"{i}/{g}", link=self.chunker.link(item["row"]), chunking=chunking, query=query)
                     for g in range(group)]
        with self.samplers(model) as sampler:
            trajectories = run_updates(jobs, sampler(self.memory.memory_tokens), self.memory)
            ordered = [trajectories[job.key] for job in jobs]
            answer_prompts = [answer_messages(t.memory, items[i // group]) for i, t in enumerate(ordered)]
            answers = sampler(answer_tokens(self.memory))(answer_prompts)
        rewards = self.score(answer_prompts, [a.text for a in answers], items, group)
        advantages = group_advantages(rewards, group)
        steps = [s for t in ordered for s in t.steps]
        stats = {"reward": rewards.mean().item(), "reward_std": rewards.view(-1, group).std(dim=1).mean().item()
                 if group > 1 else 0.0,
                 "memory/updates_per_rollout": len(steps) / len(ordered),
                 "memory/capped_rate": sum(s.capped for s in steps) / max(1, len(steps)),
                 "memory/tokens": sum(s.tokens_out for s in steps) / max(1, len(steps)),
                 "answer/tokens": sum(a.tokens_out for a in answers) / len(answers)}
        return rollout_turns(ordered, answers, advantages.tolist()), stats

    def score(self, answer_prompts: list, completions: list[str], items: list[dict], group: int) -> torch.Tensor:
        """Sum of the reward functions per rollout (each scores only its own task), logged per function."""
        columns = {name: [items[i // group][name] for i in range(len(completions))] for name in REWARD_COLUMNS}
        total = torch.zeros(len(completions))
        for function in self.reward_funcs:
            name = getattr(function, "__name__", type(function).__name__)
            values = function(prompts=answer_prompts, completions=completions, log_metric=self._log_metric, **columns)
            scored = [v for v in values if v is not None]
            if scored:
                self._metrics[f"rewards/{name}/mean"].append(sum(scored) / len(scored))
            total += torch.tensor([0.0 if v is None else float(v) for v in values])
        return total

    def _log_metric(self, name: str, value: float) -> None:
        self._metrics[name].append(value)

    def training_step(self, model, inputs: list[dict], num_items_in_batch=None) -> torch.Tensor:
        turns, stats = self.rollouts(model, inputs)
        for name, value in stats.items():
            self._metrics[name].append(value)
        model.train()
        tokens = sum(len(t.completion_ids) for t in turns)
        pieces = [turns[i:i + self.rl.turn_batch] for i in range(0, len(turns), self.rl.turn_batch)]
        passes = self.agreed_passes(len(pieces))
        # sharded engines gather weights in every forward pass and reduce gradients in every backward, so
        # a rank with fewer pieces trains its shortest turn again at zero weight until every rank ran `passes`
        shortest = min(turns, key=lambda t: len(t.prompt_ids) + len(t.completion_ids))
        padding = [[shortest]] * (passes - len(pieces))
        total = torch.zeros((), device=self.args.device)
        for index, piece in enumerate(pieces + padding):
            total += self.train_piece(model, piece, max(tokens, 1), counts=index < len(pieces),
                                      final=index == passes - 1)
        return total

    def agreed_passes(self, pieces: int) -> int:
        """The most pieces any rank has this step: the number of forward/backward passes every rank runs."""
        if self.accelerator.num_processes == 1:
            return pieces
        return int(self.accelerator.gather(torch.tensor([pieces], device=self.args.device)).max())

    def train_piece(self, model, piece: list[Turn], normalizer: int, counts: bool, final: bool) -> torch.Tensor:
        """One forward and backward pass over ``piece``; a piece that does not count has all tokens masked.

        Only the final piece of a step is at the accumulation boundary: the gradients are reduced once,
        and under DeepSpeed (whose engine steps the optimizer and the scheduler on every backward at the
        boundary) the optimizer steps once per training step.
        """
        batch = {k: v.to(self.args.device) if torch.is_tensor(v) else v
                 for k, v in pack_turns(piece, self.processing_class.pad_token_id).items()}
        if not counts:
            batch["completion_mask"] = torch.zeros_like(batch["completion_mask"])
        with self.inside_accumulation(model, final), self.compute_loss_context_manager():
            logps = completion_logps(model, batch, self.rl.temperature)
            ref = self._reference_logps(model, batch) if self.rl.beta else None
            loss, kl = policy_loss(logps, batch["advantages"], batch["completion_mask"], normalizer, ref,
                                   self.rl.beta)
            loss = self.backward(loss)
        if kl is not None and counts:
            self._metrics["kl"].append(kl.item())
        return loss.detach()

    @contextlib.contextmanager
    def inside_accumulation(self, model, final: bool):
        """Before the final piece: no gradient sync (DDP) and not at the accumulation boundary (every engine)."""
        if final:
            yield
            return
        state = self.accelerator.gradient_state
        at_boundary = state.sync_gradients
        state._set_sync_gradients(False)
        try:
            with self.accelerator.no_sync(model):
                yield
        finally:
            state._set_sync_gradients(at_boundary)

    def backward(self, loss: torch.Tensor) -> torch.Tensor:
        """Scale the loss for gradient accumulation once, by transformers' own rule, and run the backward pass.

        ``Trainer.training_step`` divides by the accumulation steps itself and tells DeepSpeed not to
        divide again (``scale_wrt_gas=False``); returns the loss as divided.
        """
        from accelerate.utils import DistributedType

        loss = loss / self.current_gradient_accumulation_steps
        options = {"scale_wrt_gas": False} if self.accelerator.distributed_type == DistributedType.DEEPSPEED else {}
        self.accelerator.backward(loss, **options)
        return loss

    def _reference_logps(self, model, batch) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return completion_logps(self.ref_model, batch, self.rl.temperature)
            with self.accelerator.unwrap_model(model).disable_adapter():  # LoRA: the base weights are the reference
                return completion_logps(model, batch, self.rl.temperature)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs = {**logs, **{k: sum(v) / len(v) for k, v in self._metrics.items() if v}}
        self._metrics.clear()
        super().log(logs, start_time)


def train_memory(profile: Profile, out: str | Path, init: str | None = None, *, cache: str | Path | None = None,
                 progress: bool = True, restart: bool = False) -> dict:
    """Train the memory agent with GRPO from ``init`` (usually the SFT run folder) and save it in ``out``.

    Everything else is a setting: ``memory.rl.*`` for the RL recipe, ``memory.*`` for chunks and the cap.
    """
    folder = start_run_folder(out, STAGE, restart)
    trainer, tokenizer, summary = build_memory_trainer(profile, out, init, cache=cache, progress=progress,
                                                       folder=folder)
    return train_and_save(trainer, folder, tokenizer, summary)


def build_memory_trainer(profile: Profile, out: str | Path, init: str | None = None, *,
                         cache: str | Path | None = None, progress: bool = True, folder: RunFolder | None = None):
    """The trainer, tokenizer and run summary for the profile's memory RL recipe, ready to ``train()``.

    ``folder`` is ``out`` as :func:`~pmv2nb.train.common.start_run_folder` found it (a checkpoint to resume
    from, maybe); without one, ``out`` is cleared for a fresh run."""
    from datasets import Dataset
    from transformers import TrainingArguments

    from ..models import load_causal_lm

    memory = profile.memory
    settings: MemoryRLSettings = memory.rl
    folder = folder or start_run_folder(out, STAGE, restart=True)
    out = folder.out
    hardware = hardware_args(profile, "memory-agent RL")
    reporting = report_args(profile)
    micro = micro_batch_for(settings)
    accumulate = accumulation(settings.batch_size, micro)
    preflight(profile, "memory", EngineValues(trainer_default_clipping(TrainingArguments),
                                              "the trainer's max_grad_norm", accumulate, micro,
                                              training_dtypes(profile, settings.use_lora)[1]))
    require_vllm(settings.use_vllm, "Memory RL rollouts", "memory.rl.use_vllm",
                 "Set memory.rl.use_vllm=false to sample them with transformers generate (slower), or train "
                 "with the tiny profile on the CPU.")
    rewards = rl_rewards(settings, profile.eval, cache or profile.cache_path())
    start = fetched_start(profile, init)
    tokenizer = tokenizer_for(start)
    split = load_profile_split(profile, "train")
    items = memory_rl_items(split, settings.mcq_fraction, profile.data.context_size, settings.rows, profile.seed,
                            profile.train_prompt)
    weights, mixed = training_dtypes(profile, settings.use_lora)
    model = load_causal_lm(start, weights)
    ref_model = None
    if settings.use_lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(settings.lora_rank))
        if hardware["gradient_checkpointing"]:
            model.enable_input_require_grads()
    elif settings.beta:
        ref_model = frozen_reference(model, mixed)
    args = TrainingArguments(
        output_dir=str(out), max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accumulate,
        remove_unused_columns=False, disable_tqdm=not progress, **schedule_args(settings),
        **checkpoint_args(settings), **hardware, **reporting)
    trainer = MemoryGRPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(items), tokenizer=tokenizer, reward_funcs=rewards,
        data=split, memory=memory, size=profile.data.context_size, ref_model=ref_model,
        callbacks=folder.callbacks())
    show_progress_as_a_bar(trainer)  # also when a caller trains it without train_and_save
    if ref_model is not None:
        ref_model.to(trainer.args.device)
    summary = {"stage": STAGE, "profile": profile.name, "init": start, "out": str(out),
               "steps": settings.max_steps, "questions": len(items),
               "mcq_questions": sum(item["task"] == "mcq" for item in items),
               "update_query": memory.update_query,
               "memory": {k: v for k, v in asdict(memory).items() if k != "rl"}, "settings": asdict(settings),
               **protocol_record(profile)}
    return trainer, tokenizer, summary


__all__ = ["MemoryGRPOTrainer", "Turn", "answer_messages", "build_memory_trainer", "completion_logps",
           "frozen_reference", "group_advantages", "memory_rl_items", "pack_turns", "policy_loss", "prompt_ids",
           "rollout_turns", "train_memory"]
