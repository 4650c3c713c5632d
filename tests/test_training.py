"""Tiny SFT and GRPO runs on the CPU with the real TRL trainers: weights really change, losses are finite,
and every run folder is usable as the next stage's --init and as an hf:DIR model spec."""

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from pmv2nb import config
from pmv2nb.config import with_overrides
from pmv2nb.backends import ChatRequest, Sampling, make_backend
from pmv2nb.models import GPURequiredError, tiny_model_dir
from pmv2nb.train.common import TENSORBOARD_FOLDER, read_metrics
from pmv2nb.train.grpo import train_grpo
from pmv2nb.train.sft import train_sft

pytestmark = pytest.mark.slow  # runs TRL's trainers; `make test-fast` leaves it out

TINY = config.resolve("tiny")


def _changed(before: dict, after: dict) -> int:
    assert set(before) == set(after)
    assert all(torch.isfinite(t).all() for t in after.values())
    return sum(not torch.equal(before[name], after[name]) for name in before)


@pytest.fixture(scope="module")
def base_weights():
    return load_file(tiny_model_dir() / "model.safetensors")


def tensorboard_scalars(out) -> dict[str, dict[int, float]]:
    """Every scalar curve in a run folder's TensorBoard event files, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [log_dir] = {path.parent for path in (out / TENSORBOARD_FOLDER).rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def sft_full(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sft-full"
    profile = with_overrides(TINY, {"sft.max_steps": 2, "sft.rows": 4, "train.report_to": "tensorboard"})
    return out, train_sft(profile, out, progress=False)


@pytest.fixture(scope="module")
def sft_lora(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sft-lora"
    return out, train_sft(with_overrides(TINY, {"sft.max_steps": 2, "sft.rows": 4, "sft.use_lora": True}), out,
                          progress=False)


def test_full_sft_updates_every_layer_and_logs_a_finite_loss(sft_full, base_weights):
    out, summary = sft_full
    after = load_file(out / "model.safetensors")
    assert _changed(base_weights, after) == len(base_weights)
    metrics = read_metrics(out)
    losses = metrics["loss"].dropna()
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert metrics["eval_loss"].notna().any()  # validation loss measured on the val split
    assert summary["examples"] == 8 and math.isfinite(summary["train_loss"])
    assert (out / "run.json").is_file() and (out / "tokenizer.json").is_file()


def test_lora_sft_saves_a_trained_adapter_only(sft_lora):
    out, summary = sft_lora
    assert summary["lora"] and not (out / "model.safetensors").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero; training moved it


@pytest.mark.parametrize("run", ["sft_full", "sft_lora"])
def test_run_folders_load_as_hf_specs_and_generate(run, request):
    out, _ = request.getfixturevalue(run)
    backend = make_backend(f"hf:{out}")
    [reply] = backend.generate([ChatRequest([{"role": "user", "content": "Hello"}], Sampling(max_tokens=8, seed=1))])
    assert reply.tokens_out > 0


def test_grpo_from_a_lora_sft_adapter_updates_full_weights(sft_lora, tmp_path):
    from pmv2nb.train.common import weight_change

    init, _ = sft_lora
    out = tmp_path / "grpo-full"
    # open-ended only: the proxy judge's continuous scores give non-zero advantages even for a random policy
    profile = with_overrides(TINY, {"grpo.mcq_fraction": 0.0, "grpo.max_steps": 1, "grpo.rows": 4})
    summary = train_grpo(profile, out, str(init), cache=tmp_path / "calls.sqlite", progress=False)
    # against the merged SFT init it started from: against the base, the SFT adapter alone would pass
    moved = weight_change(init, out)
    assert moved["tensors_changed"] > 0 and moved["relative_change"] > 0
    metrics = read_metrics(out)
    step = metrics[metrics["step"] == 1].iloc[0]
    assert math.isfinite(step["loss"]) and step["grad_norm"] > 0
    # every prompt was open-ended, so the open reward is the whole reward, and its spread is the learning signal
    assert step["reward"] == pytest.approx(step["rewards/open_reward/mean"]) and step["reward_std"] > 0
    assert summary["prompts"] == 4 and summary["mcq_prompts"] == 0


def test_grpo_lora_logs_separate_reward_curves_per_task(sft_full, tmp_path):
    init, _ = sft_full
    out = tmp_path / "grpo-lora"
    profile = with_overrides(TINY, {"grpo.mcq_fraction": 0.5, "grpo.max_steps": 2, "grpo.rows": 4,
                                    "grpo.use_lora": True, "train.report_to": "tensorboard"})
    train_grpo(profile, out, str(init), cache=tmp_path / "calls.sqlite", progress=False)
    adapter = load_file(out / "adapter_model.safetensors")
    assert all(torch.isfinite(t).all() for t in adapter.values())
    metrics = read_metrics(out)
    logged = metrics[metrics["loss"].notna()]
    assert len(logged) == 2
    assert {"rewards/mcq_reward/mean", "rewards/open_reward/mean"} <= set(metrics.columns)
    assert logged[["rewards/mcq_reward/mean", "rewards/open_reward/mean"]].notna().any().all()
    curves = tensorboard_scalars(out)  # the same curves, live in TensorBoard
    assert curves["train/loss"] == pytest.approx(dict(zip(logged["step"], logged["loss"])))
    assert {"train/rewards/mcq_reward/mean", "train/rewards/open_reward/mean"} <= set(curves)


def test_open_ended_rows_without_a_judge_are_refused_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match="--judge"):
        train_grpo(with_overrides(TINY, {"grpo.judge": "", "grpo.mcq_fraction": 0.5}), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_gpu_profiles_fail_early_with_what_to_do(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    for stage in (train_sft, train_grpo):
        with pytest.raises(GPURequiredError, match="PMV2NB_PROFILE=tiny"):
            stage(config.resolve("paper"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_later_stages_find_the_sft_run_or_say_where_it_comes_from(sft_full, tmp_path):
    from pmv2nb.train.sft import sft_run_for

    assert sft_run_for(TINY, sft_full[0]) == sft_full[0]  # an existing run is used as it is, not retrained
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        sft_run_for(config.resolve("paper"), tmp_path / "missing")


def test_sft_reports_its_losses_to_tensorboard_event_files(sft_full):
    out, _ = sft_full
    curves = tensorboard_scalars(out)
    logged = read_metrics(out).dropna(subset=["loss"])
    assert curves["train/loss"] == pytest.approx(dict(zip(logged["step"], logged["loss"])))
    assert "eval/loss" in curves


@pytest.mark.parametrize("backend", ["trackio", "wandb"])
def test_a_missing_report_backend_stops_every_stage_before_any_work_naming_what_to_install(backend, tmp_path):
    import importlib.util

    from pmv2nb.train.memory_rl import train_memory

    if importlib.util.find_spec(backend):
        pytest.skip(f"{backend} is installed here")
    profile = with_overrides(TINY, {"train.report_to": backend})
    for stage in (train_sft, train_grpo, train_memory):
        with pytest.raises(ModuleNotFoundError, match=f"pip install {backend}"):
            stage(profile, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_metrics_csv_is_readable_without_the_trainer(sft_full):
    out, _ = sft_full
    frame = pd.read_csv(out / "metrics.csv")
    assert {"stage", "step", "loss", "learning_rate"} <= set(frame.columns) and (frame["stage"] == "sft").all()


def test_vllm_generation_without_a_gpu_fails_before_loading_anything(tmp_path):
    from pmv2nb.backends.vllm_offline import VLLMUnavailableError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(VLLMUnavailableError, match=r"NVIDIA GPU.*tiny profile"):
        train_grpo(with_overrides(TINY, {"grpo.use_vllm": True}), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_init_must_exist_locally_unless_it_can_be_a_hub_id(tmp_path, monkeypatch):
    from pmv2nb.train.common import starting_point

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert starting_point(TINY, None) == str(tiny_model_dir())
    for missing in ("runs/sft-tiny", "./sft", "/nowhere/at/all"):
        with pytest.raises(FileNotFoundError, match="train the previous stage first"):
            starting_point(config.resolve("paper"), missing)
    assert starting_point(config.resolve("paper"), "Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    with pytest.raises(FileNotFoundError):  # offline profiles cannot reach a hub at all
        starting_point(TINY, "Qwen/Qwen3-0.6B")
    (tmp_path / "runs" / "sft-tiny").mkdir()
    assert starting_point(config.resolve("paper"), "runs/sft-tiny") == "runs/sft-tiny"


def test_a_vllm_server_url_without_server_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--vllm-mode server"):
        train_grpo(with_overrides(TINY, {"grpo.vllm_server_url": "http://127.0.0.1:8000"}), tmp_path / "x",
                   progress=False)



def test_training_curves_draw_only_logged_metrics_with_gaps_skipped():
    from pmv2nb.plots import plot_training_curves

    metrics = pd.DataFrame({"step": [1, 1, 2, 3], "loss": [2.0, None, 1.5, 1.0], "eval_loss": [None, 2.2, None, None],
                            "never": [None] * 4})
    fig = plot_training_curves(metrics, {"loss": "train", "eval_loss": "val", "never": "x", "absent": "y"}, "t", "y")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"train", "val"}
    assert list(lines["train"].get_xdata()) == [1, 2, 3] and list(lines["val"].get_ydata()) == [2.2]


def _kill_after_first_checkpoint(command: list[str], out, timeout: float = 240.0) -> None:
    """Start a training command, SIGKILL it once its first checkpoint is complete, and wait for it to die."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "pmv2nb.cli", *command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not list(out.glob("checkpoint-*/trainer_state.json")):
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_a_killed_sft_run_resumes_from_its_checkpoint(tmp_path, capsys):
    from pmv2nb.cli import main
    from pmv2nb.models import load_causal_lm

    out = tmp_path / "sft"
    command = ["sft", "--profile", "tiny", "--out", str(out), "--max-steps", "2", "--rows", "2", "--save-every", "1",
               "--set", "sft.eval_every=0"]
    _kill_after_first_checkpoint(command, out)
    assert not (out / "run.json").exists()
    capsys.readouterr()
    assert main(command) == 0
    shown = capsys.readouterr()
    assert "resuming from" in shown.out
    # progress as a bar with the newest loss beside it, not a printed log dictionary per step
    assert "2/2" in shown.err and "loss=" in shown.err and "{'loss'" not in shown.out + shown.err
    record = pd.read_json(out / "run.json", typ="series")
    assert record["resumed_from_step"] == 1
    metrics = read_metrics(out)
    assert metrics.loc[metrics["loss"].notna(), "step"].tolist() == [1, 2]  # each step once
    assert "eval_loss" not in metrics  # sft.eval_every 0: no held-out loss
    assert not list(out.glob("checkpoint-*"))  # a finished run keeps only its final weights
    load_causal_lm(out)


def test_an_interrupted_memory_rl_run_resumes_and_restart_starts_over(tmp_path, capsys):
    from pmv2nb.train.memory_rl import build_memory_trainer, train_memory

    out = tmp_path / "memory"
    profile = with_overrides(TINY, {"memory.rl.save_every": 1, "memory.rl.batch_size": 1, "memory.rl.rows": 2,
                                    "memory.max_chunks": 2, "train.report_to": "tensorboard"})
    class StopAfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = True

    # stands in for a run that stopped after its first checkpoint: a checkpoint and no run.json
    first, _, _ = build_memory_trainer(with_overrides(profile, {"memory.rl.max_steps": 2}), out, progress=False)
    first.add_callback(StopAfterFirstStep())
    first.train()
    assert (out / "checkpoint-1" / "trainer_state.json").is_file() and not (out / "run.json").exists()
    record = train_memory(with_overrides(profile, {"memory.rl.max_steps": 2}), out, progress=False)
    shown = capsys.readouterr()
    assert "resuming from" in shown.out and record["resumed_from_step"] == 1
    assert "'loss'" not in shown.out + shown.err  # without a bar, nothing per step is printed
    metrics = read_metrics(out)
    assert metrics.loc[metrics["loss"].notna(), "step"].tolist() == [1, 2]
    assert not list(out.glob("checkpoint-*"))
    first.train()  # leaves checkpoint-1 again
    again = train_memory(with_overrides(profile, {"memory.rl.max_steps": 1}), out, progress=False, restart=True)
    assert again["resumed_from_step"] is None and read_metrics(out)["step"].max() == 1
    # one TensorBoard log, the fresh run's: the interrupted run's curves went with its checkpoints
    assert set(tensorboard_scalars(out)["train/loss"]) == {1}
    assert not list(out.glob("checkpoint-*"))  # the last step saves no checkpoint: the final weights are saved


def test_a_step_has_a_learning_signal_when_one_prompt_s_rollouts_scored_differently():
    import pandas as pd

    from pmv2nb.train.common import learning_signal_sentence, steps_with_signal

    grpo = pd.DataFrame({"step": [1, 2, 3, 3], "frac_reward_zero_std": [1.0, 0.5, 0.0, None],
                         "reward_std": [0.0, 0.2, 0.3, None]})
    assert steps_with_signal(grpo) == (2, 3)  # TRL's share of prompts without a spread is what counts
    memory = pd.DataFrame({"step": [1, 1, 2], "reward_std": [0.0, None, 0.35]})  # memory RL logs no such share
    assert steps_with_signal(memory) == (1, 2)
    assert learning_signal_sentence((1, 2), "memory.rl").endswith("1 of 2")
    flat = learning_signal_sentence(steps_with_signal(memory.iloc[:2]), "memory.rl")
    assert "0 of 1" in flat and "memory.rl.batch_size" in flat
