"""``pmv2nb sft``, ``pmv2nb grpo`` and ``pmv2nb memory train``: the training stages, with flags as setting aliases.

Each named flag sets one key of the stage's section (``--max-steps`` is ``sft.max_steps`` for SFT,
``grpo.max_steps`` for GRPO, ``memory.rl.max_steps`` for memory RL); ``--set`` reaches every other one.
"""

from __future__ import annotations

import argparse
import json

from .common import add_profile_options, fail, resolve_profile, to

SECTIONS = {"sft": "sft", "grpo": "grpo", "memory": "memory.rl"}


def add_training_options(parser: argparse.ArgumentParser, example_out: str, section: str, rewards: bool) -> None:
    """Options every training stage takes; ``rewards`` adds the task mix and the judge."""
    add_profile_options(parser)
    parser.add_argument("--out", required=True, help=f"run folder, e.g. {example_out} (replaced if it exists, "
                                                     f"resumed if it holds checkpoints of an interrupted run)")
    parser.add_argument("--init", default=None, help="starting checkpoint: a run folder or hub id "
                                                     "(default: the profile's model)")
    parser.add_argument("--max-steps", type=int, default=None, help=f"{section}.max_steps")
    parser.add_argument("--rows", type=int, default=None, help=f"use only the first N train rows ({section}.rows)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help=f"per-device micro-batch size ({section}.micro_batch)")
    parser.add_argument("--save-every", type=int, default=None,
                        help=f"steps between resumable checkpoints ({section}.save_every); the same command run "
                             f"again into the same --out goes on from the newest one")
    parser.add_argument("--restart", action="store_true", help="throw away the checkpoints in --out and start over")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--lora", action="store_true", help=f"train a LoRA adapter ({section}.use_lora=true)")
    switch.add_argument("--full", action="store_true", help=f"full fine-tuning ({section}.use_lora=false)")
    if rewards:
        parser.add_argument("--mcq-fraction", type=float, default=None,
                            help=f"share of MCQ prompts, paper 0.8; 1.0 and 0.0 are the ablations "
                                 f"({section}.mcq_fraction)")
        parser.add_argument("--judge", default=None, help=f"judge spec for open-ended rewards ({section}.judge)")


def aliases(section: str) -> dict:
    return {"max_steps": to(f"{section}.max_steps"), "rows": to(f"{section}.rows"),
            "micro_batch": to(f"{section}.micro_batch"), "save_every": to(f"{section}.save_every"),
            "lora": lambda v, a: {f"{section}.use_lora": True},
            "full": lambda v, a: {f"{section}.use_lora": False}, "mcq_fraction": to(f"{section}.mcq_fraction"),
            "judge": to(f"{section}.judge"),
            "vllm_mode": lambda v, a: {"grpo.use_vllm": True, "grpo.vllm_mode": v},
            "vllm_server_url": to("grpo.vllm_server_url"),
            "show_query_in_updates": lambda v, a: {"memory.update_query": "query"}}


def add_parsers(commands) -> None:
    for stage, text in (("sft", "SFT cold start with TRL (writes weights or a LoRA adapter, metrics.csv, run.json)"),
                        ("grpo", "GRPO with MCQ and judge rewards (start it from the SFT run with --init)")):
        parser = commands.add_parser(stage, help=text)
        add_training_options(parser, f"runs/{stage}", SECTIONS[stage], rewards=stage == "grpo")
        if stage == "grpo":
            parser.add_argument("--vllm-mode", default=None, choices=("colocate", "server"),
                                help="generate with vLLM (GPU): in-process, or a `trl vllm-serve` server "
                                     "(grpo.use_vllm=true, grpo.vllm_mode)")
            parser.add_argument("--vllm-server-url", default=None,
                                help="with --vllm-mode server, e.g. http://host:8000 (grpo.vllm_server_url)")
        parser.set_defaults(func=train)


def add_memory_parser(memory_commands) -> None:
    parser = memory_commands.add_parser("train", help="GRPO for the memory agent (every turn shares the answer's "
                                                      "advantage)")
    add_training_options(parser, "runs/memory", SECTIONS["memory"], rewards=True)
    parser.add_argument("--show-query-in-updates", action="store_true", default=None,
                        help="every update also sees the query, not causal (memory.update_query=query)")
    parser.set_defaults(func=train)


def train(args: argparse.Namespace) -> int:
    """Run one stage, turning the errors a user can fix into one line on stderr."""
    from ..backends import BackendError
    from ..backends.vllm_offline import VLLMUnavailableError
    from ..data import DataError
    from ..models import GPURequiredError

    from ..train.sharding import allow_fsdp_on_cpu

    name = " ".join(filter(None, (args.command, getattr(args, "memory_command", None))))
    allow_fsdp_on_cpu()  # only with the rehearsal's switch in the environment
    try:
        profile = resolve_profile(args, aliases(SECTIONS[args.command]))
        if args.command == "sft":
            from ..train.sft import train_sft

            summary = train_sft(profile, args.out, args.init, restart=args.restart)
        elif args.command == "grpo":
            from ..train.grpo import train_grpo

            summary = train_grpo(profile, args.out, args.init, restart=args.restart)
        else:
            from ..train.memory_rl import train_memory

            summary = train_memory(profile, args.out, args.init, restart=args.restart)
    except (GPURequiredError, VLLMUnavailableError, BackendError, DataError, FileNotFoundError, ValueError) as err:
        return fail(name, err)
    print(json.dumps(summary, indent=2, default=str))
    return 0
