"""Result rows, appended one JSON line at a time so an interrupted run loses nothing it finished.

A run killed mid-write can leave a torn last line; opening the file again cuts it off, so every
row that survives is complete and appears exactly once. Rows are keyed by question, model, mode,
context size, option-order variant and prompt format (rows written before formats were recorded
count as the evaluation's ``chat`` format).

One run writes a file at a time: opening it takes an OS lock on ``<file>.lock`` (released by the
kernel even when the holder is killed), and a second run of the same evaluation stops at once with
an error naming the holder, instead of appending the same rows and paying the same calls again.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

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


def _names_live_process(owner: str) -> bool:
    """Whether an owner line (``PID 123 on host, since ...``) names a process running on this machine."""
    parts = owner.split()
    if len(parts) < 2 or parts[0] != "PID" or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultsBusyError(RuntimeError):
    """Another run (this process or another) is writing the same results file."""


def lock_path(path: str | Path) -> Path:
    return Path(f"{path}.lock")


def owner_path(path: str | Path) -> Path:
    """Who holds the lock (PID, host, start time): the lock file itself cannot say, since locking opens it."""
    return Path(f"{path}.lock.owner")


class ResultsFile:
    """Append-only JSONL of result rows with the keys already present, written by one run at a time.

    A second writer is refused rather than made to wait: two runs of one evaluation at once are almost
    always a mistake (a command in two terminals, a notebook cell run twice), and a waiting run would
    sit silent for as long as the first takes, then find nothing left to do. The lock is taken before
    the file is read, so the torn-line repair never cuts a line that another run is still writing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[tuple] = set()
        self._lock = FileLock(str(lock_path(self.path)), thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ResultsBusyError(f"{self.path} is being written by another run ({self._holder()}); let it finish "
                                   f"or stop it, then run again (finished rows are kept)") from None
        try:
            owner = owner_path(self.path)
            partial = owner.with_name(owner.name + f".{os.getpid()}")
            partial.write_text(f"PID {os.getpid()} on {socket.gethostname()}, since "
                               f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n", encoding="utf-8")
            partial.replace(owner)  # whole or absent, never half-written, for a refused run reading it
            self._repair_and_index()
            self._handle = None  # opened at the first row: a run that stops before one leaves no empty file
        except BaseException:
            self._unlock()
            raise

    def _holder(self, patience_s: float = 2.0) -> str:
        """Who holds the lock, as its owner file says. The holder writes that file just after locking, and a
        killed holder leaves a stale one, so a live PID is waited for briefly before the file is believed."""
        deadline = time.monotonic() + patience_s
        text = ""
        while True:
            try:
                text = owner_path(self.path).read_text(encoding="utf-8").strip()
            except OSError:
                text = ""
            if _names_live_process(text) or time.monotonic() > deadline:
                return text or "holder unknown"
            time.sleep(0.05)

    def _unlock(self) -> None:
        if self._lock.is_locked:
            owner_path(self.path).unlink(missing_ok=True)
            self._lock.release()

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
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        self._handle.flush()  # reaches the OS, so it survives the process being killed
        self.done.add(key)

    def close(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        self._unlock()

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
