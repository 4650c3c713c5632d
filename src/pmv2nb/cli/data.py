"""``pmv2nb data check`` and ``pmv2nb mini-data``: validate a split, or generate the mini (or a full-size) dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_profile_options, fail, progress, resolve_profile, to


def add_parsers(commands) -> None:
    data = commands.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a split and print a JSON summary")
    add_profile_options(check)
    check.add_argument("--source", default=None, help="a local mirror of the Hub repo, or 'hub' (data.source; "
                                                      "default: the profile's)")
    check.add_argument("--split", default="benchmark", choices=("benchmark", "train", "val"))
    check.add_argument("--modality", default=None, choices=("text", "multimodal"), help="data.modality")
    check.add_argument("--size", default="both", choices=("32k", "128k", "both"))
    check.add_argument("--limit", type=int, default=None, help="only the first N rows (data.row_limit)")
    check.add_argument("--cache-dir", default=None, help="download cache for the Hub source (data.cache_dir)")
    check.add_argument("--no-histories", action="store_true", help="check the table only, not the history files")
    check.set_defaults(func=check_split)

    mini = commands.add_parser("mini-data", help="(re)generate the embedded mini dataset, or a full-size one")
    mini.add_argument("out_dir")
    mini.add_argument("--seed", type=int, default=0)
    mini.add_argument("--full-size", action="store_true",
                      help="the real split sizes and history lengths, text only (about 2 GB; for scale measurements)")
    mini.set_defaults(func=write_mini)


def source_key(value: str, args: argparse.Namespace) -> dict[str, str]:
    """``--source``: 'hub', or a folder taken relative to where the command runs."""
    return {"data.source": value if value == "hub" else str(Path(value).expanduser().resolve())}


ALIASES = {"source": source_key, "modality": to("data.modality"), "limit": to("data.row_limit"),
           "cache_dir": to("data.cache_dir")}


def check_split(args: argparse.Namespace) -> int:
    from ..data import DataError, load_profile_split
    from ..data.stats import summarize

    try:
        data = load_profile_split(resolve_profile(args, ALIASES), args.split)
        sizes = ("32k", "128k") if args.size == "both" else (args.size,)
        report = summarize(data, sizes, histories=not args.no_histories, progress=progress())
    except DataError as err:
        return fail("data check", err)
    print(json.dumps(report, indent=2, default=str))
    return 0


def write_mini(args: argparse.Namespace) -> int:
    if args.full_size:
        from ..data.full_size import write_full_size_dataset

        out = write_full_size_dataset(args.out_dir, seed=args.seed, progress=progress())
        print(f"wrote the full-size synthetic dataset (seed {args.seed}) to {out}")
        return 0
    from ..data.mini import write_mini_dataset

    out = write_mini_dataset(args.out_dir, seed=args.seed)
    print(f"wrote the mini dataset (seed {args.seed}) to {out}")
    return 0
