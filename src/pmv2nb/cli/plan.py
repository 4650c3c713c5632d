"""``pmv2nb plan``: the preflight plan of the training stages, per GPU, before any GPU-hour is spent.

    pmv2nb plan --profile paper --gpus 8 --gpu-memory 80
    pmv2nb plan --profile small --gpu t4 [--stage grpo] [--throughput 3000]

Exits with status 1, naming the setting to change, when a stage does not fit.
"""

from __future__ import annotations

from .common import add_profile_options, fail, resolve_profile


def add_parsers(commands) -> None:
    from ..train.plan import CARDS, STAGES

    parser = commands.add_parser("plan", help="per-GPU memory by part, tokens and GPU-hours of each training stage; "
                                              "non-zero exit when a stage does not fit")
    add_profile_options(parser)
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (processes) the stages run on (default 1)")
    parser.add_argument("--gpu", default=None, choices=tuple(CARDS),
                        help="the card: its memory, compute capability (hence precision), peak and bandwidth "
                             "(default h100)")
    parser.add_argument("--gpu-memory", type=float, default=None, metavar="GiB",
                        help="memory per GPU in GiB (default: the card's)")
    parser.add_argument("--stage", choices=STAGES, default=None, help="plan one stage (default: all three)")
    parser.add_argument("--throughput", type=float, default=None, metavar="TOKENS_PER_S",
                        help="measured training tokens per second per GPU (default: a FLOPs model, see --mfu)")
    parser.add_argument("--mfu", type=float, default=None,
                        help="share of the card's dense 16-bit peak the FLOPs model assumes (default 0.40)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..train.plan import DEFAULT_UTILIZATION, STAGES, describe_timing, format_plan, hardware_for, plan_stage

    profile = resolve_profile(args)
    try:
        hardware = hardware_for(args.gpus, args.gpu, args.gpu_memory)
        utilization = args.mfu or DEFAULT_UTILIZATION
        plans = [plan_stage(profile, stage, hardware, utilization=utilization, throughput=args.throughput)
                 for stage in ((args.stage,) if args.stage else STAGES)]
    except ValueError as err:
        return fail("plan", err)
    print(f"profile {profile.name}: per-GPU plan (GiB = 2^30 bytes)")
    for plan in plans:
        print()
        print(format_plan(plan))
    print()
    print(describe_timing(hardware, utilization, args.throughput))
    refused = [problem for plan in plans for problem in plan.problems]
    return fail("plan", "; ".join(refused)) if refused else 0
