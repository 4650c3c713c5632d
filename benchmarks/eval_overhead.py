"""Measure the evaluation harness's own overhead: prompt building, parsing, cache and result bookkeeping.

Builds a scaled-up copy of the mini dataset (default 5,000 rows sharing 200 synthetic ~32k-token
histories) in a temporary folder, then runs the multiple-choice pipeline with ``baseline:random``,
which answers instantly, so nearly all measured time is the harness. Prints per-row overhead, peak
memory, and the wall time of two re-runs: one reusing the finished results file, one with a fresh
results file whose every call is answered from the cache.

    python benchmarks/eval_overhead.py [--rows 5000] [--histories 200] [--history-tokens 32000]
"""

from __future__ import annotations

import argparse
import ast
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pmv2nb.config import repo_root
from pmv2nb.data import load_split
from pmv2nb.data.loader import read_raw_table
from pmv2nb.evaluate import RunSettings, run_eval


def build_scaled_copy(out: Path, rows: int, histories: int, history_tokens: int) -> None:
    """Hub-layout copy of the mini benchmark with ``rows`` questions over ``histories`` long histories."""
    mini = repo_root() / "data" / "mini"
    table = read_raw_table(mini / "benchmark" / "text" / "benchmark.csv", "benchmark.csv")
    first = table["chat_history_32k_link"].iat[0]
    source = json.loads((mini / first).read_text())
    tokens_per_copy = max(1, int(source["metadata"].get("final_token_count", 2300)))
    copies = max(1, round(history_tokens / tokens_per_copy))
    folder = out / "data" / "chat_history_32k"
    folder.mkdir(parents=True)
    for h in range(histories):
        body = source["chat_history"][1:]
        messages = [source["chat_history"][0]] + [
            {**m, "content": f"[{h}.{c}] {m['content']}"} for c in range(copies) for m in body]
        payload = {"metadata": {**source["metadata"], "persona_id": h, "final_token_count": tokens_per_copy * copies},
                   "chat_history": messages}
        (folder / f"chat_history_scaled_persona{h}.json").write_text(json.dumps(payload))
    picked = table.iloc[[i % len(table) for i in range(rows)]].reset_index(drop=True).copy()
    queries = []
    for i, cell in enumerate(picked["user_query"]):
        query = ast.literal_eval(cell)
        query["content"] = f"{query['content']} (variant {i})"
        queries.append(repr(query))
    picked["user_query"] = queries
    picked["persona_id"] = [str(i % histories) for i in range(rows)]
    picked["chat_history_32k_link"] = [f"data/chat_history_32k/chat_history_scaled_persona{i % histories}.json"
                                       for i in range(rows)]
    picked["chat_history_128k_link"] = ""
    picked["total_tokens_in_chat_history_32k"] = str(tokens_per_copy * copies)
    (out / "benchmark" / "text").mkdir(parents=True)
    picked.to_csv(out / "benchmark" / "text" / "benchmark.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--histories", type=int, default=200)
    parser.add_argument("--history-tokens", type=int, default=32000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pmv2nb-overhead-"))
    try:
        started = time.perf_counter()
        build_scaled_copy(work / "mirror", args.rows, args.histories, args.history_tokens)
        print(f"built {args.rows} rows over {args.histories} histories in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        data = load_split(work / "mirror", "benchmark")
        data.load_all_histories(progress=False)
        load_s = time.perf_counter() - started
        messages = sum(len(data.chat_history(r)) for r in data.history_rows())
        print(f"loaded table and histories in {load_s:.1f} s ({messages} history messages)")

        settings = RunSettings(chunk_rows=256)
        cache, out = work / "calls.sqlite", work / "results.jsonl"
        timings = {}
        for label, path in (("first run", out), ("re-run, finished results file", out),
                            ("re-run, fresh results file (all calls from cache)", work / "again.jsonl")):
            started = time.perf_counter()
            run = run_eval(data, "baseline:random", settings, out=path, cache=cache, progress=False)
            timings[label] = time.perf_counter() - started
            assert len(run.results) == args.rows
            print(f"{label:52s} {timings[label]:7.2f} s  new calls {run.new_calls:5d}  rows {len(run.results)}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per_row_ms = timings["first run"] / args.rows * 1000
        print(f"\nharness overhead per row (first run): {per_row_ms:.2f} ms   (target < 5 ms)")
        print(f"cached re-run of {args.rows} rows: "
              f"{timings['re-run, fresh results file (all calls from cache)']:.2f} s "
              f"(target < 10 s)")
        print(f"peak memory (max RSS of this process): {peak_mb:.0f} MB   (target < 2048 MB)")
        print(f"cache size on disk: {cache.stat().st_size / 1e6:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
