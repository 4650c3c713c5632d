"""Every committed accelerate/DeepSpeed config parses with accelerate's own loader, and every launch
command written in it names a real pmv2nb entry point whose batch arithmetic fits that many processes."""

import shlex
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from pmv2nb.cli import build_parser
from pmv2nb.cli.common import resolve_profile
from pmv2nb.cli.train import SECTIONS, aliases
from pmv2nb.config import repo_root
from pmv2nb.train.common import accumulation
from pmv2nb.train.grpo import completions_per_step, micro_batch_for

CONFIGS = sorted((repo_root() / "configs" / "accelerate").glob("*.yaml"))


def launch_lines(path: Path) -> list[str]:
    return [line.split("launch:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# launch:")]


def test_there_are_single_multi_gpu_and_zero3_configs():
    kinds = {load_config_from_file(str(p)).distributed_type.value for p in CONFIGS}
    assert {"NO", "MULTI_GPU", "DEEPSPEED"} <= kinds


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_its_launch_commands_are_real(path, monkeypatch):
    cluster = load_config_from_file(str(path))
    if cluster.distributed_type.value == "DEEPSPEED":
        assert cluster.deepspeed_config["zero_stage"] == 3
    lines = launch_lines(path)
    assert lines, f"{path.name} shows no '# launch:' command"
    for line in lines:
        words = shlex.split(line)
        words = [w for w in words if "=" not in w or w.startswith("--")]  # drop VAR=value prefixes
        assert words[:2] == ["accelerate", "launch"]
        assert words[words.index("--config_file") + 1] == f"configs/accelerate/{path.name}"
        module_at = words.index("-m")
        assert words[module_at + 1] == "pmv2nb.cli"
        args = build_parser().parse_args(words[module_at + 2:])  # exits on an unknown command or flag
        assert args.command in ("sft", "grpo", "memory")
        # the profile's batch must split evenly over this config's processes
        section = SECTIONS[args.command]
        profile = resolve_profile(args, aliases(section))  # the flags reach the profile as the command's do
        monkeypatch.setenv("WORLD_SIZE", str(cluster.num_processes))
        if args.command == "sft":
            assert accumulation(profile.sft.batch_size, profile.sft.micro_batch or 1) >= 1
        elif args.command == "memory":
            assert args.memory_command == "train"
            assert accumulation(profile.memory.rl.batch_size, profile.memory.rl.micro_batch or 1) >= 1
        else:
            micro = micro_batch_for(profile.grpo)
            assert accumulation(completions_per_step(profile.grpo), micro) >= 1


def test_batch_arithmetic_refuses_an_uneven_split(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "7")
    with pytest.raises(ValueError, match="7 process"):
        accumulation(256, 8)
