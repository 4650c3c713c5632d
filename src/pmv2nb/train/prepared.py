"""Training data prepared once and kept on disk: the first process of a launch builds it, the others read it.

At paper scale, building a split's training rows takes minutes. Every rank of an 8-GPU launch used to
do it alone; now the first to take a file lock builds the rows into a folder named by a hash of what
shapes them (the data files, the tokenizer, the settings, the code that builds them), and everyone,
that one included, memory-maps the finished folder. A resumed or repeated run finds it and starts
training at once. A killed build leaves only a side folder, never a half-written one under the name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

ROWS_FILE = "rows.arrow"
PREPARED_FOLDER = ".prepared"  # beside the run folders: what later runs of the same shape reuse
INFO_FILE = "info.json"


def fingerprint(parts: dict) -> str:
    """A short stable hash of JSON-able parts (paths, settings, versions)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_identity(path: str | Path) -> dict:
    """What tells one data file from another without reading it: path, size and modification time."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def code_identity(*modules) -> str:
    """A hash of the source of the modules that build the rows, so a code change never reads stale rows."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_identity(tokenizer) -> str:
    """A hash of the tokenizer's vocabulary, rules and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = (backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items())))
    return hashlib.sha256((text + str(tokenizer.chat_template)).encode()).hexdigest()[:16]


def prepared_folder(root: str | Path, name: str, parts: dict, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The folder ``build`` fills for ``parts``, built now unless another process did it before; and
    whether this call built it. ``build`` writes into the folder it is given (a private side folder)."""
    from filelock import FileLock

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{name}-{fingerprint(parts)}"
    with FileLock(str(folder) + ".lock"):
        if (folder / INFO_FILE).is_file():
            return folder, False
        side = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(side, ignore_errors=True)
        side.mkdir()
        started = time.perf_counter()
        build(side)
        info = json.loads((side / INFO_FILE).read_text()) if (side / INFO_FILE).is_file() else {}
        info.update(parts=parts, build_seconds=round(time.perf_counter() - started, 1))
        (side / INFO_FILE).write_text(json.dumps(info, indent=1, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        side.replace(folder)
    return folder, True


def prepared_rows(root: str | Path, name: str, parts: dict, build: Callable[[Path], None], label: str,
                  progress: bool = True):
    """The rows ``build`` writes to :data:`ROWS_FILE` for ``parts`` (built once, :func:`prepared_folder`),
    memory-mapped, with their info; says so when an earlier run had prepared them."""
    folder, built = prepared_folder(root, name, parts, build)
    info = read_info(folder)
    if progress and not built:
        print(f"{label}: read from {folder} (prepared earlier)")
    return read_rows(folder), info


def write_token_rows(path: Path, rows: Iterable[dict[str, np.ndarray]], columns: tuple[str, ...],
                     batch_rows: int = 64) -> int:
    """Stream rows of int32 token lists into an Arrow file that :func:`datasets.Dataset.from_file` reads.

    Rows go out in batches, so memory holds one batch, whatever the split's size. Returns the row count.
    """
    import pyarrow as pa

    schema = pa.schema([(column, pa.list_(pa.int32())) for column in columns])
    count, batch = 0, []
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        def flush():
            arrays = []
            for column in columns:
                values = [np.asarray(row[column], dtype=np.int32) for row in batch]
                offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int32)
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(values))))
            writer.write_batch(pa.record_batch(arrays, schema=schema))

        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) == batch_rows:
                flush()
                batch = []
        if batch:
            flush()
    return count


def write_records(path: Path, records: Iterable[dict], batch_rows: int = 256) -> int:
    """Stream dict records (nested lists and dicts allowed) into an Arrow file :func:`datasets.Dataset.from_file` reads.

    Memory holds a batch, not the split. The column types come from the first records: they are held
    back until every column has had a value (a column that is None in the first rows, an MCQ field in
    open-ended rows, would otherwise be typed null), or the stream ends. Returns the record count.
    """
    import pyarrow as pa

    count, held, writer, sink, schema = 0, [], None, None, None
    try:
        for record in records:
            held.append(record)
            count += 1
            if writer is None and (len(held) < batch_rows or any(
                    all(r.get(key) is None for r in held) for key in held[0])):
                continue
            if writer is None:
                schema = pa.Table.from_pylist(held).schema
                sink = pa.OSFile(str(path), "wb")
                writer = pa.ipc.new_stream(sink, schema)
            if len(held) >= batch_rows:
                writer.write_table(_records_table(held, schema))
                held = []
        if writer is None:  # fewer rows than a batch, or a column without any value: the types the rows give
            schema = pa.Table.from_pylist(held).schema if held else pa.schema([])
            sink = pa.OSFile(str(path), "wb")
            writer = pa.ipc.new_stream(sink, schema)
        if held:
            writer.write_table(_records_table(held, schema))
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    return count


def _records_table(records: list[dict], schema):
    """Records as a table of ``schema``; a record with other keys is a bug upstream, not something to drop."""
    import pyarrow as pa

    names = set(schema.names)
    for record in records:
        if set(record) != names:
            raise ValueError(f"record keys {sorted(record)} differ from the file's columns {sorted(names)}")
    return pa.Table.from_pylist(records, schema=schema)


def read_rows(folder: Path):
    """The rows :func:`write_token_rows` or :func:`write_records` wrote, as a memory-mapped ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_file(str(folder / ROWS_FILE))


def read_info(folder: Path) -> dict:
    return json.loads((folder / INFO_FILE).read_text())
