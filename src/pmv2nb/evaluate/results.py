"""Result rows, appended one JSON line at a time so an interrupted run loses nothing it finished.

A run killed mid-write can leave a torn last line; opening the file again cuts it off, so every
row that survives is complete and appears exactly once. Rows are keyed by question, model, mode,
context size, option-order variant and prompt format (rows written before formats were recorded
count as the evaluation's ``chat`` format).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

KEY_FIELDS = ("question_id", "model", "mode", "size", "variant", "prompt_format", "protocol", "retrieval")
KEY_DEFAULTS = {"prompt_format": "chat", "protocol": "paper", "retrieval": ""}


def row_key(row: dict) -> tuple:
    return tuple(row[field] if field in row else KEY_DEFAULTS[field] for field in KEY_FIELDS)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class ResultsFile:
    """Append-only JSONL of result rows with the keys already present."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[tuple] = set()
        self._repair_and_index()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair_and_index(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        for number, line in enumerate(data[:good].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{self.path}: line {number} is not valid JSON; move the file aside to start over")
            self.done.add(row_key(row))
        if good < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good)

    def __contains__(self, key: tuple) -> bool:
        return key in self.done

    def append(self, row: dict) -> None:
        key = row_key(row)
        if key in self.done:
            return
        self._handle.write(json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        self._handle.flush()  # reaches the OS, so it survives the process being killed
        self.done.add(key)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(*paths: str | Path) -> pd.DataFrame:
    """Load one or more result files into one frame (torn last lines ignored)."""
    rows = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        complete = text[:text.rfind("\n") + 1]
        for number, line in enumerate(complete.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ValueError(f"{path}: line {number} is not valid JSON") from None
    return pd.DataFrame(rows)
