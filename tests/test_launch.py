"""What a first GPU launch depends on, checked without a GPU: the precision each card computes in, engine
configs that never hold a second copy of a setting, and GRPO's vLLM importance sampling as a named setting."""

from pathlib import Path

import pytest
import torch
import yaml

from pmv2nb import config, models
from pmv2nb.config import with_overrides
from pmv2nb.train import common

ACCELERATE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "accelerate").glob("*.yaml"))


def see_gpu(monkeypatch, capability):
    """Pretend one CUDA GPU of this compute capability is visible. torch says every CUDA card 'supports'
    bfloat16 (it emulates it below 8.0), so that answer stays yes whatever the card."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


def test_a_t4_computes_in_float16_with_loss_scaling_and_an_h100_in_bfloat16(monkeypatch):
    small = config.resolve("small")
    see_gpu(monkeypatch, (7, 5))  # a T4, Colab's free GPU
    assert models.resolve_dtype("auto", "cuda") == "float16"
    assert common.training_dtypes(small, lora=True) == ("float16", "fp16")  # LoRA base in fp16, adapters float32
    assert common.training_dtypes(config.resolve("paper")) == ("float32", "fp16")
    hardware = common.hardware_args(small, "SFT")
    assert hardware["fp16"] is True and hardware["bf16"] is False
    with pytest.raises(models.PrecisionError, match="model.dtype=auto"):
        models.resolve_dtype("bfloat16", "cuda")  # vLLM would refuse it; training would run without tensor cores
    see_gpu(monkeypatch, (9, 0))  # an H100
    assert models.resolve_dtype("auto", "cuda") == "bfloat16" == models.resolve_dtype("bfloat16", "cuda")
    hardware = common.hardware_args(small, "SFT")
    assert hardware["bf16"] is True and hardware["fp16"] is False


def test_float16_master_weights_are_refused_since_loss_scaling_cannot_unscale_them(monkeypatch):
    see_gpu(monkeypatch, (7, 5))
    pure = config.resolve("paper", {"model.train_weights": "dtype"})
    with pytest.raises(ValueError, match="model.train_weights=auto"):
        common.training_dtypes(pure)


def test_the_gpu_profiles_let_the_card_choose_their_precision():
    for name in ("small", "paper"):
        assert config.resolve(name).model.dtype == "auto"


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_leave_clipping_accumulation_and_precision_to_the_settings(path):
    """A value written here as well as in the settings is the official SFT's failure: ZeRO-3's clipping 1.0
    against sft.max_grad_norm 0.5 stops transformers at train start, after all data preparation."""
    engine = yaml.safe_load(path.read_text())
    deepspeed = engine.get("deepspeed_config") or {}
    fsdp = engine.get("fsdp_config") or {}
    for key in ("gradient_clipping", "gradient_accumulation_steps"):
        assert str(deepspeed.get(key, "auto")) == "auto", (path.name, key)
        assert key not in engine, (path.name, key)
    assert str(engine.get("mixed_precision", "no")) == "no", path.name
    assert not fsdp.get("fsdp_activation_checkpointing"), path.name  # the trainer's gradient_checkpointing does it


def test_a_launch_whose_engine_config_disagrees_is_refused_before_any_data_is_prepared(monkeypatch, tmp_path):
    from pmv2nb.train import sft

    official = config.resolve("tiny", {"protocol": "official", "sft.max_grad_norm": 0.5})  # the authors' clipping
    monkeypatch.setattr(sft, "load_profile_split", lambda *a, **k: pytest.fail("data prepared before the check"))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "1.0")  # what the ZeRO-3 configs used to say
    with pytest.raises(ValueError, match="sft.max_grad_norm gives 0.5"):
        sft.train_sft(official, tmp_path / "run", progress=False)
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "auto")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(ValueError, match="mixed_precision is fp16"):
        sft.train_sft(official, tmp_path / "run", progress=False)


def test_a_deepspeed_json_with_its_own_numbers_is_refused_and_auto_passes(tmp_path):
    values = common.EngineValues(0.5, "sft.max_grad_norm", accumulation=8, micro_batch=1, mixed="bf16")
    ds_file = tmp_path / "ds.json"
    ds_file.write_text('{"gradient_clipping": "auto", "gradient_accumulation_steps": "auto", '
                       '"train_micro_batch_size_per_gpu": "auto", "bf16": {"enabled": "auto"}}')
    env = {"ACCELERATE_DEEPSPEED_CONFIG_FILE": str(ds_file)}
    assert common.engine_disagreements(values, "sft", env) == []
    ds_file.write_text('{"gradient_clipping": 1.0, "gradient_accumulation_steps": 4, '
                       '"train_micro_batch_size_per_gpu": 1, "fp16": {"enabled": true}}')
    problems = common.engine_disagreements(values, "sft", env)
    assert len(problems) == 3  # clipping, accumulation and fp16; the micro-batch agrees
    assert any("gradient_accumulation_steps=4" in p for p in problems)
    assert any("fp16.enabled=True" in p for p in problems)


def test_vllm_importance_sampling_is_off_unless_asked_and_named_when_on():
    from pmv2nb.train.grpo import vllm_config_args

    paper = config.resolve("paper")
    assert vllm_config_args(paper.grpo)["vllm_importance_sampling_correction"] is False  # TRL's default is True
    on = with_overrides(paper, {"grpo.vllm_importance_sampling": "token_truncate",
                                "grpo.vllm_importance_sampling_cap": 2.0}).grpo
    assert vllm_config_args(on).items() >= {"vllm_importance_sampling_correction": True,
                                            "vllm_importance_sampling_mode": "token_truncate",
                                            "vllm_importance_sampling_clip_max": 2.0}.items()
    assert vllm_config_args(config.resolve("tiny").grpo) == {}
    with pytest.raises(ValueError, match="grpo.vllm_importance_sampling must be one of"):
        vllm_config_args(with_overrides(paper, {"grpo.vllm_importance_sampling": "on"}).grpo)


def test_grpo_sleep_mode_reaches_trls_config_when_vllm_is_colocated():
    import dataclasses

    from trl import GRPOConfig

    from pmv2nb.train.grpo import vllm_config_args

    paper = config.resolve("paper")
    asleep = vllm_config_args(with_overrides(paper, {"grpo.vllm_sleep_mode": True}).grpo)
    assert asleep["vllm_enable_sleep_mode"] is True and vllm_config_args(paper.grpo)["vllm_enable_sleep_mode"] is False
    assert set(asleep) <= {f.name for f in dataclasses.fields(GRPOConfig)}  # every argument is one of TRL's
    server = with_overrides(paper, {"grpo.vllm_mode": "server", "grpo.vllm_sleep_mode": True}).grpo
    assert "vllm_enable_sleep_mode" not in vllm_config_args(server)  # a server manages its own memory


def test_the_bounded_share_counts_masked_rollouts_and_truncated_tokens():
    from pmv2nb.train.grpo_reuse import bounded_share

    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    sequence_ratio = torch.tensor([[0.0], [1.2]])  # the first rollout's ratio passed the bound: masked
    assert bounded_share(sequence_ratio, mask, "sequence_mask", 3.0) == 0.5
    token_ratio = torch.tensor([[3.0, 1.0, 3.0], [0.9, 3.0, 1.1]])  # the 3.0 in a padded slot is not counted
    assert bounded_share(token_ratio, mask, "token_truncate", 3.0) == pytest.approx(2 / 5)
