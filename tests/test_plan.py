"""The preflight plan: its arithmetic, the paper and small profiles' fit, the CLI, and the check at stage start.

Only model configs are read (the shipped Qwen3 ones, the tiny model's from its settings), no weights.
"""

from types import SimpleNamespace

import pytest

from pmv2nb import config
from pmv2nb.cli import main
from pmv2nb.train import plan
from pmv2nb.train.plan import CARDS, GIB, Hardware, PlanError, hardware_for, plan_stage, preflight

PAPER_8 = hardware_for(8, None, 80)


@pytest.fixture(scope="module")
def paper():
    return config.resolve("paper")


@pytest.mark.parametrize("stage", plan.STAGES)
def test_parts_add_up_to_the_total_of_the_peak_phase(paper, stage):
    result = plan_stage(paper, stage, PAPER_8)
    assert result.parts == {**result.resident, **result.phases[result.peak_phase]}
    assert result.total == pytest.approx(sum(result.parts.values()))
    assert all(value >= 0 for value in result.parts.values())
    peak = sum(result.resident.values()) + sum(result.phases[result.peak_phase].values())
    assert all(sum(result.resident.values()) + sum(parts.values()) <= peak for parts in result.phases.values())


def test_sharding_divides_the_training_state_by_the_gpu_count(paper):
    state = ("weights", "gradients", "optimizer state")
    two, eight = (plan_stage(paper, "sft", hardware_for(gpus, None, 80)) for gpus in (2, 8))
    for part in state:
        assert two.parts[part] == pytest.approx(4 * eight.parts[part])
    shape = plan.model_shape(paper)
    assert 3.9e9 < shape.params < 4.1e9  # FACTS.md: about 4.0B
    # float32 master (4) beside the 16-bit copy (2), float32 gradients (4), Adam's two float32 moments (8)
    assert sum(eight.parts[part] for part in state) == pytest.approx(shape.params * 18 / 8)
    one = plan_stage(paper, "sft", hardware_for(1, None, 141))
    assert one.parts["weights"] == pytest.approx(shape.params * 4)  # one GPU: nothing sharded
    lora = plan_stage(config.with_overrides(paper, {"sft.use_lora": True}), "sft", PAPER_8)
    assert lora.parts["weights"] > shape.params * 2  # LoRA: the frozen base whole on every GPU
    assert "full shard" not in plan.format_plan(lora)


def test_the_old_grpo_micro_batch_default_fails_at_paper_sizes_and_the_new_one_fits(paper):
    old = plan_stage(config.with_overrides(paper, {"grpo.micro_batch": None}), "grpo", PAPER_8)
    assert old.pass_rows == 8 and not old.fits
    assert "grpo.micro_batch" in old.problems[0]
    assert old.parts["activations"] > 40 * GIB and old.parts["attention mask"] > 9 * GIB  # the estimate
    for stage in plan.STAGES:
        assert plan_stage(paper, stage, PAPER_8).fits, stage
    assert plan_stage(paper, "grpo", PAPER_8).pass_rows == 1


def test_memory_rl_counts_the_reference_copy_in_the_compute_type_on_every_gpu(paper):
    result = plan_stage(paper, "memory", PAPER_8)
    assert result.resident["reference model"] == pytest.approx(plan.model_shape(paper).params * 2)  # bfloat16
    no_kl = plan_stage(config.with_overrides(paper, {"memory.rl.beta": 0.0}), "memory", PAPER_8)
    assert "reference model" not in no_kl.resident
    assert not plan_stage(config.with_overrides(paper, {"memory.rl.turn_batch": 16}), "memory", PAPER_8).fits
    tiny = config.resolve("tiny")  # float32 on the CPU: the reference stays float32
    on_cpu = plan_stage(tiny, "memory", Hardware(device="cpu"))
    assert on_cpu.resident["reference model"] == pytest.approx(plan.model_shape(tiny).params * 4)


def test_memory_rl_on_vllm_books_the_colocated_share_and_not_the_trainers_generate(paper):
    """With memory.rl.use_vllm the plan holds vLLM's share (only while sampling, in sleep mode), estimates
    generation as GRPO's vLLM estimate does, and names the share when it cannot hold one turn."""
    asleep = plan_stage(paper, "memory", PAPER_8)
    share = 0.35 * 80 * GIB
    assert paper.memory.rl.use_vllm and asleep.phases["generation"] == {"vLLM share (colocated, awake)": share}
    assert "vLLM share (colocated)" not in asleep.resident and "KV cache" not in asleep.parts
    awake = plan_stage(config.with_overrides(paper, {"memory.rl.vllm_sleep_mode": False}), "memory", PAPER_8)
    assert awake.resident["vLLM share (colocated)"] == share and set(awake.phases) == {"forward/backward"}
    passes = sum(asleep.resident.values()) + sum(asleep.phases["forward/backward"].values())
    assert awake.total == pytest.approx(passes + share)
    on_generate = plan_stage(config.with_overrides(paper, {"memory.rl.use_vllm": False}), "memory", PAPER_8)
    assert "KV cache" in on_generate.phases["generation"] and "trainer's own generate" in " ".join(on_generate.notes)
    # rollouts of one question (8) fit the KV cache: the same rounds as generate, 8 at a time
    assert asleep.generate_seconds == pytest.approx(on_generate.generate_seconds)
    squeezed = plan_stage(config.with_overrides(paper, {"memory.rl.vllm_gpu_memory_utilization": 0.1}), "memory",
                          PAPER_8)
    assert any("memory.rl.vllm_gpu_memory_utilization" in problem for problem in squeezed.problems)


def test_grpo_in_sleep_mode_holds_the_vllm_share_only_while_sampling(paper):
    asleep = plan_stage(config.with_overrides(paper, {"grpo.vllm_sleep_mode": True}), "grpo", PAPER_8)
    awake = plan_stage(paper, "grpo", PAPER_8)
    assert "vLLM share (colocated)" in awake.resident and "vLLM share (colocated)" not in asleep.resident
    assert asleep.phases["generation"] == {"vLLM share (colocated, awake)": awake.resident["vLLM share (colocated)"]}
    assert asleep.total < awake.total


def test_small_profile_on_a_t4_computes_in_float16_and_fits_every_stage():
    small = config.resolve("small")
    t4 = hardware_for(1, "t4")
    for stage in plan.STAGES:
        result = plan_stage(small, stage, t4)
        assert result.precision.mixed == "fp16" and "float16" in plan.format_plan(result)
        assert result.fits, (stage, result.problems)
        assert result.total <= 16e9
    assert plan_stage(small, "sft", hardware_for(1, "a100")).precision.mixed == "bf16"


def test_a_colocated_vllm_share_too_small_for_one_sequence_names_its_setting(paper):
    squeezed = config.with_overrides(paper, {"grpo.vllm_gpu_memory_utilization": 0.1})
    result = plan_stage(squeezed, "grpo", PAPER_8)
    assert any("grpo.vllm_gpu_memory_utilization" in problem for problem in result.problems)


def test_cli_prints_three_fitting_stages_for_the_paper_profile(capsys):
    assert main(["plan", "--profile", "paper", "--gpus", "8", "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    for title in ("sft:", "grpo:", "memory train:"):
        assert title in out
    assert out.count(": fits") == 3 and "GPU-hours" in out and "DOES NOT FIT" not in out


def test_cli_exits_non_zero_naming_the_setting_when_a_stage_does_not_fit(capsys):
    assert main(["plan", "--profile", "paper", "--gpus", "8", "--gpu-memory", "24", "--stage", "grpo"]) == 1
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out and "grpo." in captured.err
    assert main(["plan", "--profile", "paper", "--gpus", "8", "--set", "grpo.micro_batch=none",
                 "--stage", "grpo"]) == 1
    assert "grpo.micro_batch" in capsys.readouterr().err


def test_throughput_sets_the_step_time(paper):
    given = plan_stage(paper, "sft", PAPER_8, throughput=1000.0)
    tokens_per_gpu = paper.sft.batch_size // 8 * paper.sft.max_length
    assert given.train_seconds == pytest.approx(tokens_per_gpu / 1000.0)
    assert given.gpu_hours == pytest.approx(paper.sft.max_steps * given.step_seconds * 8 / 3600)


def test_preflight_does_nothing_without_a_gpu(paper, monkeypatch):
    from pmv2nb.train import common

    monkeypatch.setattr(common, "on_gpu", lambda profile: False)
    assert preflight(config.with_overrides(paper, {"grpo.micro_batch": None}), "grpo") is None


def fake_gpu(monkeypatch, memory_gib: float, capability=(9, 0), processes: int = 8):
    """Make the preflight see ``processes`` GPUs of this size (torch's calls, so visible_hardware runs)."""
    import torch

    from pmv2nb.train import common

    monkeypatch.setattr(common, "on_gpu", lambda profile: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(name="fake", total_memory=int(memory_gib * GIB)))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: capability)
    monkeypatch.setenv("WORLD_SIZE", str(processes))


def test_preflight_refuses_a_stage_too_big_for_the_gpus_it_sees(paper, monkeypatch):
    fake_gpu(monkeypatch, 79.1)
    assert preflight(paper, "grpo").fits
    with pytest.raises(PlanError, match=r"grpo\.micro_batch"):
        preflight(config.with_overrides(paper, {"grpo.micro_batch": None}), "grpo")
    fake_gpu(monkeypatch, 14.6, capability=(7, 5), processes=1)
    with pytest.raises(PlanError, match=r"memory\.|memory train"):
        preflight(paper, "memory")


@pytest.mark.parametrize("stage", plan.STAGES)
def test_every_stage_runs_the_preflight_before_it_prepares_data(stage, monkeypatch, tmp_path):
    from pmv2nb.train import common, examples, grpo, memory_rl, sft

    def no_data(*args, **kwargs):
        raise AssertionError("data prepared before the preflight")

    for module in (sft, examples, memory_rl, common):  # every place a stage opens a split
        monkeypatch.setattr(module, "load_profile_split", no_data)
    monkeypatch.setattr(plan, "visible_hardware", lambda profile: Hardware(gpus=1, card=CARDS["t4"], memory_gib=0.01))
    tiny = config.resolve("tiny")
    run = {"sft": lambda: sft.train_sft(tiny, tmp_path / "sft", progress=False),
           "grpo": lambda: grpo.train_grpo(tiny, tmp_path / "grpo", progress=False),
           "memory": lambda: memory_rl.build_memory_trainer(tiny, tmp_path / "memory", progress=False)}[stage]
    with pytest.raises(PlanError, match=plan.PASS_SETTINGS[stage].replace(".", r"\.") + "|" + plan.LENGTH_SETTINGS[
            stage].replace(".", r"\.")):
        run()
