"""Profile resolution and the early GPU check."""

import pytest

from pmv2nb import config, models


def test_profile_comes_from_argument_then_environment_then_default(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.resolve().name == "laptop"
    monkeypatch.setenv(config.PROFILE_ENV, "paper")
    assert config.resolve().name == "paper"
    assert config.resolve("small").name == "small"


def test_profiles_carry_the_papers_sizes():
    paper = config.resolve("paper")
    assert paper.model.name == "Qwen/Qwen3-4B-Instruct-2507"
    assert (paper.memory.chunk_tokens, paper.memory.max_chunks, paper.memory.memory_tokens) == (5000, 8, 2048)
    assert (paper.sft.max_steps, paper.sft.batch_size, paper.sft.learning_rate) == (300, 64, 1e-5)
    assert (paper.grpo.batch_size, paper.grpo.num_generations, paper.grpo.mcq_fraction) == (32, 8, 0.8)
    tiny = config.resolve("tiny")
    assert tiny.offline and not tiny.model.requires_gpu and tiny.data_source().endswith("data/mini")


def test_overrides_change_one_setting_and_reject_unknown_ones():
    profile = config.resolve("tiny", {"data.row_limit": 10, "seed": 3})
    assert profile.data.row_limit == 10 and profile.seed == 3 and profile.data.modality == "text"
    with pytest.raises(config.ProfileError, match="unknown profile"):
        config.resolve("huge")
    with pytest.raises(config.ProfileError, match="not a setting"):
        config.resolve("tiny", {"data.rows": 10})


def test_gpu_profiles_fail_early_with_advice_on_a_cpu_machine():
    if models.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(models.GPURequiredError, match="PMV2NB_PROFILE=laptop"):
        models.choose_device(config.resolve("paper"))
    assert models.choose_device(config.resolve("tiny")) == "cpu"
