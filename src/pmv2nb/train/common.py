"""Plumbing both trainers share: loading the starting weights, LoRA, batch arithmetic, logging, saving.

A run folder (``runs/<name>`` by default, git-ignored) ends up holding the trained weights or LoRA
adapter as safetensors with the tokenizer, ``metrics.csv`` (one row per logged step, so figures
can be redrawn without retraining) and ``run.json`` (the settings that produced it). Such a folder
is a valid ``--init`` for the next stage and a valid ``hf:DIR`` model spec for evaluation.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..config import REPORT_TO, Profile, check_choice
from ..data.loader import load_profile_split
from ..models import is_adapter, load_causal_lm, local_snapshot, model_path, require_gpu, resolve_dtype
from ..ranks import node_leader_first, world_size
from ..prompts import TRAINING_FORMAT

METRICS_FILE = "metrics.csv"
RUN_FILE = "run.json"
CHECKPOINT_PREFIX = "checkpoint-"


def starting_point(profile: Profile, init: str | None) -> str:
    """The weights a stage starts from: ``init`` (a previous run folder or hub id), else the profile's model."""
    if init is None:
        return model_path(profile)
    path = Path(init).expanduser()
    if path.exists():
        return str(path)
    # "runs/sft-tiny" looks like a hub id ("Qwen/Qwen3-4B") too; an existing first folder gives it away
    looks_local = init.startswith((".", "/", "~")) or init.count("/") != 1 or Path(path.parts[0]).is_dir()
    if profile.offline or looks_local:
        raise FileNotFoundError(f"--init {init}: no such checkpoint folder (train the previous stage first"
                                f"{'' if profile.offline else ', or pass a hub id'})")
    return init


def fetched_start(profile: Profile, init: str | None) -> str:
    """:func:`starting_point`, with the Hub files every process of a launch needs fetched once per node.

    The node's first process downloads the starting weights (a Hub id becomes its local snapshot) and
    the train table; the other processes wait for it, then read the cache without a request of their
    own. Outside a launch this is :func:`starting_point`.
    """
    start = starting_point(profile, init)
    with node_leader_first():
        start = local_snapshot(start)
        if world_size() > 1:
            load_profile_split(profile, "train")
    return start


def policy(start: str, dtype: str) -> tuple[Any, dict | None]:
    """What to hand a TRL trainer as ``model``, with its ``model_init_kwargs``.

    A path or hub id is passed as a string, so TRL loads it itself (which DeepSpeed ZeRO-3 needs);
    a LoRA adapter is merged into its base first, since TRL cannot start from an adapter folder.
    """
    if is_adapter(start):
        return load_causal_lm(start, dtype), None
    return start, {"dtype": dtype}


def on_gpu(profile: Profile) -> bool:
    import torch

    return torch.cuda.is_available() and profile.model.device != "cpu"


TRAIN_WEIGHTS = ("auto", "float32", "dtype")


def training_dtypes(profile: Profile, lora: bool = False, *, device: str | None = None,
                    capability: tuple[int, int] | None = None) -> tuple[str, str | None]:
    """(dtype the trained weights are loaded in, the mixed precision computed in: 'bf16', 'fp16' or None).

    Full fine-tuning keeps float32 master weights by default (``model.train_weights``) and computes in
    the card's 16-bit type through autocast: an Adam step of a 1e-5 learning rate moves a weight by far
    less than a bfloat16 step (1/256 of it), so pure bfloat16 weights barely change. Measured on an H200
    with SmolLM2, 16 GRPO steps from one SFT init: bfloat16 weights moved 9x less (relative change 1.8e-5
    against 1.7e-4), and the mean reward of the last 8 steps was 0.06 against 0.17 (0.03 and 0.04 over
    the first 8). Under LoRA on a GPU the frozen base stays in the model's dtype, since the adapters that
    train are float32; on a CPU the weights are float32 always. A card without bfloat16 tensor cores
    (below compute capability 8.0, such as a T4) computes in float16 with loss scaling ('fp16').

    ``device`` and ``capability`` describe hardware other than this machine's (the preflight plan of a card
    that is not here); left out, they are the visible GPU's, else the CPU.
    """
    check_choice("model.train_weights", profile.model.train_weights, TRAIN_WEIGHTS)
    device = device or ("cuda" if on_gpu(profile) else "cpu")
    compute = resolve_dtype(profile.model.dtype, device, capability)
    keep = profile.model.train_weights
    if keep == "auto":
        keep = "dtype" if lora and device == "cuda" else "float32"
    weights = compute if keep == "dtype" else "float32"
    if weights == "float16" and not lora:
        raise ValueError("model.train_weights=dtype with float16 weights cannot train: loss scaling needs float32 "
                         "master weights (set model.train_weights=auto)")
    mixed = {"bfloat16": "bf16", "float16": "fp16" if device == "cuda" else None}.get(compute)
    return weights, mixed


def protocol_record(profile: Profile) -> dict:
    """What run.json records of the protocol: its tag, the switches changed from it, and the training prompt
    format's settings (``train_prompt``), with which the run is asked again when it is evaluated."""
    from ..config import protocol_changes, protocol_tag

    return {"protocol": protocol_tag(profile), "protocol_changes": protocol_changes(profile),
            "train_prompt": asdict(profile.train_prompt)}


def lora_config(rank: int = 16):
    """LoRA of rank ``rank`` (alpha twice that) on every linear layer: the usual choice for small-GPU fine-tuning."""
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")


def accumulation(samples_per_step: int, micro_batch: int, processes: int | None = None) -> int:
    """Gradient-accumulation steps so that micro_batch x steps x processes = samples_per_step.

    ``processes`` defaults to this launch's (WORLD_SIZE); the preflight plan passes the GPUs it plans for."""
    processes = processes or world_size()
    per_round = micro_batch * processes
    if samples_per_step % per_round:
        raise ValueError(f"{samples_per_step} samples per optimizer step cannot be split into micro-batches of "
                         f"{micro_batch} on {processes} process(es); change the batch size or --micro-batch")
    return max(1, samples_per_step // per_round)


def hardware_args(profile: Profile, purpose: str) -> dict[str, Any]:
    """Precision and device arguments for TRL configs; fails early when the profile's GPU is missing."""
    require_gpu(profile, purpose)
    gpu = on_gpu(profile)
    mixed = training_dtypes(profile)[1]
    return {
        "use_cpu": not gpu,
        "bf16": mixed == "bf16",
        "fp16": mixed == "fp16",  # float16 autocast with loss scaling, on cards without bfloat16 tensor cores
        "gradient_checkpointing": gpu,  # slows CPU runs down and saves nothing there
        "logging_steps": 1,
        "seed": profile.seed,
        "dataloader_num_workers": 0,
    }


# the packages each logging backend of train.report_to needs (the first one named is the one to install)
REPORT_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}
# where transformers' TensorBoard callback writes its event files inside a run folder
TENSORBOARD_FOLDER = "runs"


def report_args(profile: Profile) -> dict[str, Any]:
    """The trainers' ``report_to`` (``train.report_to``), checked before any data or weights are loaded.

    Without this check a missing backend package surfaces only when the trainer is built, after the
    data preparation, as an error that does not say which setting asked for it.
    """
    import importlib.util

    backend = profile.train.report_to
    check_choice("train.report_to", backend, REPORT_TO)
    modules = REPORT_PACKAGES.get(backend, ())
    if modules and not any(importlib.util.find_spec(module) for module in modules):
        raise ModuleNotFoundError(f"train.report_to={backend} needs the {modules[0]} package: pip install "
                                  f"{modules[0]} (or set train.report_to=none)")
    return {"report_to": backend}


@dataclass(frozen=True)
class EngineValues:
    """What a stage's settings make of the values an accelerate or DeepSpeed config can hold too.

    ``clipping_key`` names the setting behind ``clipping`` (RL stages clip at the trainer's default 1.0)."""

    clipping: float
    clipping_key: str
    accumulation: int
    micro_batch: int
    mixed: str | None  # 'bf16', 'fp16' or None, as training_dtypes says


def engine_disagreements(values: EngineValues, section: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Each value an ``accelerate launch`` config (or its DeepSpeed JSON) sets differently from the settings.

    The settings are the one source: the configs under configs/accelerate leave these values out (or say
    ``auto``), so the trainer's arguments fill them. A config that holds a second copy which disagrees makes
    transformers stop at train start, after all data preparation (DeepSpeed's ``gradient_clipping`` against
    ``max_grad_norm``), or quietly trains with other numbers; this finds it before any of that.
    """
    env = os.environ if env is None else env
    wanted = {"gradient_clipping": (values.clipping, values.clipping_key),
              "gradient_accumulation_steps": (values.accumulation, f"{section}.batch_size / micro_batch"),
              "train_micro_batch_size_per_gpu": (values.micro_batch, f"{section}.micro_batch")}
    found = {"gradient_clipping": env.get("ACCELERATE_GRADIENT_CLIPPING"),
             "gradient_accumulation_steps": env.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")}
    source = {key: "the accelerate config" for key in found}
    problems = []
    precision = env.get("ACCELERATE_MIXED_PRECISION")
    if precision not in (None, "no", values.mixed or "no"):
        problems.append(f"the accelerate config's mixed_precision is {precision}, but the settings compute in "
                        f"{values.mixed or 'float32'} on this hardware (model.dtype; see `pmv2nb plan`): set "
                        f"mixed_precision: 'no' there and let the trainer choose")
    ds_file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if ds_file and ds_file.lower() != "none":
        ds_config = json.loads(Path(ds_file).read_text(encoding="utf-8"))
        for key in wanted:
            if key in ds_config:
                found[key], source[key] = ds_config[key], ds_file
        for name, mixed in (("bf16", "bf16"), ("fp16", "fp16")):
            enabled = ds_config.get(name, {}).get("enabled", "auto")
            if enabled != "auto" and bool(enabled) != (values.mixed == mixed):
                problems.append(f"{ds_file} sets {name}.enabled={enabled}, but the settings compute in "
                                f"{values.mixed or 'float32'}: write \"auto\" there")
    for key, (expected, setting_key) in wanted.items():
        value = found.get(key)
        if value is None or str(value).lower() in ("auto", "none", ""):
            continue
        if float(value) != float(expected):
            problems.append(f"{source[key]} sets {key}={value}, but {setting_key} gives {expected}: write "
                            f"{key}: auto there (the trainer fills it from the settings) or change {setting_key}")
    return problems


def trainer_default_clipping(config_class) -> float:
    """The gradient clipping a TRL or transformers config class applies when a stage sets none."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(config_class) if f.name == "max_grad_norm")


def check_engine(values: EngineValues, section: str, env: Mapping[str, str] | None = None) -> None:
    """Refuse, before any data is prepared, a launch whose engine config disagrees with the settings of the stage
    whose settings live under ``section`` (``sft``, ``grpo``, ``memory.rl``)."""
    problems = engine_disagreements(values, section, env)
    if problems:
        raise ValueError(f"{section}: the launch's engine config disagrees with the settings:\n  "
                         + "\n  ".join(problems))


class MetricsCSV(TrainerCallback):
    """Appends every log event (loss, rewards, KL, step time...) to ``metrics.csv`` in the run folder.

    A resumed run (``resumed_at`` the checkpoint's step) keeps the rows up to that step and drops the
    later ones, which the interrupted run logged past its last checkpoint and will log again.
    """

    def __init__(self, folder: Path, stage: str, resumed_at: int | None = None):
        self.path = Path(folder) / METRICS_FILE
        self.stage = stage
        self.rows: list[dict] = []
        self.started = time.perf_counter()
        if resumed_at is not None and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resumed_at]
            self.rows = [{k: v for k, v in row.items() if v != ""} for row in kept]
            if self.rows:
                self.started -= float(self.rows[-1].get("wall_s", 0))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row = {"stage": self.stage, "step": state.global_step, "wall_s": round(time.perf_counter() - self.started, 3)}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".csv.partial")
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        partial.replace(self.path)


class StepProgress(ProgressCallback):
    """The trainer's progress bar with the newest loss and reward beside it, instead of a printed dictionary per
    logged step (transformers' own bar) or a table (its notebook bar): every logged value is in metrics.csv,
    the notebooks' curves and ``train.report_to``'s backend already."""

    SHOWN = ("loss", "reward")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            shown = {key: f"{logs[key]:.3g}" for key in self.SHOWN if isinstance(logs.get(key), (int, float))}
            if shown:
                self.training_bar.set_postfix(shown)


def show_progress_as_a_bar(trainer) -> None:
    """Give the trainer :class:`StepProgress` in place of the log printer it chose for itself (nothing printed
    when its bar is off: ``disable_tqdm``, ``progress=False``)."""
    from transformers.utils.notebook import NotebookProgressCallback

    for printer in (PrinterCallback, ProgressCallback, NotebookProgressCallback):
        trainer.remove_callback(printer)
    if not trainer.args.disable_tqdm:
        trainer.add_callback(StepProgress())


class NoFinalCheckpoint(TrainerCallback):
    """Skips the checkpoint the last step would save: train_and_save writes the final weights anyway and
    then removes every checkpoint, so on a CPU that save (optimizer state included) is time for nothing."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = False


RUN_ARTIFACTS = ("*.safetensors", "adapter_config.json", "config.json", "generation_config.json", METRICS_FILE,
                 RUN_FILE, "training_args.bin")


def clear_run_folder(out: Path) -> None:
    """Remove a previous run's weights, logs (TensorBoard's too) and checkpoints from ``out``, so a LoRA run never
    sits beside stale full weights, a fresh run never resumes an old one, and its curves stand alone."""
    for pattern in RUN_ARTIFACTS:
        for path in out.glob(pattern):
            path.unlink()
    for folder in checkpoints(out):
        shutil.rmtree(folder)
    shutil.rmtree(out / TENSORBOARD_FOLDER, ignore_errors=True)


def checkpoints(out: Path, complete: bool = False) -> list[Path]:
    """The run's ``checkpoint-<step>`` folders, oldest first; with ``complete`` only those whose save finished
    (the trainer writes ``trainer_state.json`` last, so a save cut short by a kill has none)."""
    found = [p for p in Path(out).glob(f"{CHECKPOINT_PREFIX}*")
             if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()
             and (not complete or (p / "trainer_state.json").is_file())]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


@dataclass(frozen=True)
class RunFolder:
    """A stage's output folder as the run found it: where it writes, its name in logs, and the checkpoint it
    goes on from (None: a fresh start). One object, so every stage resumes, logs and saves the same way."""

    out: Path
    stage: str
    checkpoint: Path | None = None

    @property
    def resumed_step(self) -> int | None:
        return int(self.checkpoint.name[len(CHECKPOINT_PREFIX):]) if self.checkpoint is not None else None

    def callbacks(self) -> list[TrainerCallback]:
        """The trainer callbacks every stage takes: metrics.csv (kept up to the resumed step) and no last-step save."""
        return [MetricsCSV(self.out, self.stage, self.resumed_step), NoFinalCheckpoint()]


def start_run_folder(out: str | Path, stage: str, restart: bool = False) -> RunFolder:
    """Get ``out`` ready for a run: resume from its newest complete checkpoint, or clear it for a fresh start.

    A run killed part-way leaves ``checkpoint-<step>`` folders (``save_every``); the same command
    run again goes on from the newest one. ``restart`` throws them away and starts over.
    """
    out = Path(out)
    found = checkpoints(out, complete=True)
    if restart or not found:
        clear_run_folder(out)
        return RunFolder(out, stage)
    folder = RunFolder(out, stage, found[-1])
    print(f"{stage}: resuming from {folder.checkpoint} (step {folder.resumed_step}); pass --restart to start over")
    return folder


def checkpoint_args(settings) -> dict[str, Any]:
    """Trainer arguments for resumable checkpoints every ``save_every`` steps, the newest ``keep_checkpoints`` kept."""
    if not settings.save_every:
        return {"save_strategy": "no"}  # the final weights are saved once, by train_and_save
    return {"save_strategy": "steps", "save_steps": settings.save_every,
            "save_total_limit": max(1, settings.keep_checkpoints)}


def train_and_save(trainer, folder: RunFolder, tokenizer, record: dict) -> dict:
    """Train (going on from the folder's checkpoint if it has one), then save weights (or the adapter) as
    safetensors, the tokenizer and run.json into the folder, and remove the checkpoints the finished run
    no longer needs."""
    out = folder.out
    show_progress_as_a_bar(trainer)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(folder.checkpoint) if folder.checkpoint else None)
    record = {"prompt_format": TRAINING_FORMAT, **record, "train_loss": result.training_loss,
              "train_seconds": round(time.perf_counter() - started, 2), "resumed_from_step": folder.resumed_step}
    trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))
        (out / RUN_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        for folder in checkpoints(out):
            shutil.rmtree(folder)
    return record


def read_metrics(folder: str | Path):
    """The run's ``metrics.csv`` as a DataFrame (what the notebooks plot)."""
    import pandas as pd

    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train this stage first (or point at its run folder)")
    return pd.read_csv(path)


def weight_change(before: str | Path, after: str | Path) -> dict:
    """How far training moved the weights: ``after`` against ``before`` (a run folder against its ``--init``).

    Compare a stage with the weights it started from, not with the base model: against the base, an
    RL run that did nothing would still look changed, by its SFT.
    """
    import torch

    first = load_causal_lm(before).state_dict()
    second = load_causal_lm(after).state_dict()
    if first.keys() != second.keys():
        raise ValueError(f"{before} and {after} hold different parameters; compare a run with its own --init")
    changed, squared, base, largest = 0, 0.0, 0.0, 0.0
    for name, tensor in first.items():
        delta = (second[name].float() - tensor.float())
        if torch.any(delta != 0):
            changed += 1
        squared += float(delta.pow(2).sum())
        base += float(tensor.float().pow(2).sum())
        largest = max(largest, float(delta.abs().max()) if delta.numel() else 0.0)
    return {"tensors": len(first), "tensors_changed": changed,
            "relative_change": (squared / base) ** 0.5 if base else 0.0,
            "max_abs_change": largest}


def weight_change_sentence(change: Mapping[str, float], stage: str, init: str) -> str:
    """:func:`weight_change`'s numbers as the sentence a notebook shows under a training run."""
    return (f"{stage} changed {change['tensors_changed']} of {change['tensors']} weight tensors against {init} "
            f"(relative change {change['relative_change']:.2e}, largest single change {change['max_abs_change']:.2e})")


def steps_with_signal(metrics) -> tuple[int, int]:
    """(steps that had a learning signal, logged steps) from an RL run's metrics: a step carries a signal when
    at least one prompt's rollouts scored differently. GRPO logs that as TRL's ``frac_reward_zero_std`` (below 1),
    memory RL as the mean spread within its groups (``reward_std`` above 0)."""
    if "frac_reward_zero_std" in metrics:
        logged = metrics["frac_reward_zero_std"].dropna()
        return int((logged < 1).sum()), len(logged)
    logged = metrics["reward_std"].dropna()
    return int((logged > 0).sum()), len(logged)


def learning_signal_sentence(signal: tuple[int, int], section: str) -> str:
    """:func:`steps_with_signal` as the sentence a notebook shows, with what to raise when no step had one
    (``section``: the stage's settings, ``grpo`` or ``memory.rl``)."""
    with_signal, logged = signal
    sentence = f"steps with a learning signal (rollouts of one prompt scoring differently): {with_signal} of {logged}"
    if logged and not with_signal:
        sentence += (f". No step had one, so RL had nothing to learn from; more rollouts per step "
                     f"({section}.batch_size, {section}.num_generations) make a spread likelier")
    return sentence
