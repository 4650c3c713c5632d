"""``pmv2nb memory run`` and ``pmv2nb memory train``: the chunked memory agent, evaluated or trained."""

from __future__ import annotations

import argparse
import sys

from .common import fail, progress, to
from .evaluate import FAILED_ROWS_STATUS, RUN_ALIASES, add_run_options, run_settings
from .train import add_memory_parser


def add_parsers(commands) -> None:
    memory = commands.add_parser("memory", help="the chunked memory agent").add_subparsers(
        dest="memory_command", required=True)
    parser = memory.add_parser("run", help="build notes chunk by chunk, answer from them (resumable)")
    add_run_options(parser, modes=("mcq", "open"), out_help="results JSONL (trajectories go beside it)")
    parser.add_argument("--model", default=None,
                        help="backend spec (default: the profile's model: hf:<built-in model> offline, "
                             "or vllm:<model> on a GPU)")
    parser.add_argument("--show-query-in-updates", action="store_true", default=None,
                        help="every update also sees the query, not causal (memory.update_query=query; "
                             "the authors' code shows the options too: --set memory.update_query=query_options)")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="history tokens per update "
                                                                       "(memory.chunk_tokens)")
    parser.add_argument("--max-chunks", type=int, default=None, help="updates per history (memory.max_chunks)")
    parser.add_argument("--memory-tokens", type=int, default=None,
                        help="cap on each rewrite, paper 2048, the authors' code 1024 (memory.memory_tokens)")
    parser.add_argument("--users-per-batch", type=int, default=None,
                        help="histories whose updates are sent together at each step (memory.users_per_batch)")
    parser.set_defaults(func=run)
    add_memory_parser(memory)


MEMORY_ALIASES = {"show_query_in_updates": lambda v, a: {"memory.update_query": "query"},
                  "chunk_tokens": to("memory.chunk_tokens"), "max_chunks": to("memory.max_chunks"),
                  "memory_tokens": to("memory.memory_tokens"), "users_per_batch": to("memory.users_per_batch")}


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError
    from ..backends.vllm_offline import VLLMUnavailableError
    from ..data import DataError, load_profile_split
    from ..evaluate.breakdown import breakdown, to_markdown
    from ..evaluate.results import ResultsBusyError
    from ..memory import run_memory, token_accounting
    from ..models import default_model_spec

    profile, settings = run_settings(args, args.mode, {**RUN_ALIASES, **MEMORY_ALIASES})
    judge = profile.eval.judge
    if args.mode == "open" and not judge:
        return fail("memory run", "open-ended mode needs --judge SPEC (or eval.judge in the profile)", 2)
    model = args.model or default_model_spec(profile)
    shown = progress()  # with progress on, the run itself prints its failure summary
    try:
        data = load_profile_split(profile, args.split)
        result = run_memory(data, model, settings, profile.memory, judge=judge if args.mode == "open" else None,
                            out=args.out, cache=args.cache, progress=shown)
    except (BackendError, DataError, ResultsBusyError, ValueError, VLLMUnavailableError, FileNotFoundError) as err:
        return fail("memory run", err)
    print(f"{len(result.results)} result rows in {result.path}, trajectories beside it "
          f"({result.new_calls} new model calls, {result.new_update_calls} of them memory updates)")
    if len(result.results):
        print(to_markdown(breakdown(result.results, "overall", n_boot=1000)))
        print(to_markdown(token_accounting(result.results).round(2)))
    if result.failed:
        if not shown:
            print(result.failure_summary(), file=sys.stderr)
        return FAILED_ROWS_STATUS
    return 0
