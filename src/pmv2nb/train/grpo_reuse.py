"""GRPO rollouts that read each prompt once, and what TRL's vLLM importance sampling masked.

TRL repeats every prompt ``num_generations`` times in a generation batch, and its plain transformers
path runs each copy of the (history-long) prompt through the model. Here the distinct prompts are
read once, their key/value caches are copied to each copy's row, and ``generate`` only writes the
replies. The batch keeps TRL's layout (the same left padding, one ``generate`` call for all rows),
so greedy rollouts are TRL's token for token and sampled ones draw the same random numbers.

With vLLM generation and ``grpo.vllm_importance_sampling`` on, TRL reports the ratio's range but not how
many rollouts (or tokens) its bound took out of the gradient; that share is logged here.
"""

from __future__ import annotations

import contextlib

import torch
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from ..backends.hf_local import generate_tokens, prefill, reply_length
from .sharding import gathered_fsdp2_weights


def distinct_rows(prompt_ids: list[list[int]]) -> tuple[list[int], list[int]]:
    """The first row of each distinct prompt, and for every row the position of its prompt in that list."""
    position: dict[tuple[int, ...], int] = {}
    keep = []
    for row, ids in enumerate(prompt_ids):
        if tuple(ids) not in position:
            position[tuple(ids)] = len(keep)
            keep.append(row)
    return keep, [position[tuple(ids)] for ids in prompt_ids]


def bounded_share(ratio: torch.Tensor, completion_mask: torch.Tensor, mode: str, cap: float) -> float:
    """Share of rollouts (sequence modes) or completion tokens (token modes) that TRL's importance-sampling
    bound acted on: masked ones carry a ratio of 0, truncated ones sit at the cap."""
    hit = ratio == 0 if mode.endswith("_mask") else ratio >= cap
    if mode.startswith("sequence"):
        return hit.float().mean().item() if hit.numel() else 0.0
    counted = completion_mask.bool()
    return hit[counted].float().mean().item() if counted.any() else 0.0


class PromptReuseGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer, with the repeated prompts of its transformers generation read once
    (``reuse_prompts``), and the share of rollouts vLLM importance sampling bounded in its logs.

    Only the plain path changes: vLLM, transformers continuous batching, images, multimodal inputs,
    a fixed cache implementation and batches without a repeated prompt go to TRL's own code.
    """

    prefill_tokens_saved = 0  # prompt tokens of repeated copies that were not run through the model

    def __init__(self, *args, reuse_prompts: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reuse_prompts = reuse_prompts

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        ratio = output.get("importance_sampling_ratio")
        if ratio is not None:
            share = bounded_share(ratio, output["completion_mask"], self.vllm_importance_sampling_mode,
                                  self.vllm_importance_sampling_clip_max or float("inf"))
            gathered = self.accelerator.gather(torch.tensor(share, device=self.accelerator.device))
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["sampling/importance_sampling_bounded_share"].append(gathered.mean().item())
        return output

    def _reuses_prompts(self, prompt_ids, images, multimodal_fields, has_tool_images) -> bool:
        return (self.reuse_prompts and not self.use_vllm and not self.use_transformers_continuous_batching
                and images is None
                and not multimodal_fields and not has_tool_images
                and self.generation_config.cache_implementation is None
                and min(len(ids) for ids in prompt_ids) > 1  # each row keeps one token for generate's own pass
                and len(set(map(tuple, prompt_ids))) < len(prompt_ids))

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # the policy generates here unless vLLM does: under FSDP2 on weights gathered once, not per token and layer
        with contextlib.nullcontext() if self.use_vllm else gathered_fsdp2_weights(self.model_wrapped):
            return self._generate_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)

    def _generate_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images):
        if not self._reuses_prompts(prompt_ids, images, multimodal_fields, has_tool_images):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        device = self.accelerator.device
        rows = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(rows, padding_value=self._tokenizer.pad_token_id, padding_side="left",
                        pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        attention = pad([torch.ones_like(r) for r in rows], padding_value=0, padding_side="left",
                        pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        keep, source = distinct_rows(prompt_ids)
        config = self.generation_config
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(
                self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            # all columns but the last: left padding puts every row's last prompt token there
            cache = prefill(model, input_ids[keep, :-1], attention[keep, :-1])
            cache.batch_select_indices(torch.tensor(source, device=device))
            sequences = generate_tokens(model, input_ids, attention, config.max_new_tokens,
                                        {"generation_config": config}, {"past_key_values": cache})
        self.prefill_tokens_saved += sum(len(ids) - 1 for ids in prompt_ids) - sum(len(prompt_ids[r]) - 1 for r in keep)
        completions = sequences[:, input_ids.size(1):].cpu()
        # TRL keeps a completion up to and including its first end-of-sequence token
        return [c[:reply_length(c, self.eos_token_ids) or len(c)].tolist() for c in completions], None
