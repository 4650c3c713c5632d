"""The preflight plan: what each training stage needs of every GPU, and roughly how long it runs, before a GPU-hour.

For SFT, GRPO and memory RL the plan adds up, per GPU and in bytes, the parts a step holds at its peak: the
trained weights, gradients and optimizer state under the sharding in use, 16-bit weight copies, a reference
model, checkpointed activations, the LM head's logits as TRL (or our memory trainer) computes them, the padded
attention mask, and the generation side (vLLM's colocated share, or the KV cache of the trainer's own
``generate``). The batch arithmetic is the stages' own (``accumulation``, GRPO's ``schedule_args``), and so is
the precision (``training_dtypes`` for the card named), so the plan cannot drift from what a launch does.

``pmv2nb plan`` prints it for any card; every training stage calls :func:`preflight` before it prepares data,
and a stage that will not fit stops there with the setting to change. Model shapes come from the model's
config only (two Qwen3 configs ship with the package), never from its weights.

The time estimate is a FLOPs model: 6 x parameters x tokens for a step (4 x under LoRA, whose frozen weights
need no weight gradient) plus attention, one more forward pass under gradient checkpointing, at an assumed
share of the card's dense 16-bit peak (``DEFAULT_UTILIZATION``); generation is read-bound (weights and KV cache
read once per new token at ``BANDWIDTH_EFFICIENCY`` of the card's bandwidth). ``--throughput`` replaces the
training side with a measured tokens per second.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from ..config import Profile, setting_value, with_overrides

GIB = 2**30
STAGES = ("sft", "grpo", "memory")
SECTIONS = {"sft": "sft", "grpo": "grpo", "memory": "memory.rl"}
STAGE_TITLES = {"sft": "sft", "grpo": "grpo", "memory": "memory train"}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# TRL 1.16's fused LM head (trl.trainer.utils.add_fused_lm_head, trl.kernels.chunked_logprob): logits are built
# in tiles of TOKEN_CHUNK_SIZE positions x _CHUNKED_LOGPROB_CHUNK_SIZE words, never whole. On a GPU (Triton)
# only the scored positions go through it; on a CPU every position does, and the tile is folded by float32
# torch ops: its backward (_backward_tile) holds the scaled logits, log p, p, the gradient and the target term's
# temporaries at once, seven float32 copies of the tile (the CPU rows of the README's validation table check it).
HEAD_TOKENS_PER_TILE = 4096
HEAD_WORDS_PER_TILE = 32768
CPU_TILE_FLOAT32_COPIES = 7

# Assumptions of the time model, not measurements (the GPU measurements we hold are of 135M-parameter models and
# smaller, which are overhead-bound: see the README's validation table).
DEFAULT_UTILIZATION = 0.40  # share of the dense 16-bit peak a long-context ZeRO-3/FSDP step sustains
BANDWIDTH_EFFICIENCY = 0.60  # share of memory bandwidth a decode step sustains
# What the trainer's prompt adds around a memory chunk (instructions, the query and options in the non-causal
# variants, chat markup): an allowance, so the plan needs no tokenizer.
MEMORY_PROMPT_ALLOWANCE = 1024
# vLLM's own working memory inside its share, besides weights and KV cache (activation profiling, CUDA graphs)
VLLM_WORKSPACE = 1.5 * GIB
# On a GPU, memory torch never reports: the CUDA context, plus allocator fragmentation as a share of the card
CUDA_CONTEXT = 1.0 * GIB
FRAGMENTATION = 0.05


@dataclass(frozen=True)
class Card:
    """A GPU model: memory as torch reports it, compute capability, dense tensor-core peak, memory bandwidth."""

    name: str
    memory_gib: float
    capability: tuple[int, int]
    dense_tflops: float  # in the card's native 16-bit type, without sparsity (vendor datasheets)
    bandwidth_tbs: float


CARDS = {
    "h100": Card("H100 80GB SXM", 79.1, (9, 0), 989.0, 3.35),
    "h200": Card("H200 141GB", 139.8, (9, 0), 989.0, 4.8),
    "a100": Card("A100 80GB", 79.2, (8, 0), 312.0, 2.04),
    "a100-40gb": Card("A100 40GB", 39.4, (8, 0), 312.0, 1.56),
    "l4": Card("L4 24GB", 22.0, (8, 9), 121.0, 0.30),
    "a10g": Card("A10G 24GB", 22.0, (8, 6), 70.0, 0.60),
    "t4": Card("T4 16GB", 14.6, (7, 5), 65.0, 0.32),
    "v100": Card("V100 32GB", 31.7, (7, 0), 125.0, 0.90),
}


@dataclass(frozen=True)
class Hardware:
    """What a stage runs on: ``gpus`` processes, each with one card (or a CPU, for validating the plan here)."""

    gpus: int = 1
    card: Card = CARDS["h100"]
    memory_gib: float | None = None  # overrides the card's memory (--gpu-memory)
    device: str = "cuda"
    gradient_checkpointing: bool | None = None  # None: on a GPU only, as hardware_args sets it

    @property
    def checkpointing(self) -> bool:
        return self.on_gpu if self.gradient_checkpointing is None else self.gradient_checkpointing

    @property
    def memory(self) -> float:
        return (self.memory_gib if self.memory_gib is not None else self.card.memory_gib) * GIB

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


def hardware_for(gpus: int = 1, gpu: str | None = None, memory_gib: float | None = None) -> Hardware:
    """The hardware ``pmv2nb plan`` describes: a named card (default H100), its memory overridden if given."""
    name = (gpu or "h100").lower()
    if name not in CARDS:
        raise ValueError(f"unknown --gpu {gpu!r}; choose one of: {', '.join(CARDS)}")
    if gpus < 1:
        raise ValueError(f"--gpus must be at least 1, got {gpus}")
    return Hardware(gpus=gpus, card=CARDS[name], memory_gib=memory_gib)


# ---------- model shapes ----------

@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only transformer that memory and FLOPs depend on."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    qk_norm: bool  # Qwen3 normalizes queries and keys per head; Llama does not

    @classmethod
    def from_config(cls, name: str, config: dict) -> "ModelShape":
        heads = config["num_attention_heads"]
        return cls(name=name, layers=config["num_hidden_layers"], hidden=config["hidden_size"], heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   intermediate=config["intermediate_size"], vocab=config["vocab_size"],
                   tied=bool(config.get("tie_word_embeddings", False)),
                   qk_norm=config.get("model_type") == "qwen3")

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_in_out(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of each linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, i = self.hidden, self.intermediate
        return [(h, self.q_dim), (h, self.kv_dim), (h, self.kv_dim), (self.q_dim, h), (h, i), (h, i), (i, h)]

    @property
    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linear_in_out)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        norms = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        head = 0 if self.tied else self.embedding_params
        return self.embedding_params + head + self.layers * (self.layer_linear_params + norms) + self.hidden

    @property
    def matmul_params(self) -> int:
        """Weights each token multiplies through: every linear layer and the output head (not the lookup)."""
        return self.layers * self.layer_linear_params + self.embedding_params

    def lora_params(self, rank: int) -> int:
        """LoRA's A and B on every linear layer of every decoder layer (peft's 'all-linear' leaves the head out)."""
        return self.layers * rank * sum(a + b for a, b in self.linear_in_out)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return self.layers * 2 * self.kv_dim * dtype_bytes


def _packaged_configs() -> dict[str, dict]:
    folder = resources.files(__package__) / "model_configs"
    return {entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
            for entry in folder.iterdir() if entry.name.endswith(".json")}


def model_config(profile: Profile) -> dict:
    """The profile model's config.json as a dict, without loading weights (offline for the built-in and shipped
    models; any other hub id goes through transformers' AutoConfig)."""
    from ..models import BUILTIN_MODELS, TINY, builtin_model_dir

    name = profile.model.name
    if name == TINY:  # the random Qwen3 is built from the settings, its vocabulary the real tokenizer's
        from ..models import tokenizer_for

        return {"model_type": "qwen3", "vocab_size": len(tokenizer_for(TINY)), "tie_word_embeddings": True,
                **{key: value for key, value in asdict(profile.model.tiny).items()}}
    if name in BUILTIN_MODELS:
        return json.loads((builtin_model_dir(name, profile) / "config.json").read_text(encoding="utf-8"))
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    shipped = _packaged_configs().get(name.rpartition("/")[2].lower())
    if shipped is not None:
        return shipped
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name).to_dict()
    except OSError as err:
        raise ValueError(f"the plan needs {name}'s config.json and cannot read it ({err}); pass a local folder "
                         f"holding it as model.name, or run online once") from None


def model_shape(profile: Profile) -> ModelShape:
    return ModelShape.from_config(profile.model.name, model_config(profile))


# ---------- memory by part ----------

def layer_activation_bytes(shape: ModelShape, residual: int, compute: int, autocast: bool, lora: bool = False) -> int:
    """Bytes one decoder layer keeps for its backward per token, besides its input.

    Counted from transformers' Llama/Qwen3 layer: each RMSNorm keeps a float32 normalized copy and its output,
    the mid-layer residual, q/k/v, Qwen3's per-head q/k norms (float32 inside), the rotary copies, attention's
    output and its contiguous copy, and the MLP's gate, activation, up and product. Under autocast every linear
    layer casts its input to 16 bits again (q, k, v from one input: three casts; gate and up: two). LoRA's
    dropout (``lora_config``: 0.05) keeps a dropped copy of every adapted layer's input and its mask."""
    h, i, q, kv = shape.hidden, shape.intermediate, shape.q_dim, shape.kv_dim
    dropout = sum(inputs for inputs, _ in shape.linear_in_out) * (compute + 1) if lora else 0
    norms = 2 * (4 * h + residual * h)
    casts = 5 * compute * h if autocast else 0
    qk_norms = (q + kv) * (4 + compute) if shape.qk_norm else 0
    return (norms + residual * h + casts + (q + 2 * kv) * compute + qk_norms + 2 * (q + kv) * compute
            + 2 * q * compute + 4 * i * compute + dropout)


def activation_bytes(shape: ModelShape, tokens: int, residual: int, compute: int, autocast: bool, lora: bool,
                     checkpointing: bool) -> int:
    """A pass's activations for ``tokens`` positions: with gradient checkpointing each layer keeps only its
    input and one layer is recomputed at a time; without it every layer keeps everything. Two residual-sized
    gradients are in flight during the backward either way."""
    inside = layer_activation_bytes(shape, residual, compute, autocast, lora)
    per_layer_input = residual * shape.hidden
    if checkpointing:
        per_token = shape.layers * per_layer_input + inside
    else:
        per_token = shape.layers * (per_layer_input + inside)
    return tokens * (per_token + 2 * residual * shape.hidden)


def fused_head_bytes(shape: ModelShape, scored: int, compute: int, residual: int, head_grad_bytes: int,
                     on_gpu: bool) -> int:
    """TRL's chunked LM head at its backward: one logits tile (plus float32 copies on a CPU), the scored
    hidden states, their float32 gradient, and the head's float32 weight gradient when the head trains."""
    tile = min(scored, HEAD_TOKENS_PER_TILE) * min(shape.vocab, HEAD_WORDS_PER_TILE)
    tile_bytes = tile * compute + (0 if on_gpu else CPU_TILE_FLOAT32_COPIES * tile * 4)
    hidden = scored * shape.hidden * (residual + 4 + residual)
    weight_grad = shape.embedding_params * (4 + head_grad_bytes) if head_grad_bytes else 0
    return tile_bytes + hidden + weight_grad


def full_logits_bytes(shape: ModelShape, rows: int, width: int, compute: int, copies: int) -> int:
    """Logits built whole for ``rows`` x ``width`` positions (our memory trainer's ``completion_logps``)."""
    return copies * rows * (width + 1) * shape.vocab * compute


def mask_bytes(rows: int, length: int, compute: int) -> int:
    """transformers' sdpa mask for a padded batch: a rows x 1 x S x S boolean tensor for the whole pass, and
    while a layer runs, the copy in the compute type that PyTorch's attention turns it into."""
    return rows * length * length * (1 + compute)


@dataclass(frozen=True)
class Precision:
    weights: str  # dtype the trained weights are held in
    mixed: str | None  # 'bf16', 'fp16' or None, as training_dtypes says
    lora: bool
    sharded: bool

    @property
    def weight_bytes(self) -> int:
        return DTYPE_BYTES[self.weights]

    @property
    def compute_bytes(self) -> int:
        return 2 if self.mixed else self.weight_bytes

    @property
    def residual_bytes(self) -> int:
        """The residual stream's type: the engine's 16-bit copy under sharding, else the weights' own."""
        return self.compute_bytes if self.sharded else self.weight_bytes

    @property
    def autocast(self) -> bool:
        return bool(self.mixed) and not self.sharded and self.weight_bytes == 4

    def describe(self) -> str:
        compute = {"bf16": "bfloat16", "fp16": "float16 with loss scaling", None: self.weights}[self.mixed]
        if self.lora:
            return f"LoRA: frozen base in {self.weights}, float32 adapters, computing in {compute}"
        master = "float32 master weights" if self.weights == "float32" else f"{self.weights} weights"
        return f"{master}, computing in {compute}"


def training_state(shape: ModelShape, precision: Precision, lora_rank: int, shards: int) -> dict[str, float]:
    """Weights, gradients and Adam's state per GPU.

    LoRA: the frozen base whole on every GPU, float32 adapters with their gradients and moments. Full
    fine-tuning under ZeRO-3/FSDP: everything divided over the GPUs, the float32 master weights beside the
    16-bit copy the engine computes with; unsharded: weights, gradients and moments in the weights' type."""
    params, wbytes = shape.params, precision.weight_bytes
    if precision.lora:
        adapters = shape.lora_params(lora_rank)
        return {"weights": params * wbytes + adapters * 4, "gradients": adapters * 4, "optimizer state": adapters * 8}
    if shards > 1:
        half = 2 if wbytes == 4 and precision.mixed else 0
        return {"weights": params * (wbytes + half) / shards, "gradients": params * 4 / shards,
                "optimizer state": params * 8 / shards}
    return {"weights": params * wbytes, "gradients": params * wbytes, "optimizer state": 2 * params * wbytes}


def weight_copies(shape: ModelShape, precision: Precision) -> float:
    """16-bit weights that exist only while a pass runs: autocast's cached casts of every linear weight
    (float32 master weights, one GPU), or the layers ZeRO-3/FSDP gathers (two at a time) plus the whole head."""
    if precision.sharded:
        return 2 * (2 * shape.layer_linear_params + shape.embedding_params)
    if precision.autocast:
        return 2 * shape.layers * shape.layer_linear_params
    return 0


# ---------- the plan of one stage ----------

@dataclass
class StagePlan:
    """One stage's plan on one hardware: parts that stay for the whole stage, the parts of each phase of a
    step on top of them, the step's tokens and time, and what does not fit (each problem names a setting)."""

    stage: str
    model: str
    hardware: Hardware
    precision: Precision
    pass_rows: int  # sequences per forward/backward pass
    pass_length: int  # tokens per sequence in a pass
    accumulation: int
    steps: int
    tokens_per_step: int
    resident: dict[str, float]
    phases: dict[str, dict[str, float]]
    train_seconds: float
    generate_seconds: float
    tokens_per_second: float
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def section(self) -> str:
        return SECTIONS[self.stage]

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda name: sum(self.phases[name].values()))

    @property
    def parts(self) -> dict[str, float]:
        """Every part held at the peak phase; they add up to :attr:`total`."""
        return {**self.resident, **self.phases[self.peak_phase]}

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def step_seconds(self) -> float:
        return self.train_seconds + self.generate_seconds

    @property
    def gpu_hours(self) -> float:
        return self.steps * self.step_seconds * self.hardware.gpus / 3600


def stage_precision(profile: Profile, lora: bool, hardware: Hardware) -> Precision:
    from .common import training_dtypes

    weights, mixed = training_dtypes(profile, lora, device=hardware.device,
                                     capability=hardware.card.capability if hardware.on_gpu else None)
    return Precision(weights, mixed, lora, sharded=hardware.gpus > 1 and not lora)


def train_seconds(shape: ModelShape, sequences: int, length: int, lora: bool, hardware: Hardware,
                  utilization: float, throughput: float | None) -> tuple[float, float]:
    """(seconds, tokens per second) one GPU needs to train ``sequences`` of ``length`` tokens."""
    tokens = sequences * length
    if throughput:
        return tokens / throughput, throughput
    checkpointing = hardware.checkpointing
    matmul = shape.matmul_params * (2 + 2 + (0 if lora else 2) + (2 if checkpointing else 0))
    attention = shape.layers * shape.q_dim * length * (2 + 4 + (2 if checkpointing else 0))
    rate = utilization * hardware.card.dense_tflops * 1e12 / (matmul + attention)
    return tokens / rate, rate


def generate_seconds(shape: ModelShape, hardware: Hardware, utilization: float, prompts: int, prompt_tokens: int,
                     new_tokens: int, sequences_in_flight: int, context: int, rounds: int) -> float:
    """A read-bound estimate of sampling: the prompts' prefill at the FLOPs rate, then ``new_tokens`` decode steps
    per round, each reading the 16-bit weights and the in-flight KV cache once."""
    card = hardware.card
    prefill = prompts * (2 * shape.matmul_params * prompt_tokens + 2 * shape.layers * shape.q_dim * prompt_tokens ** 2)
    read = 2 * shape.params + sequences_in_flight * context * shape.kv_bytes_per_token(2)
    decode = rounds * new_tokens * read / (BANDWIDTH_EFFICIENCY * card.bandwidth_tbs * 1e12)
    return prefill / (utilization * card.dense_tflops * 1e12) + decode


def _runtime(hardware: Hardware) -> dict[str, float]:
    return {"CUDA context, allocator slack": CUDA_CONTEXT + FRAGMENTATION * hardware.memory} if hardware.on_gpu else {}


def _pass_parts(shape: ModelShape, precision: Precision, hardware: Hardware, rows: int, length: int,
                padded: bool) -> dict[str, float]:
    """What a training pass of ``rows`` x ``length`` adds: weight copies, activations, the attention mask."""
    return {"16-bit weight copies": weight_copies(shape, precision),
            "activations": activation_bytes(shape, rows * length, precision.residual_bytes, precision.compute_bytes,
                                            precision.autocast, precision.lora, hardware.checkpointing),
            "attention mask": mask_bytes(rows, length, precision.compute_bytes) if padded else 0}


def _head_grad_bytes(precision: Precision) -> int:
    """Bytes of the head's weight gradient as the model holds it (0: the head is frozen, under LoRA)."""
    return 0 if precision.lora else (precision.compute_bytes if precision.sharded else precision.weight_bytes)


def plan_sft(profile: Profile, hardware: Hardware, shape: ModelShape, utilization: float,
             throughput: float | None) -> StagePlan:
    from .common import accumulation
    from .sft import micro_batch_for

    settings = profile.sft
    precision = stage_precision(profile, settings.use_lora, hardware)
    rows, length = micro_batch_for(settings), settings.max_length
    steps_per_update = accumulation(settings.batch_size, rows, hardware.gpus)
    passes = _pass_parts(shape, precision, hardware, rows, length, padded=rows > 1)
    # every position may be a target (sft.loss_turns 'all'): the bound the plan keeps
    passes["logits (TRL chunked head)"] = fused_head_bytes(shape, rows * length, precision.compute_bytes,
                                                           precision.residual_bytes, _head_grad_bytes(precision),
                                                           hardware.on_gpu)
    resident = {**training_state(shape, precision, settings.lora_rank, hardware.gpus), **_runtime(hardware)}
    seconds, rate = train_seconds(shape, settings.batch_size // hardware.gpus, length, settings.use_lora, hardware,
                                  utilization, throughput)
    return StagePlan("sft", shape.name, hardware, precision, rows, length, steps_per_update, settings.max_steps,
                     settings.batch_size * length, resident,
                     {"forward/backward": passes}, seconds, 0.0, rate,
                     notes=["tokens are the budget (sft.max_length): real histories are shorter"])


def plan_grpo(profile: Profile, hardware: Hardware, shape: ModelShape, utilization: float,
              throughput: float | None) -> StagePlan:
    from .grpo import completions_per_step, schedule_args

    settings = profile.grpo
    precision = stage_precision(profile, settings.use_lora, hardware)
    schedule = schedule_args(settings, hardware.gpus)
    rows = schedule["per_device_train_batch_size"]
    prompt, completion = settings.max_prompt_length, settings.max_completion_length
    length = prompt + completion
    # TRL pads prompts (left) and completions (right) across the whole generation batch: every pass is padded
    passes = _pass_parts(shape, precision, hardware, rows, length, padded=True)
    scored = rows * (completion if hardware.on_gpu else length - 1)
    passes["logits (TRL chunked head)"] = fused_head_bytes(shape, scored, precision.compute_bytes,
                                                           precision.residual_bytes, _head_grad_bytes(precision),
                                                           hardware.on_gpu)
    resident = {**training_state(shape, precision, settings.lora_rank, hardware.gpus)}
    if settings.beta and not settings.use_lora:  # TRL loads a reference model, sharded like the policy
        resident["reference model"] = shape.params * (precision.compute_bytes / hardware.gpus if precision.sharded
                                                      else precision.weight_bytes)
    completions = completions_per_step(settings) // hardware.gpus
    groups = max(1, completions // settings.num_generations)
    kv_token = shape.kv_bytes_per_token(precision.compute_bytes)
    group_kv = (prompt + settings.num_generations * completion) * kv_token  # prefix caching: one prompt per group
    phases = {"forward/backward": passes}
    problems, notes = [], []
    colocated = settings.use_vllm and settings.vllm_mode == "colocate"
    in_flight = groups
    if colocated:
        kv_room = colocated_vllm(settings, "grpo", "grpo.max_prompt_length", hardware, shape, length, kv_token,
                                 resident, phases, problems, notes)
        in_flight = max(0, min(groups, int(kv_room // group_kv)))
        notes.append(f"a prompt group needs {group_kv / GIB:.1f} GiB of KV cache, the GPU's {groups} groups "
                     f"{groups * group_kv / GIB:.1f} GiB ({in_flight} at a time)")
    elif not settings.use_vllm:  # the trainer's own generate, every completion of the GPU's batch at once
        phases["generation"] = {"16-bit weight copies": weight_copies(shape, precision) + (
            2 * shape.params if precision.sharded else 0), "KV cache": completions * length * kv_token,
            "attention mask": mask_bytes(completions, prompt, precision.compute_bytes)}
    else:
        notes.append("vLLM serves from other GPUs (grpo.vllm_mode=server): not counted here")
    resident.update(_runtime(hardware))
    seconds, rate = train_seconds(shape, completions, length, settings.use_lora, hardware, utilization, throughput)
    waves = math.ceil(groups / max(in_flight, 1))
    generating = generate_seconds(shape, hardware, utilization, groups, prompt, completion,
                                  min(groups, max(in_flight, 1)) * settings.num_generations,
                                  prompt + completion // 2, waves)
    plan = StagePlan("grpo", shape.name, hardware, precision, rows, length, schedule["gradient_accumulation_steps"],
                     settings.max_steps, completions_per_step(settings) * length // settings.updates_per_batch,
                     resident, phases, seconds, generating, rate, notes=notes, problems=problems)
    plan.notes.append("a step is one rollout batch (grpo.max_steps counts them), "
                      f"{settings.updates_per_batch} optimizer update(s) each")
    return plan


def colocated_vllm(settings, section: str, length_key: str, hardware: Hardware, shape: ModelShape, longest: int,
                   kv_token: int, resident: dict, phases: dict, problems: list, notes: list) -> float:
    """Book a colocated vLLM engine's share of the GPU and return the KV cache it leaves, in bytes.

    The share is held all the time, or with ``vllm_sleep_mode`` only while rollouts are sampled (a sleeping
    engine has dropped its weights and KV cache). A share whose KV cache cannot hold one ``longest``-token
    sequence is a problem naming ``{section}.vllm_gpu_memory_utilization`` and ``length_key``."""
    share = settings.vllm_gpu_memory_utilization * hardware.memory
    if settings.vllm_sleep_mode:
        phases["generation"] = {"vLLM share (colocated, awake)": share}
    else:
        resident["vLLM share (colocated)"] = share
    kv_room = share - 2 * shape.params - VLLM_WORKSPACE
    notes.append(f"vLLM's share holds its 16-bit weights ({2 * shape.params / GIB:.1f} GiB), "
                 f"{VLLM_WORKSPACE / GIB:.1f} GiB of workspace and {max(kv_room, 0) / GIB:.1f} GiB of KV cache"
                 + ("; it sleeps while the trainer runs its passes" if settings.vllm_sleep_mode else ""))
    if kv_room < longest * kv_token:
        problems.append(f"vLLM's share ({settings.vllm_gpu_memory_utilization:.2f} of the card) leaves "
                        f"{max(kv_room, 0) / GIB:.1f} GiB of KV cache, less than one {longest:,}-token sequence "
                        f"needs ({longest * kv_token / GIB:.1f} GiB): raise {section}.vllm_gpu_memory_utilization "
                        f"or lower {length_key}")
    return kv_room


def memory_lengths(memory) -> tuple[int, int, int]:
    """(update prompt, longest completion, answer prompt) of a memory-RL turn, in tokens, for ``memory`` (the
    profile's ``memory`` settings)."""
    from .memory_rl import answer_tokens

    update_prompt = memory.chunk_tokens + memory.memory_tokens + MEMORY_PROMPT_ALLOWANCE
    return update_prompt, max(memory.memory_tokens, answer_tokens(memory)), memory.memory_tokens + \
        MEMORY_PROMPT_ALLOWANCE


def plan_memory(profile: Profile, hardware: Hardware, shape: ModelShape, utilization: float,
                throughput: float | None) -> StagePlan:
    from .common import accumulation
    from .memory_rl import answer_tokens, micro_batch_for

    memory, settings = profile.memory, profile.memory.rl
    precision = stage_precision(profile, settings.use_lora, hardware)
    update_prompt, width, answer_prompt = memory_lengths(memory)
    rows, length = settings.turn_batch, update_prompt + width
    steps_per_update = accumulation(settings.batch_size, micro_batch_for(settings), hardware.gpus)
    compute = precision.compute_bytes
    passes = _pass_parts(shape, precision, hardware, rows, length, padded=rows > 1)
    passes["logits (whole, completion positions)"] = full_logits_bytes(shape, rows, width, compute, copies=3)
    resident = {**training_state(shape, precision, settings.lora_rank, hardware.gpus)}
    if settings.beta and not settings.use_lora:  # build_memory_trainer: a frozen copy on every GPU, in the
        resident["reference model"] = shape.params * compute  # type the passes compute in (frozen_reference)
        passes["reference logits"] = full_logits_bytes(shape, rows, width, compute, copies=2)
    kv_token = shape.kv_bytes_per_token(compute)
    sequence = update_prompt + memory.memory_tokens  # a rewrite at its cap
    # each training step samples its own questions' rollouts, chunk by chunk: a rollout batch
    per_batch = micro_batch_for(settings) * settings.num_generations
    phases: dict[str, dict[str, float]] = {"forward/backward": passes}
    problems: list[str] = []
    notes = [f"a turn is at most {update_prompt:,} prompt tokens (chunk, notes and a {MEMORY_PROMPT_ALLOWANCE}-token "
             f"allowance for the instructions and query) + {width:,} new ones"]
    if settings.use_vllm:
        kv_room = colocated_vllm(settings, "memory.rl", LENGTH_SETTINGS["memory"], hardware, shape, length, kv_token,
                                 resident, phases, problems, notes)
        in_flight = max(1, min(per_batch, int(kv_room // (sequence * kv_token))))
        notes.append(f"generation is vLLM colocated, a rollout batch's {per_batch} rewrites at once "
                     f"({in_flight} fit its KV cache)")
    else:
        in_flight = min(settings.generation_batch, per_batch)
        phases["generation"] = {
            "16-bit weight copies": 2 * shape.params if precision.sharded else weight_copies(shape, precision),
            "KV cache": in_flight * sequence * kv_token,
            "attention mask": mask_bytes(in_flight, update_prompt, compute)}
        notes.append(f"generation is the trainer's own generate, {in_flight} prompts at a time")
    resident.update(_runtime(hardware))
    rollouts = settings.batch_size * settings.num_generations // hardware.gpus
    turn_tokens = memory.max_chunks * (update_prompt + memory.memory_tokens) + answer_prompt + answer_tokens(memory)
    seconds, rate = train_seconds(shape, rollouts * (memory.max_chunks + 1), turn_tokens // (memory.max_chunks + 1),
                                  settings.use_lora, hardware, utilization, throughput)
    rounds = math.ceil(rollouts / per_batch) * math.ceil(per_batch / in_flight) * (memory.max_chunks + 1)
    generating = generate_seconds(shape, hardware, utilization, rollouts * (memory.max_chunks + 1), update_prompt,
                                  memory.memory_tokens, in_flight, update_prompt + memory.memory_tokens // 2, rounds)
    return StagePlan("memory", shape.name, hardware, precision, rows, length,
                     steps_per_update, settings.max_steps, settings.batch_size * settings.num_generations * turn_tokens,
                     resident, phases, seconds, generating, rate, notes=notes, problems=problems)


PLANNERS = {"sft": plan_sft, "grpo": plan_grpo, "memory": plan_memory}
# the setting that sets each stage's sequences per pass, and what shortens its sequences
PASS_SETTINGS = {"sft": "sft.micro_batch", "grpo": "grpo.micro_batch", "memory": "memory.rl.turn_batch"}
LENGTH_SETTINGS = {"sft": "sft.max_length", "grpo": "grpo.max_prompt_length", "memory": "memory.chunk_tokens"}
LORA_SETTINGS = {"sft": "sft.use_lora", "grpo": "grpo.use_lora", "memory": "memory.rl.use_lora"}


def _fits(profile: Profile, stage: str, hardware: Hardware, shape: ModelShape) -> bool:
    try:
        plan = PLANNERS[stage](profile, hardware, shape, DEFAULT_UTILIZATION, None)
    except ValueError:  # a micro-batch that does not divide the batch
        return False
    return not plan.problems and plan.total <= hardware.memory


def largest_fitting(profile: Profile, stage: str, hardware: Hardware, shape: ModelShape, key: str,
                    start: int) -> int | None:
    """The largest value of ``key`` from ``start`` down to 1 with which the stage fits, or None."""
    for value in range(start, 0, -1):
        if _fits(with_overrides(profile, {key: value}), stage, hardware, shape):
            return value
    return None


def _over_budget(profile: Profile, stage: str, hardware: Hardware, shape: ModelShape, plan: StagePlan) -> str:
    """Why the stage does not fit and the setting to change first."""
    head = (f"{STAGE_TITLES[stage]} needs {plan.total / GIB:.1f} GiB per GPU at its peak ({plan.peak_phase}), "
            f"more than the {hardware.memory / GIB:.1f} GiB of the card")
    colocated = (stage == "memory" and profile.memory.rl.use_vllm) or (
        stage == "grpo" and profile.grpo.use_vllm and profile.grpo.vllm_mode == "colocate")
    if stage == "memory" and plan.peak_phase == "generation" and not colocated:
        key, start = "memory.rl.generation_batch", profile.memory.rl.generation_batch
    else:
        key, start = PASS_SETTINGS[stage], plan.pass_rows
    if start > 1:
        best = largest_fitting(profile, stage, hardware, shape, key, start - 1)
        if best is not None:
            return f"{head}: set {key}={best} (the largest that fits; now {start})"
    options = [LENGTH_SETTINGS[stage]]
    if not setting_value(profile, LORA_SETTINGS[stage]):
        options.append(f"{LORA_SETTINGS[stage]}=true")
    if colocated:
        options.append(f"{SECTIONS[stage]}.vllm_gpu_memory_utilization")
    return f"{head} even at {key}=1: lower {' or '.join(options)}, or use more or larger GPUs"


def plan_stage(profile: Profile, stage: str, hardware: Hardware, *, utilization: float = DEFAULT_UTILIZATION,
               throughput: float | None = None) -> StagePlan:
    """The plan of one stage ('sft', 'grpo' or 'memory') of ``profile`` on ``hardware``."""
    if stage not in PLANNERS:
        raise ValueError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    shape = model_shape(profile)
    plan = PLANNERS[stage](profile, hardware, shape, utilization, throughput)
    if plan.total > hardware.memory:
        plan.problems.append(_over_budget(profile, stage, hardware, shape, plan))
    return plan


# ---------- the check at the start of a training stage ----------

class PlanError(ValueError):
    """A stage that will not fit the GPUs it was given; the message names the setting to change."""


def visible_hardware(profile: Profile) -> Hardware | None:
    """The GPUs this launch was given (one per process, WORLD_SIZE processes), or None without a GPU."""
    from ..ranks import world_size
    from .common import on_gpu

    if not on_gpu(profile):
        return None
    import torch

    properties = torch.cuda.get_device_properties(0)
    capability = tuple(torch.cuda.get_device_capability(0))
    known = next((card for card in CARDS.values() if card.capability == capability
                  and abs(card.memory_gib - properties.total_memory / GIB) < 2), None)
    card = known or Card(properties.name, properties.total_memory / GIB, capability, CARDS["h100"].dense_tflops,
                         CARDS["h100"].bandwidth_tbs)
    return Hardware(gpus=world_size(), card=card, memory_gib=properties.total_memory / GIB)


def preflight(profile: Profile, stage: str, engine=None) -> StagePlan | None:
    """What every training stage runs before it prepares any data: refuse a launch whose engine config disagrees
    with the settings (``engine``, the stage's :class:`~pmv2nb.train.common.EngineValues`), then a stage that
    will not fit the GPUs it runs on (no plan on a CPU)."""
    if engine is not None:
        from .common import check_engine

        check_engine(engine, SECTIONS[stage])
    hardware = visible_hardware(profile)
    if hardware is None:
        return None
    plan = plan_stage(profile, stage, hardware)
    if plan.problems:
        raise PlanError(f"preflight ({hardware.gpus} x {hardware.card.name}): " + "; ".join(plan.problems)
                        + " (`pmv2nb plan` shows every part)")
    return plan


# ---------- printing ----------

def _gib(value: float) -> str:
    return f"{value / GIB:8.2f}"


def format_plan(plan: StagePlan) -> str:
    hardware, precision = plan.hardware, plan.precision
    where = (f"{hardware.gpus} x {hardware.card.name}, {hardware.memory / GIB:.1f} GiB each, compute capability "
             f"{hardware.card.capability[0]}.{hardware.card.capability[1]}" if hardware.on_gpu else "CPU")
    sharding = ("ZeRO-3/FSDP full shard over " f"{hardware.gpus} GPUs" if precision.sharded
                else "data parallel, every GPU holds the whole model" if hardware.gpus > 1 else "one device")
    lines = [f"{STAGE_TITLES[plan.stage]}: {plan.model} on {where}",
             f"  precision: {precision.describe()}; {sharding}",
             f"  pass: {plan.pass_rows} x {plan.pass_length:,} tokens ({PASS_SETTINGS[plan.stage]}), "
             f"accumulation {plan.accumulation}; tokens per optimizer step {plan.tokens_per_step:,}",
             f"  memory per GPU at the peak ({plan.peak_phase}), GiB:"]
    lines += [f"    {name:<38}{_gib(value)}" for name, value in plan.parts.items() if value]
    resident = sum(plan.resident.values())
    others = ", ".join(f"{name} {(resident + sum(parts.values())) / GIB:.1f} GiB"
                       for name, parts in plan.phases.items() if name != plan.peak_phase)
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"    {'total':<38}{_gib(plan.total)} of {hardware.memory / GIB:.1f}: {verdict}"
                 + (f" (other phases: {others})" if others else ""))
    rate = f"{plan.tokens_per_second:,.0f} training tokens/s per GPU"
    generate = f" + {plan.generate_seconds:,.1f} s generating" if plan.generate_seconds else ""
    lines.append(f"  time: {plan.train_seconds:,.1f} s training{generate} per step at {rate}; "
                 f"{plan.steps} steps: {plan.steps * plan.step_seconds / 3600:,.1f} h, {plan.gpu_hours:,.1f} GPU-hours")
    lines += [f"  note: {note}" for note in plan.notes]
    lines += [f"  PROBLEM: {problem}" for problem in plan.problems]
    return "\n".join(lines)


def describe_timing(hardware: Hardware, utilization: float, throughput: float | None) -> str:
    if throughput:
        return f"training throughput: {throughput:,.0f} tokens/s per GPU (given)"
    return (f"training throughput: FLOPs model (6 x parameters x tokens, 4 x under LoRA, + attention, + one forward "
            f"under checkpointing) at {utilization:.0%} of {hardware.card.dense_tflops:,.0f} dense 16-bit TFLOPS "
            f"(an assumption; measure and pass --throughput); generation read-bound at "
            f"{BANDWIDTH_EFFICIENCY:.0%} of {hardware.card.bandwidth_tbs} TB/s")


__all__ = ["CARDS", "Card", "Hardware", "ModelShape", "PlanError", "StagePlan", "format_plan", "hardware_for",
           "largest_fitting", "model_shape", "plan_stage", "preflight"]
