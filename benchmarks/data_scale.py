"""What preparing the data costs at paper scale, on the CPU, before any GPU step: seconds, tokens/s, peak memory.

Each part runs cold in its own process (nothing loaded or cached by an earlier part), on a local copy
in the Hub layout, by default the full-size synthetic data (``pmv2nb mini-data OUT --full-size``):

- ``check_<split>``: ``pmv2nb data check`` of the split (table and every history file, tokenized);
- ``sft_final`` / ``sft_all``: the paper profile's SFT rows as SFTTrainer trains on them (tokenized,
  labelled, cut: TRL's own preparation is skipped), prepared into an empty cache folder, with
  ``sft.loss_turns`` final (the last reply is the target) and all (every assistant turn);
- ``grpo``: the paper profile's GRPO prompts, prepared into an empty cache folder;
- ``chunks``: the memory agent's chunking of every train row's history (once per history);
- ``dry_run_32k`` / ``dry_run_128k``: ``pmv2nb eval --dry-run`` of the benchmark split, MCQ and open-ended, one
  API model.

Training parts read the first ``--rows`` train rows (all by default) and the last line extrapolates SFT
preparation to the whole split: ``sft_prep_rows_per_s X``, its minutes and peak memory for 18,549 rows.
Tokens are Qwen3's (the tiny model's tokenizer is the real one, offline).

    pmv2nb mini-data /tmp/full --full-size
    python benchmarks/data_scale.py --source /tmp/full [--rows 200] [--parts sft_final grpo]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("check_benchmark", "check_train", "check_val", "sft_final", "sft_all", "grpo", "chunks",
         "dry_run_32k", "dry_run_128k")
TRAIN_ROWS = 18_549  # the real train split


def paper_profile(source: str, overrides: dict | None = None):
    from pmv2nb import config

    return config.resolve("paper", {"data.source": source, **(overrides or {})})


def disk_gb(folder: str) -> float:
    return round(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**30, 2)


def run_part(part: str, source: str, rows: int | None) -> dict:
    """One part, in this process: what it did (rows, tokens) and how long it took."""
    from pmv2nb.data import load_profile_split
    from pmv2nb.models import tokenizer_for

    tokenizer = tokenizer_for("tiny")  # the real Qwen3 tokenizer, offline
    started = time.perf_counter()
    if part.startswith("check_"):
        from pmv2nb.data.stats import summarize

        split = part.removeprefix("check_")
        report = summarize(load_profile_split(paper_profile(source), split), ("32k", "128k"))
        done = {"rows": report["rows"],
                "tokens": sum(report["histories"][size]["qwen3_tokens"].get("total", 0) for size in ("32k", "128k"))}
    elif part.startswith("sft_"):
        import tempfile

        import pyarrow.compute as pc

        from pmv2nb.evaluate.tasks import rows_with_history
        from pmv2nb.train.sft import prepared_sft_rows

        loss_turns = part.removeprefix("sft_")
        profile = paper_profile(source, {"sft.loss_turns": loss_turns})
        with tempfile.TemporaryDirectory() as root:  # cold: nothing prepared earlier
            prepared, info = prepared_sft_rows(profile, "train", tokenizer, rows, root, progress=True)
            done = {"rows": len(rows_with_history(load_profile_split(profile, "train"), profile.data.context_size,
                                                  rows)),
                    "examples": info["examples"],
                    "tokens": int(pc.sum(pc.list_value_length(prepared.data.column("input_ids"))).as_py()),
                    "disk_gb": disk_gb(root)}
    elif part == "grpo":
        import tempfile

        from pmv2nb.train.examples import prepared_grpo_prompts

        profile = paper_profile(source, {"grpo.rows": rows} if rows else None)
        with tempfile.TemporaryDirectory() as root:  # cold, as the SFT parts
            prompts, info = prepared_grpo_prompts(profile, tokenizer, root, progress=True)
            done = {"rows": info["prompts"], "tokens": sum(prompts["prompt_tokens"]), "disk_gb": disk_gb(root)}
    elif part == "chunks":
        from tqdm.auto import tqdm

        from pmv2nb.evaluate.tasks import rows_with_history
        from pmv2nb.memory.agent import Chunker

        profile = paper_profile(source)
        data = load_profile_split(profile, "train")
        chunker = Chunker(data, tokenizer, profile.memory, profile.data.context_size)
        chosen = rows_with_history(data, profile.data.context_size, rows)
        chunkings = {chunker.link(row): chunker(row) for row in tqdm(chosen, desc="chunking")}
        done = {"rows": len(chosen), "histories": len(chunkings),
                "tokens": sum(chunking.history_tokens for chunking in chunkings.values())}
    elif part.startswith("dry_run_"):
        from pmv2nb.cli import main

        size = part.removeprefix("dry_run_")
        code = main(["eval", "--profile", "paper", "--source", source, "--set", f"data.context_size={size}",
                     "--model", "openai:gpt-5", "--mode", "both", "--judge", "openai:gpt-5", "--dry-run"])
        assert code == 0, f"the dry run exited {code}"
        done = {"rows": 5000}
    else:
        raise SystemExit(f"unknown part {part!r}; one of {', '.join(PARTS)}")
    seconds = time.perf_counter() - started
    return {"part": part, "seconds": round(seconds, 1), **done,
            "tokens_per_s": round(done.get("tokens", 0) / seconds) if done.get("tokens") else None,
            "peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def measure(part: str, source: str, rows: int | None) -> dict:
    """Run one part in a fresh process and read the JSON line it prints last."""
    command = [sys.executable, __file__, "--source", source, "--child", part]
    if rows:
        command += ["--rows", str(rows)]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode:
        raise SystemExit(f"{part} failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="a local copy in the Hub layout")
    parser.add_argument("--rows", type=int, default=None, help="only the first N train rows (training parts)")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = str(Path(args.source).expanduser().resolve())
    if args.child:
        print(json.dumps(run_part(args.child, source, args.rows)))
        return
    results = {}
    for part in args.parts:
        results[part] = measure(part, source, args.rows)
        print(json.dumps(results[part]), flush=True)
    if "sft_final" in results:
        sft = results["sft_final"]
        rate = sft["rows"] / sft["seconds"]
        print(f"sft_prep_rows_per_s {rate:.1f}  (whole train split: {TRAIN_ROWS / rate / 60:.1f} min, "
              f"peak {sft['peak_gb']:.2f} GB at {sft['rows']} rows)")


if __name__ == "__main__":
    main()
