"""Measure what each protocol does to one profile's numbers: the same rows, every stage, both protocols.

For each protocol (``paper`` and ``official``) this trains SFT from the profile's model and GRPO from
that SFT run, then asks the base model, the SFT run, the GRPO run and the memory agent (on the base
model) the same multiple-choice rows. It prints one table: accuracy, the share of replies without a
readable letter, the share whose letter came from the nearest-option fallback, and GRPO's mean MCQ
and open-ended rewards at each training step (also drawn, one panel per protocol, into the scratch folder
as ``protocol_grpo_rewards.png`` and ``.pdf``). Runs and results go to a scratch folder (default
``runs/protocol-bench``).

    python benchmarks/protocol_accuracy.py [--profile laptop] [--protocols paper,official] [--out DIR]
        [--stages base,sft,grpo,memory]

On the 2-core CPU machines the laptop profile takes about ten minutes per protocol, plus the official
memory agent: it builds one trajectory per question (``memory.update_query=query_options``), 25 minutes
measured with other jobs sharing the CPU. ``--stages`` measures some stages only; GRPO starts from the SFT
run already in ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from pmv2nb.config import repo_root, resolve
from pmv2nb.data.loader import load_profile_split
from pmv2nb.evaluate import run_eval
from pmv2nb.evaluate.breakdown import to_markdown
from pmv2nb.evaluate.suite import profile_settings
from pmv2nb.memory.run import run_profile_memory
from pmv2nb.models import default_model_spec
from pmv2nb.plots import metric_curves, plot_training_runs, save_figure
from pmv2nb.train.grpo import train_grpo
from pmv2nb.train.sft import train_sft


REWARD_CURVES = {"rewards/mcq_reward/mean": "MCQ reward", "rewards/open_reward/mean": "open-ended reward"}


def reward_curves(run: Path, protocol: str) -> pd.DataFrame:
    """GRPO's logged mean rewards per step (MCQ and open-ended), as ``plots.metric_curves`` frames them."""
    return metric_curves(pd.read_csv(run / "metrics.csv"), REWARD_CURVES, protocol)


def curve_text(curves: pd.DataFrame, metric: str) -> str:
    """One reward's values, step by step ("-" for a step without that kind of prompt)."""
    line = curves[curves["metric"] == metric]
    return " ".join(f"{value:.2f}" for value in line["value"]) or "-"


def scores(results: pd.DataFrame) -> dict:
    fallback = results.get("letter_by_embedding", pd.Series(False, index=results.index)).fillna(False).astype(bool)
    return {"rows": len(results), "accuracy": results["correct"].mean(), "no_letter": 1 - results["valid"].mean(),
            "by_embedding": fallback.mean(), "format": ",".join(sorted(set(results["prompt_format"])))}


STAGES = ("base", "sft", "grpo", "memory")


def measure(profile_name: str, protocol: str, out: Path, all_curves: list[pd.DataFrame],
            stages: tuple[str, ...] = STAGES) -> list[dict]:
    profile = resolve(profile_name, {"protocol": protocol})
    folder = out / protocol
    cache, results_dir = folder / "calls.sqlite", folder / "results"
    data = load_profile_split(profile, "benchmark")
    settings = profile_settings(profile, "mcq", "32k")
    rows = []

    def ask(stage: str, spec: str, extra: dict | None = None) -> None:
        started = time.perf_counter()
        run = run_eval(data, spec, settings, out=results_dir / f"{stage}.jsonl", cache=cache, progress=False)
        rows.append({"protocol": protocol, "stage": stage, **scores(run.results), **(extra or {}),
                     "seconds": round(time.perf_counter() - started)})

    base = default_model_spec(profile)
    if "base" in stages:
        ask("base", base)
    if "sft" in stages:
        started = time.perf_counter()
        train_sft(profile, folder / "sft", progress=False)
        ask("sft", f"hf:{folder / 'sft'}", {"train_s": round(time.perf_counter() - started)})
    if "grpo" in stages:
        if not (folder / "sft").is_dir():
            raise SystemExit(f"GRPO starts from the SFT run, and {folder / 'sft'} does not exist: add sft to --stages")
        started = time.perf_counter()
        train_grpo(profile, folder / "grpo", init=str(folder / "sft"), cache=cache, progress=False)
        grpo_seconds = round(time.perf_counter() - started)
        curves = reward_curves(folder / "grpo", protocol)
        ask("grpo", f"hf:{folder / 'grpo'}", {"train_s": grpo_seconds,
                                             "mcq_reward_by_step": curve_text(curves, "MCQ reward"),
                                             "open_reward_by_step": curve_text(curves, "open-ended reward")})
        all_curves.append(curves)
    if "memory" in stages:
        started = time.perf_counter()
        memory = run_profile_memory(data, profile, base, "mcq", results_dir=results_dir, cache=cache, progress=False)
        rows.append({"protocol": protocol, "stage": "memory (base model)", **scores(memory.results),
                     "seconds": round(time.perf_counter() - started)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--protocols", default="paper,official")
    parser.add_argument("--out", default=str(repo_root() / "runs" / "protocol-bench"))
    parser.add_argument("--stages", default=",".join(STAGES), help="which of base, sft, grpo, memory to measure")
    args = parser.parse_args()
    stages = tuple(stage.strip() for stage in args.stages.split(","))
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    rows, curves = [], []
    for protocol in args.protocols.split(","):
        rows += measure(args.profile, protocol.strip(), Path(args.out), curves, stages)
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print("\n" + to_markdown(table))
    if curves:
        figure = plot_training_runs(pd.concat(curves, ignore_index=True), suptitle="GRPO rewards under each protocol")
        print("reward curves:", *save_figure(figure, "protocol_grpo_rewards", Path(args.out)))


if __name__ == "__main__":
    main()
