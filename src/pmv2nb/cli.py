"""The ``pmv2nb`` command line: the same functions the notebooks call, for long or scripted runs.

    pmv2nb data check --source data/mini --split benchmark
    pmv2nb mini-data data/mini --seed 0
    pmv2nb notebooks [--profile tiny] [--only 01]
    pmv2nb profile [NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import config


def _data_check(args: argparse.Namespace) -> int:
    from .data import DataError, load_split
    from .data.stats import summarize

    try:
        data = load_split(args.source, args.split, args.modality, args.limit, args.cache_dir)
        sizes = ("32k", "128k") if args.size == "both" else (args.size,)
        report = summarize(data, sizes, histories=not args.no_histories, progress=sys.stderr.isatty())
    except DataError as err:
        print(f"pmv2nb data check: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str))
    return 0


def _mini_data(args: argparse.Namespace) -> int:
    from .data.mini import write_mini_dataset

    out = write_mini_dataset(args.out_dir, seed=args.seed)
    print(f"wrote the mini dataset (seed {args.seed}) to {out}")
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    from .notebooks import run_all

    timings = run_all(args.profile, args.out, args.only)
    total = sum(seconds for _, seconds in timings)
    for name, seconds in timings:
        print(f"{name:40s} {seconds:7.1f} s")
    print(f"{'total':40s} {total:7.1f} s")
    return 0


def _profile(args: argparse.Namespace) -> int:
    print(json.dumps(dataclasses.asdict(config.resolve(args.name)), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmv2nb", description="PersonaMem-v2 notebook companion")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a split and print a JSON summary")
    check.add_argument("--source", default="data/mini", help="a local mirror of the Hub repo, or 'hub'")
    check.add_argument("--split", default="benchmark", choices=("benchmark", "train", "val"))
    check.add_argument("--modality", default="text", choices=("text", "multimodal"))
    check.add_argument("--size", default="both", choices=("32k", "128k", "both"))
    check.add_argument("--limit", type=int, default=None, help="only the first N rows")
    check.add_argument("--cache-dir", default=None, help="download cache for the Hub source")
    check.add_argument("--no-histories", action="store_true", help="check the table only, not the history files")
    check.set_defaults(func=_data_check)

    mini = commands.add_parser("mini-data", help="(re)generate the embedded mini dataset")
    mini.add_argument("out_dir")
    mini.add_argument("--seed", type=int, default=0)
    mini.set_defaults(func=_mini_data)

    notebooks = commands.add_parser("notebooks", help="execute the numbered notebooks headless")
    notebooks.add_argument("--profile", default="tiny", choices=tuple(config.PROFILES))
    notebooks.add_argument("--out", default=None, help="folder for executed copies (default build/notebooks)")
    notebooks.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 01 03")
    notebooks.set_defaults(func=_notebooks)

    profile = commands.add_parser("profile", help="print a profile's settings")
    profile.add_argument("name", nargs="?", default=None)
    profile.set_defaults(func=_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
