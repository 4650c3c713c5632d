"""A stand-in for vLLM's offline ``LLM`` on the CPU, backed by a transformers model, for testing colocated rollouts.

It follows the parts of vLLM's contract the trainers use: ``LLM(model=PATH, ...)``, ``generate`` on token-id
prompts (``{"prompt_token_ids": [...]}``) returning RequestOutput-like objects, ``sleep(level)`` and
``wake_up(tags)``, ``reset_prefix_cache()``, and the weight push TRL makes in colocated mode
(``llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights``). Like vLLM's level-2
sleep it loses its weights when it sleeps, and it refuses to generate asleep or on weights lost that way,
so a trainer that forgets to wake it or to push the weights again fails. Every call is logged in order.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch

from pmv2nb.backends.hf_local import sample_completions
from pmv2nb.models import load_causal_lm, tokenizer_for


@dataclass
class SamplingParams:
    """vLLM's SamplingParams, keeping what it was given."""

    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class _Weights:
    """What TRL reaches as ``...model_runner.model``: takes (name, tensor) pairs under vLLM's parameter names."""

    llm: "StandInLLM"

    def load_weights(self, weights):
        own = dict(self.llm.model.named_parameters())
        for name, tensor in weights:
            if name not in own:
                raise KeyError(f"vLLM has no parameter {name!r}")
            own[name].data.copy_(tensor.detach().to(own[name].dtype))
            self.llm.loaded.add(name)
        self.llm.log.append("load_weights")


class StandInLLM:
    """vLLM's ``LLM`` on the CPU: the model at ``model`` (a folder), sampled with transformers."""

    instances: list["StandInLLM"] = []  # every engine built, so a test can reach the one a trainer made

    def __init__(self, model: str, enable_sleep_mode: bool = False, **engine_args):
        self.path, self.enable_sleep_mode, self.engine_args = model, enable_sleep_mode, engine_args
        self.model = load_causal_lm(model).eval()
        self.tokenizer = tokenizer_for(model)
        self.log: list[str] = []
        self.calls: list[tuple[int, SamplingParams]] = []  # (prompts, params) of each generate call
        self.seen_weights: list[dict[str, torch.Tensor]] = []  # the weights each rollout batch sampled with
        self.asleep, self.loaded = False, set(self.names())
        runner = types.SimpleNamespace(model=_Weights(self))
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
            driver_worker=types.SimpleNamespace(model_runner=runner)))
        StandInLLM.instances.append(self)

    def names(self) -> set[str]:
        return {name for name, _ in self.model.named_parameters()}

    def sleep(self, level: int = 1) -> None:
        assert self.enable_sleep_mode, "sleep needs enable_sleep_mode=True"
        self.log.append(f"sleep({level})")
        self.asleep = True
        if level == 2:  # the weights are dropped, not kept on the host
            self.loaded = set()
            for parameter in self.model.parameters():
                parameter.data.zero_()

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.log.append(f"wake_up({','.join(tags or ['all'])})")
        if tags is None or "kv_cache" in tags:
            self.asleep = False

    def reset_prefix_cache(self) -> None:
        self.log.append("reset_prefix_cache")

    def generate(self, prompts: list[dict], sampling_params: SamplingParams, use_tqdm: bool = True):
        assert not self.asleep, "generate called on a sleeping engine"
        assert self.loaded == self.names(), "generate called before the weights were pushed again"
        if not self.log or self.log[-1] != "generate":
            self.seen_weights.append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        self.log.append("generate")
        self.calls.append((len(prompts), sampling_params))
        ids = [prompt["prompt_token_ids"] for prompt in prompts]
        replies = sample_completions(self.model, self.tokenizer, ids, sampling_params.max_tokens,
                                     sampling_params.temperature, top_p=sampling_params.top_p,
                                     top_k=sampling_params.top_k)
        return [types.SimpleNamespace(prompt_token_ids=reply.prompt_ids, outputs=[types.SimpleNamespace(
            token_ids=reply.completion_ids, text=reply.text, finish_reason=reply.finish_reason)])
            for reply in replies]


def install(monkeypatch) -> type[StandInLLM]:
    """Put the stand-in where the trainers look for vLLM: TRL's colocated engine, ``import vllm``, and the GPU
    check (which passes here). The distributed variables TRL's engine sets are removed again afterwards."""
    from trl.generation import vllm_generation

    from pmv2nb.backends import vllm_offline

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = StandInLLM, SamplingParams
    monkeypatch.setitem(__import__("sys").modules, "vllm", module)
    monkeypatch.setattr(vllm_generation, "is_vllm_available", lambda *args, **kwargs: True)
    monkeypatch.setattr(vllm_generation, "LLM", StandInLLM, raising=False)
    monkeypatch.setattr(vllm_offline, "require_vllm", lambda: module)
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "localhost"),
                        ("MASTER_PORT", "29533")):
        monkeypatch.setenv(name, value)  # remembered as unset (or as they were), so undone at the end
        monkeypatch.delenv(name)  # and unset until TRL sets them: accelerate must not see a launch
    StandInLLM.instances.clear()
    return StandInLLM
