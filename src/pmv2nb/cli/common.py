"""What every command shares: the profile, its overrides (``--set``, ``--config``), and named flags as aliases.

A named flag such as ``--max-steps 5`` is shorthand for one ``--set`` key (``sft.max_steps=5``), so
the command line, a YAML config file and a notebook's ``SETTINGS`` all reach the profile through
:func:`pmv2nb.config.resolve`, and nothing downstream takes a setting from anywhere else.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from .. import config


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """``--profile``, ``--config`` and ``--set``: the one way every command changes a setting."""
    parser.add_argument("--profile", default=None,
                        help=f"{' | '.join(config.PROFILES)} (default: $PMV2NB_PROFILE, else {config.DEFAULT_PROFILE})")
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="a YAML file of setting overrides, nested or dotted (a 'profile' key picks the profile)")
    parser.add_argument("--protocol", default=None, choices=("paper", "official"),
                        help="'paper' (the paper's text) or 'official' (the authors' code): the switches in "
                             "docs/protocol.md (default: the profile's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. eval.concurrency=4 (repeatable; `pmv2nb profile --keys` "
                             "lists every key with its help)")


# dest of a named flag -> the setting keys it sets (a function of the flag's value and the parsed args)
Aliases = dict[str, Callable[[Any, argparse.Namespace], dict[str, Any]]]


def to(*keys: str) -> Callable[[Any, argparse.Namespace], dict[str, Any]]:
    """An alias whose value goes to each of ``keys`` unchanged."""
    return lambda value, args: {key: value for key in keys}


def resolve_profile(args: argparse.Namespace, aliases: Aliases | None = None) -> config.Profile:
    """The profile with the config file, then the named flags that were given, then ``--set``, applied."""
    overrides: dict[str, Any] = {}
    if getattr(args, "protocol", None):
        overrides["protocol"] = args.protocol
    for dest, keys_for in (aliases or {}).items():
        value = getattr(args, dest, None)
        if value is not None and value is not False:
            overrides.update(keys_for(value, args))
    overrides.update(config.parse_assignments(getattr(args, "overrides", [])))
    return config.resolve(getattr(args, "profile", None), overrides, getattr(args, "config", None))


def fail(command: str, err: Exception | str, status: int = 1) -> int:
    """One line on stderr naming the command, and the exit status."""
    print(f"pmv2nb {command}: {err}", file=sys.stderr)
    return status


def progress() -> bool:
    return sys.stderr.isatty()
