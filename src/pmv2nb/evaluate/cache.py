"""The on-disk cache every model call goes through (SQLite from the standard library).

Each finished call is committed on its own, so a run killed at any moment (even ``kill -9``) keeps
every answer it received, and the next run asks the model only for what is missing. Keys are
hashes of (model identity, messages, sampling, seed); API keys are never part of either.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..backends.base import ChatBackend, ChatRequest, ChatResponse, OnResult, RequestsFailedError, request_key
from ..config import shipped_profile


BUSY_TIMEOUT_S = 60.0  # how long a cache waits for another process's write


def default_cache_path() -> Path:
    """Where a cache opened without a path lives: the shipped default profile's (``Profile.cache_path``). Code with a
    profile at hand passes ``profile.cache_path()``, so moving its results moves the cache too."""
    return shipped_profile().cache_path()


@contextmanager
def opened_cache(cache: "CallCache | str | Path | None") -> Iterator["CallCache"]:
    """The caller's open cache as it is, or one opened at ``cache`` (None: :func:`default_cache_path`) and closed
    afterwards."""
    if isinstance(cache, CallCache):
        yield cache
        return
    store = CallCache(cache or default_cache_path())
    try:
        yield store
    finally:
        store.close()


class CallCache:
    """A key -> response table; safe to share between threads of one process and between processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        self._use_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "response TEXT NOT NULL, created REAL NOT NULL)")

    def _use_wal(self) -> None:
        """Switch the file to write-ahead logging, so readers and one writer never wait on each other.

        Two processes opening a new cache at once can see "database is locked" here at once: SQLite does
        not wait out the busy timeout while it changes the journal mode. So the switch is tried again,
        briefly, for as long as the timeout would have waited.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get_many(self, keys: list[str]) -> dict[str, ChatResponse]:
        found: dict[str, ChatResponse] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                part = unique[start:start + 500]
                rows = self._db.execute(f"SELECT key, response FROM calls WHERE key IN ({','.join('?' * len(part))})",
                                        part).fetchall()
                found.update((key, ChatResponse.from_json(payload)) for key, payload in rows)
        return found

    def put(self, key: str, model: str, response: ChatResponse) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)",
                             (key, model, response.to_json(), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedBackend:
    """Wraps any backend: answers from the cache when it can, stores each new answer as it arrives.

    A request that runs out of retries is never stored, so the next run asks it again; the batch's
    answers are stored all the same and the failure is passed on (``RequestsFailedError``) by index.
    """

    def __init__(self, backend: ChatBackend, cache: CallCache):
        self.backend, self.cache = backend, cache
        self.spec = backend.spec
        self.priced_as = getattr(backend, "priced_as", None)
        self.identity = backend.cache_identity()
        self.new_calls = 0

    def cache_identity(self) -> dict:
        return self.identity

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None,
                 progress: bool = False) -> list[ChatResponse]:
        keys = [request_key(self.identity, r) for r in requests]
        hits = self.cache.get_many(keys)
        out: list[ChatResponse | None] = [None] * len(requests)
        for index, key in enumerate(keys):
            if key in hits:
                out[index] = ChatResponse(**{**hits[key].__dict__, "cached": True})
                if on_result is not None:
                    on_result(index, out[index])
        missing: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            if key not in hits:
                missing.setdefault(key, []).append(index)
        if missing:
            firsts = [indices[0] for indices in missing.values()]

            def store(position: int, response: ChatResponse) -> None:
                index = firsts[position]
                self.cache.put(keys[index], self.spec, response)
                self.new_calls += 1
                for twin in missing[keys[index]]:
                    out[twin] = response
                    if on_result is not None:
                        on_result(twin, response)

            try:
                self.backend.generate([requests[i] for i in firsts], on_result=store, progress=progress)
            except RequestsFailedError as err:
                failures = {twin: error for position, error in err.failures.items()
                            for twin in missing[keys[firsts[position]]]}
                raise RequestsFailedError(out, failures) from None
        return out  # type: ignore[return-value]
