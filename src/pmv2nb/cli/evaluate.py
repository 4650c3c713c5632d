"""``pmv2nb eval`` and ``pmv2nb report``: benchmark a model spec resumably, then tabulate result files.

Exit status of ``eval``: 0 when every row was written, 1 on an error that stops the run (bad key, prompt
too long, the results file held by another run), 3 on a ``--budget`` stop, 4 when some rows failed
after their retries (the others are written; running the command again retries only those).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..prompts import PROMPT_FORMATS
from .common import add_profile_options, fail, progress, resolve_profile, to
from .data import source_key

FAILED_ROWS_STATUS = 4


def add_run_options(parser: argparse.ArgumentParser, modes: tuple[str, ...], out_help: str) -> None:
    """Options every benchmark run takes; those that are settings say which key they set."""
    add_profile_options(parser)
    parser.add_argument("--source", default=None, help="local mirror or 'hub' (data.source; default: the profile's)")
    parser.add_argument("--split", default="benchmark", choices=("benchmark", "train", "val"))
    parser.add_argument("--modality", default=None, choices=("text", "multimodal"), help="data.modality")
    parser.add_argument("--size", default="32k", choices=("32k", "128k"))
    parser.add_argument("--mode", default="mcq", choices=modes)
    parser.add_argument("--judge", default=None, help="judge spec for open-ended mode (eval.judge)")
    parser.add_argument("--judge-calls", type=int, default=None, help="judge calls per answer (eval.judge_calls)")
    parser.add_argument("--rows", type=int, default=None,
                        help="first N rows with a history of this size (eval.mcq_rows and eval.open_rows; "
                             "`--set eval.mcq_rows=none` for all)")
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument("--cache", default=None, help="SQLite call cache (default results/cache/calls.sqlite)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="answer length (eval.max_new_tokens and eval.mcq_max_new_tokens)")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (eval.temperature)")
    parser.add_argument("--concurrency", type=int, default=None, help="parallel requests (eval.concurrency)")
    parser.add_argument("--format", dest="prompt_format", default=None, choices=PROMPT_FORMATS,
                        help="chat: the evaluation's A-D options and 'Final Answer:'; boxed: the training format, "
                             "(a)-(d) and \\boxed{x} (default: the format a trained run folder records, else chat)")


RUN_ALIASES = {"source": source_key, "modality": to("data.modality"), "judge": to("eval.judge"),
               "judge_calls": to("eval.judge_calls"), "rows": to("eval.mcq_rows", "eval.open_rows"),
               "max_tokens": to("eval.max_new_tokens", "eval.mcq_max_new_tokens"),
               "temperature": to("eval.temperature"), "concurrency": to("eval.concurrency"),
               "orders": to("eval.orders")}


def add_parsers(commands) -> None:
    evaluate = commands.add_parser("eval", help="benchmark a model spec (resumable; results as JSONL)")
    add_run_options(evaluate, modes=("mcq", "open", "both"), out_help="results JSONL (default results/eval/...)")
    evaluate.add_argument("--model", required=True,
                          help="openai:NAME[@URL], vllm:MODEL, hf:PATH, baseline:NAME; prefix nohistory: oracle: rag:")
    evaluate.add_argument("--orders", type=int, default=None,
                          help="option orders per row, for a position-bias check (eval.orders)")
    evaluate.add_argument("--dry-run", action="store_true", help="print calls, tokens and cost; call nothing")
    evaluate.add_argument("--budget", type=float, default=None, help="stop cleanly before spending more (USD)")
    evaluate.set_defaults(func=run)

    report = commands.add_parser("report", help="breakdown tables with 95%% bootstrap CIs from result files")
    report.add_argument("results", nargs="+")
    report.add_argument("--by", nargs="*", default=None, help="breakdowns (default all): overall pref_type who ...")
    report.add_argument("--format", default="markdown", choices=("markdown", "csv"))
    report.add_argument("--n-boot", type=int, default=2000)
    report.add_argument("--out", default=None)
    report.set_defaults(func=tabulate)


def run_settings(args: argparse.Namespace, mode: str, aliases: dict | None = None):
    """The profile (with every override) and one run's settings, built as the notebooks build them."""
    from dataclasses import replace

    from ..evaluate.suite import profile_settings

    profile = resolve_profile(args, aliases or RUN_ALIASES)
    settings = profile_settings(profile, mode, args.size, args.prompt_format)
    return profile, replace(settings, budget_usd=getattr(args, "budget", None))


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError
    from ..data import DataError, load_profile_split
    from ..evaluate import estimate, run_eval
    from ..evaluate.breakdown import breakdown, to_markdown
    from ..evaluate.results import ResultsBusyError

    modes = ("mcq", "open") if args.mode == "both" else (args.mode,)
    if args.out and len(modes) > 1:
        return fail("eval", "--out names one file; run --mode mcq and --mode open separately", 2)
    profile, _ = run_settings(args, modes[0])
    judge = profile.eval.judge
    if "open" in modes and not judge and not args.dry_run:
        return fail("eval", "open-ended mode needs --judge SPEC (or eval.judge in the profile); the paper uses three "
                            "calls of one judge model", 2)
    try:
        data = load_profile_split(profile, args.split)
    except DataError as err:
        return fail("eval", err)
    status, shown = 0, progress()  # with progress on, the run itself prints its stop and failure messages
    for mode in modes:
        _, settings = run_settings(args, mode)
        if args.dry_run:
            print(json.dumps(estimate(data, args.model, settings, judge), indent=2))
            continue
        try:
            result = run_eval(data, args.model, settings, judge=judge if mode == "open" else None, out=args.out,
                              cache=args.cache, progress=shown)
        except (BackendError, ResultsBusyError, ValueError, FileNotFoundError) as err:
            return fail("eval", err)
        print(f"{mode}: {len(result.results)} result rows in {result.path} ({result.new_calls} new model calls, "
              f"{result.new_judge_calls} new judge calls, ${result.spent_usd:.4f} spent)")
        if len(result.results):
            print(to_markdown(breakdown(result.results, "overall", n_boot=1000)))
        if result.stopped:
            if not shown:
                print(result.stopped, file=sys.stderr)
            status = 3
        if result.failed:
            if not shown:
                print(result.failure_summary(), file=sys.stderr)
            status = status or FAILED_ROWS_STATUS
    return status


def tabulate(args: argparse.Namespace) -> int:
    from ..evaluate import read_results, report_tables
    from ..evaluate.breakdown import to_markdown

    results = read_results(*args.results)
    tables = report_tables(results, args.by, n_boot=args.n_boot)
    if args.format == "csv":
        import pandas as pd

        text = pd.concat(tables.values(), ignore_index=True).to_csv(index=False)
    else:
        text = "\n\n".join(f"### {name}\n\n{to_markdown(table)}" for name, table in tables.items()) + "\n"
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(tables)} table(s) to {args.out}")
    else:
        print(text, end="")
    return 0
