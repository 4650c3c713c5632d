"""GRPO for the memory agent: shared advantages per rollout, zero-mean groups, masked tokens without loss,
and a tiny CPU run through the real Trainer that changes the weights."""

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from pmv2nb import config
from pmv2nb.config import with_overrides
from pmv2nb.models import load_causal_lm, tiny_model_dir, tokenizer_for
from pmv2nb.train.memory_rl import (
    Turn, build_memory_trainer, completion_logps, group_advantages, memory_rl_items, pack_turns, policy_loss,
    train_memory,
)

pytestmark = pytest.mark.slow  # runs memory RL; `make test-fast` leaves it out

# two chunks per history keep each step to a few seconds on two cores
TINY = config.resolve("tiny", {"memory.max_chunks": 2})


def test_group_advantages_are_zero_mean_per_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.2, 0.9, 0.4, 0.1])
    advantages = group_advantages(rewards, 4).view(3, 4)
    assert torch.allclose(advantages.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.equal(advantages[1], torch.zeros(4))  # equal rewards teach nothing
    assert advantages[0, 0] > 0 and (advantages[0, 1:] < 0).all()
    assert torch.argsort(advantages[2]).tolist() == torch.argsort(rewards[8:]).tolist()
    with pytest.raises(ValueError):
        group_advantages(rewards, 5)


def test_pack_turns_aligns_completions():
    turns = [Turn([1, 2, 3], [7, 8], 0.5, 0, "update"), Turn([4], [9, 10, 11], -0.5, 0, "answer")]
    batch = pack_turns(turns, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 7, 8, 0], [0, 0, 4, 9, 10, 11]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert batch["completion_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["input_ids"][:, -3:].tolist() == [[7, 8, 0], [9, 10, 11]]


def test_masked_tokens_get_no_gradient_and_the_rest_get_minus_advantage():
    logps = torch.randn(2, 4, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    advantages = torch.tensor([2.0, -1.0])
    loss, _ = policy_loss(logps, advantages, mask, normalizer=5)
    loss.backward()
    expected = -advantages.unsqueeze(1) * mask / 5
    assert torch.allclose(logps.grad, expected)
    assert (logps.grad[mask == 0] == 0).all()


def test_model_loss_ignores_padded_completion_slots():
    """Through the real tiny model: changing padded completion slots changes neither loss nor gradient."""
    model = load_causal_lm(tiny_model_dir())
    tokenizer = tokenizer_for("tiny")
    pad = tokenizer.pad_token_id
    turns = [Turn([10, 11, 12, 13], [20, 21], 1.0, 0, "update"), Turn([14, 15], [22, 23, 24, 25], -1.0, 1, "answer")]
    batch = pack_turns(turns, pad)
    grads = []
    for filler in (pad, 99):
        varied = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
        varied["input_ids"][0, -2:] = filler  # the padded tail of the short completion
        model.zero_grad()
        loss, _ = policy_loss(completion_logps(model, varied), varied["advantages"], varied["completion_mask"], 6)
        loss.backward()
        grads.append(model.lm_head.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-7)
    assert grads[0].abs().sum() > 0


def test_items_follow_the_mix(tmp_path):
    from pmv2nb.data.loader import load_profile_split

    items = memory_rl_items(load_profile_split(TINY, "train"), 0.5, limit=10, seed=0)
    assert sum(item["task"] == "mcq" for item in items) == 5
    for item in items:
        assert (len(item["gold_letter"]) == 1 and item["gold_letter"] in "abcde") == (item["task"] == "mcq")
        assert ("(a)" in item["query_message"]) == (item["task"] == "mcq")


def test_every_turn_of_a_rollout_shares_its_advantage(tmp_path):
    profile = with_overrides(TINY, {"memory.rl.mcq_fraction": 0.0, "memory.rl.rows": 2})
    trainer, _, _ = build_memory_trainer(profile, tmp_path / "run", progress=False)
    items = [trainer.train_dataset[i] for i in range(2)]
    turns, stats = trainer.rollouts(trainer.model, items)
    group = TINY.memory.rl.num_generations
    by_rollout = {}
    for turn in turns:
        by_rollout.setdefault(turn.rollout, set()).add(turn.advantage)
    assert len(by_rollout) == 2 * group and all(len(values) == 1 for values in by_rollout.values())
    kinds = pd.Series([t.kind for t in turns]).value_counts()
    assert kinds["answer"] == 2 * group and kinds["update"] == 2 * group * stats["memory/updates_per_rollout"]
    advantages = torch.tensor([by_rollout[r].pop() for r in range(2 * group)]).view(2, group)
    assert torch.allclose(advantages.sum(dim=1), torch.zeros(2), atol=1e-4)
    assert all(t.completion_ids and len(t.completion_ids) <= TINY.memory.memory_tokens for t in turns
               if t.kind == "update")


@pytest.mark.parametrize("use_lora", [False, True])
def test_tiny_run_updates_the_weights(tmp_path, use_lora):
    """Open-ended rows scored by the offline proxy judge give varied rewards, so the weights must move."""
    out = tmp_path / "memory"
    before = load_file(tiny_model_dir() / "model.safetensors")
    profile = with_overrides(TINY, {"memory.rl.max_steps": 1, "memory.rl.use_lora": use_lora,
                                    "memory.rl.mcq_fraction": 0.0, "memory.rl.rows": 2})
    summary = train_memory(profile, out, progress=False)
    metrics = pd.read_csv(out / "metrics.csv")
    assert {"reward", "rewards/open_reward/mean", "memory/capped_rate", "kl"} <= set(metrics.columns)
    assert summary["steps"] == 1 and metrics["grad_norm"].dropna().gt(0).all()
    if use_lora:
        adapter = load_file(out / "adapter_model.safetensors")
        assert any(name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in adapter.items())
    else:
        after = load_file(out / "model.safetensors")
        assert sum(not torch.equal(before[k], after[k]) for k in before if k in after) > 0


# ---------- every rank runs the same passes, one optimizer step per training step, the loss scaled once ----------

def _trainer_with_turns(tmp_path, monkeypatch):
    """A tiny memory trainer whose rollouts are three fixed turns (two pieces of turn_batch 2), so a step's
    passes can be counted without sampling."""
    profile = with_overrides(TINY, {"memory.rl.mcq_fraction": 0.0, "memory.rl.rows": 2, "memory.rl.turn_batch": 2,
                                    "memory.rl.beta": 0.0})
    trainer, _, _ = build_memory_trainer(profile, tmp_path / "run", progress=False)
    turns = [Turn([10, 11, 12], [20, 21], 1.0, 0, "update"), Turn([13, 14], [22], -1.0, 1, "update"),
             Turn([15, 16, 17, 18], [23, 24, 25], 0.5, 0, "answer")]
    monkeypatch.setattr(trainer, "rollouts", lambda model, items: (turns, {}))
    trainer.current_gradient_accumulation_steps = 2
    forwards = []
    trainer.model.register_forward_hook(lambda module, args, output: forwards.append(1))
    return trainer, forwards


def _gradient(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_a_rank_with_fewer_pieces_runs_the_agreed_passes_and_its_gradient_is_unchanged(tmp_path, monkeypatch):
    """Under ZeRO-3 or FSDP every forward gathers weights: a rank whose personas have fewer chunks must still
    run as many passes as the busiest rank, with extra passes that add nothing to the gradient."""
    trainer, forwards = _trainer_with_turns(tmp_path, monkeypatch)
    trainer.model.zero_grad()
    trainer.training_step(trainer.model, [])
    alone, passes_alone = _gradient(trainer.model).clone(), len(forwards)
    assert passes_alone == 2
    monkeypatch.setattr(trainer, "agreed_passes", lambda pieces: pieces + 3)  # another rank had 5 pieces
    trainer.model.zero_grad()
    forwards.clear()
    trainer.training_step(trainer.model, [])
    assert len(forwards) == 5
    assert torch.allclose(_gradient(trainer.model), alone, atol=1e-7) and alone.abs().sum() > 0


def test_only_the_last_pass_of_a_step_reaches_the_accumulation_boundary_and_the_loss_is_scaled_once(
        tmp_path, monkeypatch):
    """DeepSpeed steps optimizer and scheduler on every backward made at the boundary, and divides by the
    accumulation steps itself unless told not to: one step per training step, one division."""
    from accelerate.utils import DistributedType

    trainer, _ = _trainer_with_turns(tmp_path, monkeypatch)
    calls = []
    accelerator = trainer.accelerator

    def spy(loss, **kwargs):
        calls.append((accelerator.sync_gradients, kwargs, loss.detach().clone()))
        loss.backward()

    monkeypatch.setattr(accelerator, "backward", spy)
    monkeypatch.setattr(type(accelerator), "distributed_type", property(lambda self: DistributedType.DEEPSPEED))
    trainer.training_step(trainer.model, [])
    assert [sync for sync, _, _ in calls] == [False, True]
    assert all(kwargs == {"scale_wrt_gas": False} for _, kwargs, _ in calls)
    monkeypatch.setattr(type(accelerator), "distributed_type", property(lambda self: DistributedType.NO))
    scaled = [loss for _, _, loss in calls]
    calls.clear()
    trainer.current_gradient_accumulation_steps = 1
    trainer.training_step(trainer.model, [])
    assert calls[0][1] == {} and torch.allclose(calls[0][2], scaled[0] * 2)  # divided by the 2 accumulation steps


def test_memory_rollouts_generate_without_waiting_for_other_ranks(monkeypatch):
    """transformers steps every rank's generate together under ZeRO-3 or FSDP (synced_gpus); on weights
    gathered for sampling that is not needed, and a rank reading fewer chunks calls generate fewer times,
    so a synced call would wait forever for a partner that never comes (the two-process rehearsal hung)."""
    from pmv2nb.train.memory_rl import _Sampler

    tokenizer = tokenizer_for("tiny")
    model = load_causal_lm(str(tiny_model_dir()))
    calls, generate = [], model.generate
    monkeypatch.setattr(model, "generate", lambda **kwargs: calls.append(kwargs) or generate(**kwargs))
    replies = _Sampler(model, tokenizer, max_new_tokens=3, temperature=1.0, batch_size=2)(
        [[{"role": "user", "content": "Note what you learned."}]] * 2)
    assert len(replies) == 2 and calls
    assert all(call["synced_gpus"] is False for call in calls)


# ---------- rollouts on a colocated vLLM engine (tests/vllm_stand_in.py plays vLLM on the CPU) ----------

def _runs(log: list[str]) -> list[str]:
    """The log with repeats in a row folded: one entry per run of the same call."""
    return [entry for i, entry in enumerate(log) if i == 0 or entry != log[i - 1]]


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("sleep", [True, False])
def test_vllm_rollouts_sample_the_policy_weights_of_their_step(tmp_path, monkeypatch, sleep):
    """The engine samples every rollout batch on the policy as it is at that step: pushed after each wake in
    sleep mode (level 2 drops the weights), else once per optimizer step; asleep between batches."""
    from vllm_stand_in import install

    stand_in = install(monkeypatch)
    profile = with_overrides(TINY, {"memory.rl.use_vllm": True, "memory.rl.vllm_sleep_mode": sleep,
                                    "memory.rl.mcq_fraction": 0.0, "memory.rl.rows": 2, "memory.rl.max_steps": 1})
    trainer, _, summary = build_memory_trainer(profile, tmp_path / "run", progress=False)
    assert summary["settings"]["use_vllm"] is True and summary["settings"]["vllm_sleep_mode"] is sleep
    (engine,) = stand_in.instances
    assert engine.enable_sleep_mode is sleep and engine.engine_args["gpu_memory_utilization"] == 0.35
    start = _weights(trainer.model)
    trainer.train()  # one optimizer step over two rollout batches (batch 2, one question per pass)
    trainer.rollouts(trainer.model, [trainer.train_dataset[0]])  # a third batch, after the update
    updated = _weights(trainer.model)
    assert any(not torch.equal(start[name], updated[name]) for name in start)
    expected = [start, start, updated] if sleep else [start, updated]  # awake, batches 1 and 2 run together
    assert len(engine.seen_weights) == len(expected)
    for seen, policy in zip(engine.seen_weights, expected):
        assert seen.keys() == policy.keys() and all(torch.equal(seen[n], policy[n]) for n in policy)
    push = ["load_weights", "reset_prefix_cache"]
    if sleep:
        batch = ["wake_up(weights)", *push, "wake_up(kv_cache)", "generate", "sleep(2)"]
        assert _runs(engine.log) == ["sleep(2)"] + batch * 3
    else:
        assert _runs(engine.log) == [*push, "generate", *push, "generate"]


def test_vllm_and_generate_rollouts_get_the_same_prompts_sampling_and_structure(tmp_path, monkeypatch):
    """Both engines sample the whole distribution (top_p 1, no top-k) at the rollout temperature, capped at the
    notes' cap for rewrites and the answer cap for answers, and give turns of the same shape."""
    from vllm_stand_in import install

    from pmv2nb.train import memory_rl

    profile = with_overrides(TINY, {"memory.rl.mcq_fraction": 0.0, "memory.rl.rows": 1, "memory.rl.temperature": 0.9})
    generate_calls, sample = [], memory_rl.sample_completions

    def recorded(model, tokenizer, prompts, max_new_tokens, temperature, top_p, top_k, synced_gpus):
        generate_calls.append((max_new_tokens, temperature, top_p, top_k))
        return sample(model, tokenizer, prompts, max_new_tokens, temperature, top_p, top_k, synced_gpus=synced_gpus)

    monkeypatch.setattr(memory_rl, "sample_completions", recorded)
    trainer, _, _ = build_memory_trainer(profile, tmp_path / "generate", progress=False)
    item = trainer.train_dataset[0]
    on_generate, generate_stats = trainer.rollouts(trainer.model, [item])
    assert trainer.engine is None and generate_calls

    stand_in = install(monkeypatch)
    generate_calls_before = len(generate_calls)
    trainer, _, _ = build_memory_trainer(with_overrides(profile, {"memory.rl.use_vllm": True}), tmp_path / "vllm",
                                         progress=False)
    on_vllm, vllm_stats = trainer.rollouts(trainer.model, [item])
    assert len(generate_calls) == generate_calls_before  # transformers generate was not used
    (engine,) = stand_in.instances
    vllm_calls = [(p.max_tokens, p.temperature, p.top_p, p.top_k) for _, p in engine.calls]
    caps = {TINY.memory.memory_tokens, TINY.memory.rl.max_answer_tokens}
    assert set(vllm_calls) == set(generate_calls) == {(cap, 0.9, 1.0, 0) for cap in caps}
    assert all(params.n == 1 for _, params in engine.calls)
    assert [(t.rollout, t.kind) for t in on_vllm] == [(t.rollout, t.kind) for t in on_generate]
    assert on_vllm[0].prompt_ids == on_generate[0].prompt_ids  # the first rewrite's prompt precedes any sampling
    for turn in on_vllm:
        assert isinstance(turn, Turn) and all(isinstance(i, int) for i in turn.prompt_ids + turn.completion_ids)
        cap = TINY.memory.memory_tokens if turn.kind == "update" else TINY.memory.rl.max_answer_tokens
        assert 0 < len(turn.completion_ids) <= cap
    assert vllm_stats.keys() == generate_stats.keys()


def test_vllm_rollouts_without_a_gpu_stop_before_any_data_and_say_what_to_set(tmp_path, monkeypatch):
    from pmv2nb.backends.vllm_offline import VLLMUnavailableError
    from pmv2nb.train import memory_rl

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")

    def no_data(*args, **kwargs):
        raise AssertionError("data prepared before the vLLM check")

    monkeypatch.setattr(memory_rl, "load_profile_split", no_data)
    with pytest.raises(VLLMUnavailableError, match=r"NVIDIA GPU.*memory\.rl\.use_vllm=false"):
        build_memory_trainer(with_overrides(TINY, {"memory.rl.use_vllm": True}), tmp_path / "x", progress=False)
    for name in ("small", "paper"):  # the GPU profiles sample memory rollouts on vLLM, asleep between batches
        rl = config.resolve(name).memory.rl
        assert rl.use_vllm and rl.vllm_sleep_mode


def test_the_frozen_reference_is_held_in_the_type_the_passes_compute_in(tmp_path):
    """A reference that never trains needs no float32 master copy: bf16 (or fp16) where training computes in it,
    float32 where training runs in float32 (the CPU profiles)."""
    from pmv2nb.train.memory_rl import frozen_reference

    def dtypes(model) -> set[torch.dtype]:
        return {parameter.dtype for parameter in model.parameters()}

    rows = {"memory.rl.rows": 1}
    trainer, _, _ = build_memory_trainer(with_overrides(TINY, rows), tmp_path / "fp32", progress=False)
    assert TINY.memory.rl.beta and dtypes(trainer.ref_model) == {torch.float32}
    trainer, _, _ = build_memory_trainer(with_overrides(TINY, {**rows, "model.dtype": "bfloat16"}), tmp_path / "bf16",
                                         progress=False)
    assert trainer.args.bf16 and dtypes(trainer.model) == {torch.float32}  # float32 master weights train
    assert dtypes(trainer.ref_model) == {torch.bfloat16}
    policy = load_causal_lm(tiny_model_dir())
    reference = frozen_reference(policy, "fp16")
    assert dtypes(reference) == {torch.float16} and dtypes(policy) == {torch.float32}
    assert not any(parameter.requires_grad for parameter in reference.parameters()) and not reference.training
