"""Profile resolution and the early GPU check."""

import dataclasses

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


def test_gpu_profiles_report_training_to_tensorboard_and_cpu_profiles_to_nothing():
    from pmv2nb.train.common import report_args

    reported = {name: report_args(config.resolve(name))["report_to"] for name in config.PROFILES}
    assert reported == {"laptop": "none", "tiny": "none", "small": "tensorboard", "paper": "tensorboard"}
    assert report_args(config.resolve("tiny", {"train.report_to": "tensorboard"})) == {"report_to": "tensorboard"}
    with pytest.raises(ValueError, match="train.report_to must be one of"):
        report_args(config.resolve("tiny", {"train.report_to": "mlflow"}))


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


def test_set_strings_are_typed_by_the_setting_they_name():
    profile = config.resolve("tiny", config.parse_assignments(
        ["grpo.max_steps=5", "sft.learning_rate=1e-5", "grpo.use_vllm=true", "eval.sizes=32k,128k",
         "eval.judge=none", "memory.rl.judge=openai:gpt-4.1"]))
    assert profile.grpo.max_steps == 5 and profile.sft.learning_rate == 1e-5 and profile.grpo.use_vllm is True
    assert profile.eval.sizes == ("32k", "128k") and profile.eval.judge is None
    assert profile.memory.rl.judge == "openai:gpt-4.1"
    with pytest.raises(config.ProfileError, match="eval.concurrency.*int"):
        config.resolve("tiny", {"eval.concurrency": "four"})
    with pytest.raises(config.ProfileError, match="did you mean eval.concurrency"):
        config.resolve("tiny", {"eval.concurency": 4})
    with pytest.raises(config.ProfileError, match="KEY=VALUE"):
        config.parse_assignments(["eval.concurrency"])


def test_a_config_file_applies_before_set_and_may_name_the_profile(tmp_path, monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("profile: tiny\ngrpo:\n  max_steps: 7\n  judge: baseline:bm25\neval.concurrency: 3\n")
    profile = config.resolve(None, {"eval.concurrency": "5"}, recipe)
    assert profile.name == "tiny" and profile.grpo.max_steps == 7 and profile.grpo.judge == "baseline:bm25"
    assert profile.eval.concurrency == 5  # --set wins over the file
    assert config.resolve("laptop", None, recipe).name == "laptop"  # an explicit name wins over the file's
    (tmp_path / "bad.yaml").write_text("grpo: [1, 2\n")
    with pytest.raises(config.ProfileError, match="bad.yaml"):
        config.resolve(None, None, tmp_path / "bad.yaml")


def test_every_setting_has_help_and_rl_stages_share_one_definition():
    rows = config.setting_keys(config.resolve("paper"))
    assert rows and all(row["help"] for row in rows), [row["key"] for row in rows if not row["help"]]
    assert {"grpo.lora_rank", "grpo.vllm_gpu_memory_utilization", "memory.rl.turn_batch",
            "memory.rl.generation_batch", "memory.users_per_batch"} <= {row["key"] for row in rows}
    shared = {f.name for f in dataclasses.fields(config.RLSettings)}
    for stage in (config.GRPOSettings, config.MemoryRLSettings):
        assert issubclass(stage, config.RLSettings)
        own = set(stage.__dataclass_fields__) - shared
        assert not own & shared and "num_generations" not in own


def test_cli_and_notebook_overrides_reach_the_same_run_settings(capsys):
    from pmv2nb.cli import build_parser, main
    from pmv2nb.cli.evaluate import run_settings
    from pmv2nb.evaluate.suite import profile_settings
    from pmv2nb.notebooks import start

    args = build_parser().parse_args(["eval", "--model", "baseline:bm25", "--set", "eval.concurrency=4",
                                      "--max-tokens", "16"])
    _, from_cli = run_settings(args, "mcq")
    session = start("benchmark", None, {"eval.concurrency": 4, "eval.max_new_tokens": 16,
                                        "eval.mcq_max_new_tokens": 16}, show=False)
    assert from_cli == profile_settings(session.profile, "mcq", "32k")
    assert from_cli.eval.concurrency == 4 and from_cli.sampling.max_tokens == 16
    assert main(["profile", "tiny", "--keys", "--set", "eval.concurrency=4"]) == 0
    listed = capsys.readouterr().out
    assert "eval.concurrency = 4" in listed and "parallel requests" in listed
    assert main(["eval", "--model", "baseline:bm25", "--set", "eval.nope=1"]) == 2
    assert "eval.nope" in capsys.readouterr().err
