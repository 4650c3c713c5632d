"""The tiny offline Qwen3 and the real tokenizer, with no model hub."""

import os

import torch

from pmv2nb import config, models


def test_tokenizer_is_the_real_qwen3_one():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tokenizer = models.tokenizer_for("tiny")
    assert len(tokenizer) == 151669
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [151644, 151645]  # Qwen3's ids
    assert tokenizer.decode(tokenizer.encode("Don't forget: café at 5")) == "Don't forget: café at 5"
    assert len(tokenizer.encode("personalization")) < len("personalization")  # real BPE merges, not characters


def test_one_tokenizer_resolver_for_names_specs_run_and_adapter_folders(tmp_path):
    from transformers import AutoTokenizer

    tiny = models.tokenizer_for("tiny")
    assert models.tokenizer_for("hf:tiny") is tiny
    assert models.tokenizer_for("openai:gpt-4.1") is tiny  # an API model's tokenizer is not public
    assert models.tokenizer_for("openai:served@http://127.0.0.1:1/v1") is tiny
    run = tmp_path / "run"  # a run folder holds the tokenizer it was trained with; mark it to recognise it
    own = AutoTokenizer.from_pretrained(models.qwen3_tokenizer_dir(), local_files_only=True)
    own.add_tokens(["<run-marker>"])
    own.save_pretrained(run)
    adapter = tmp_path / "adapter"  # a LoRA adapter saved without a tokenizer: its base model's
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(f'{{"base_model_name_or_path": "{run}"}}')
    for spec in (str(run), f"hf:{run}", f"vllm:{run}", f"openai:{run}@http://127.0.0.1:1/v1", str(adapter)):
        assert "<run-marker>" in models.tokenizer_for(spec).get_vocab(), spec
    assert "<run-marker>" not in tiny.get_vocab()


def test_tiny_model_is_qwen3_with_sampling_defaults_and_generates():
    model = models.build_tiny_model(seed=0)
    assert model.config.model_type == "qwen3" and model.config.vocab_size == 151669
    assert model.generation_config.do_sample and model.generation_config.top_k == 20
    same = models.build_tiny_model(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    tokenizer = models.tokenizer_for("tiny")
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=5, min_new_tokens=5)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


def test_tiny_model_is_saved_once(tmp_path):
    folder = models.tiny_model_dir(cache_root=tmp_path)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.tiny_model_dir(cache_root=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_tiny_model_loads_through_the_profile_in_its_shape_and_seed():
    # a narrow shape (a small file in the model cache) and a seed of its own, so neither can come from a default
    profile = config.resolve("tiny", {"seed": 7, "model.tiny.hidden_size": 16, "model.tiny.head_dim": 4,
                                      "model.tiny.intermediate_size": 32})
    model, tokenizer = models.load_model(profile)
    assert (model.config.hidden_size, model.config.head_dim, model.config.intermediate_size) == (16, 4, 32)
    expected = models.build_tiny_model(profile.model.tiny, seed=7).state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in model.state_dict().items())
    other_seed = models.build_tiny_model(profile.model.tiny, seed=0).state_dict()
    assert not all(torch.equal(tensor, other_seed[name]) for name, tensor in model.state_dict().items())
    logits = model(**tokenizer("hello there", return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer) and model.device.type == "cpu"


def test_ranks_that_build_the_tiny_model_at_once_all_get_it(tmp_path):
    """Every rank of a launch asks for the tiny model when it starts; on a fresh machine they build it
    together (the two-process rehearsal failed once on a clean cache when they shared one side folder)."""
    import subprocess
    import sys

    build = (f"from pmv2nb import models; from pathlib import Path; "
             f"print(models.tiny_model_dir(cache_root=Path({str(tmp_path)!r})))")
    ranks = [subprocess.Popen([sys.executable, "-c", build], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [(rank.wait(timeout=300), *rank.communicate()) for rank in ranks]
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-2000:] for _, _, err in results]
    folders = {out.strip() for _, out, _ in results}
    assert len(folders) == 1
    models.load_causal_lm(folders.pop())
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_missing_run_folder_is_named_instead_of_read_as_a_hub_id(tmp_path):
    import pytest

    missing = tmp_path / "sft-that-never-ran"
    for spec in (f"hf:{missing}", f"vllm:{missing}", "hf:./runs/not-there", "hf:runs/sft/checkpoint-9"):
        with pytest.raises(FileNotFoundError, match="no folder .*run folder that exists"):
            models.tokenizer_for(spec)
    for hub_id in ("Qwen/Qwen3-4B", "tiny"):  # names that can be hub ids are left for the hub to answer
        models.check_local_folder(f"hf:{hub_id}", hub_id)
    for path in ("~/no-such-run/sft", "/no/such/run"):
        with pytest.raises(FileNotFoundError):
            models.check_local_folder(f"hf:{path}", path)


def test_evaluating_a_missing_run_folder_stops_before_writing_anything(tmp_path, capsys):
    from pmv2nb.cli import main

    for command in (["eval", "--mode", "mcq"], ["memory", "run"]):  # both open their results file first
        out = tmp_path / f"{command[0]}.jsonl"
        status = main([*command, "--profile", "tiny", "--model", f"hf:{tmp_path / 'no-run'}", "--rows", "1",
                       "--out", str(out), "--cache", str(tmp_path / "c.sqlite")])
        assert status != 0 and "no folder" in capsys.readouterr().err and not out.exists()
