"""The ``pmv2nb`` command line: the same functions the notebooks call, for long or scripted runs.

    pmv2nb data check --source data/mini --split benchmark
    pmv2nb mini-data data/mini --seed 0          (or OUT --full-size: the real sizes, for scale work)
    pmv2nb notebooks [--profile tiny] [--only 01] [--set eval.mcq_rows=14]
    pmv2nb profile [NAME] [--keys]
    pmv2nb setup
    pmv2nb eval --split benchmark --size 32k --mode mcq --model baseline:bm25 [--judge SPEC] [--dry-run] [--budget USD]
    pmv2nb report results/eval/*.jsonl [--by pref_type who] [--format markdown|csv]
    pmv2nb sft --profile P --out runs/sft [--init CHECKPOINT] [--max-steps N] [--lora | --full]
    pmv2nb grpo --profile P --mcq-fraction 0.8 --init runs/sft --out runs/grpo [--judge SPEC] [--vllm-mode server]
    pmv2nb memory run --profile P --split benchmark --model hf:tiny [--rows N] [--show-query-in-updates] --out FILE
    pmv2nb memory train --profile P --init runs/sft --out runs/memory [--judge SPEC] [--lora | --full]
    pmv2nb plan --profile paper --gpus 8 --gpu-memory 80 [--gpu t4] [--stage grpo] [--throughput TOKENS_PER_S]

Every command that reads a profile also takes ``--config FILE.yaml`` and ``--set KEY=VALUE``; a
named flag is shorthand for one key. One module per command group: ``data``, ``evaluate``,
``train``, ``memory``, ``plan``, ``tools``. Training commands also run under
``accelerate launch --config_file configs/accelerate/<name>.yaml -m pmv2nb.cli``.
"""

from __future__ import annotations

import argparse
import sys

from ..config import ProfileError
from . import data, evaluate, memory, plan, tools, train
from .common import fail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmv2nb", description="PersonaMem-v2 notebook companion")
    commands = parser.add_subparsers(dest="command", required=True)
    data.add_parsers(commands)
    tools.add_parsers(commands)
    evaluate.add_parsers(commands)
    train.add_parsers(commands)
    memory.add_parsers(commands)
    plan.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ProfileError as err:  # an unknown profile or setting, or a value of the wrong type
        return fail(" ".join(filter(None, (args.command, getattr(args, "memory_command", None),
                                           getattr(args, "data_command", None)))), err, 2)


if __name__ == "__main__":
    sys.exit(main())
