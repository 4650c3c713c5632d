"""vLLM on the training GPUs for rollouts a stage samples itself (memory RL), and the check that it can run.

TRL's ``VLLMGeneration`` builds the engine exactly as GRPO's colocated mode does (one engine per rank
under the launch's own processes, a share of each GPU's memory) and pushes the policy's weights into it:
gathered one tensor at a time under ZeRO-3 or FSDP, with a LoRA adapter merged in. Its ``generate``
samples one prompt batch with one length cap, while a memory rollout batch is many generate calls with
two caps (every rewrite, chunk by chunk, then the answers), so :class:`ColocatedVLLM` keeps TRL's
engine and weight push and calls ``LLM.generate`` itself.

With sleep mode the engine drops its weights and KV cache while the trainer runs its passes (vLLM's
level-2 sleep), and gets the policy's current weights again when it wakes, as TRL does for GRPO.
"""

from __future__ import annotations

import contextlib

from ..backends.hf_local import Completion


def require_vllm(use_vllm: bool, purpose: str, setting: str, instead: str) -> None:
    """Refuse vLLM generation on a machine without a GPU or without vLLM, before any model or data is loaded.

    ``purpose`` names what generates, ``setting`` the switch that asked for vLLM, ``instead`` the way round."""
    if not use_vllm:
        return
    from ..backends import vllm_offline

    try:
        vllm_offline.require_vllm()
    except vllm_offline.VLLMUnavailableError:
        raise vllm_offline.VLLMUnavailableError(
            f'{purpose} with vLLM ({setting}) needs an NVIDIA GPU and the gpu extra (pip install -e ".[gpu]"). '
            f"{instead}") from None


class ColocatedVLLM:
    """One rank's vLLM engine beside its trainer; use :meth:`awake` around each rollout batch."""

    def __init__(self, model, accelerator, tokenizer, gpu_memory_utilization: float, max_model_length: int,
                 sleep: bool):
        from trl.generation.vllm_generation import VLLMGeneration

        self.generation = VLLMGeneration(model, accelerator, tokenizer, mode="colocate",
                                         gpu_memory_utilization=gpu_memory_utilization,
                                         max_model_length=max_model_length, enable_sleep_mode=sleep)
        self.llm, self.sleep = self.generation.llm, sleep
        self.synced_step: int | None = None

    @contextlib.contextmanager
    def awake(self, model, step: int):
        """The engine holding ``model``'s weights as they are at optimizer step ``step``, for one rollout batch.

        Awake for the whole stage, the engine gets the weights once per optimizer step (every rank calls this
        at the same step, as the gather under ZeRO-3 or FSDP needs); asleep between batches, it has lost them
        and gets them on every wake."""
        self.generation.model = model  # the trainer's model, sharded by now under FSDP
        if self.sleep or step != self.synced_step:
            self.generation.sync_weights()  # in sleep mode this wakes the weights' memory first
            self.synced_step = step
        if self.sleep:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            yield self
        finally:
            if self.sleep:
                self.llm.sleep(level=2)

    def sample(self, prompt_ids: list[list[int]], max_tokens: int, temperature: float, top_p: float,
               top_k: int) -> list[Completion]:
        """One reply per prompt (token ids), all sent at once; vLLM schedules them on its KV cache."""
        from vllm import SamplingParams

        params = SamplingParams(n=1, max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], sampling_params=params,
                                    use_tqdm=False)
        replies = []
        for ids, output in zip(prompt_ids, outputs):
            reply = output.outputs[0]
            replies.append(Completion(prompt_ids=list(ids), completion_ids=list(reply.token_ids), text=reply.text,
                                      finish_reason=reply.finish_reason or "length"))
        return replies


__all__ = ["ColocatedVLLM", "require_vllm"]
