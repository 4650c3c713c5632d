"""Load one split of PersonaMem-v2 into a typed table plus a shared history store.

The same function reads the Hugging Face Hub repo and any local folder with its layout
(the embedded mini dataset is one), so a notebook switches between them by profile alone.
Every cell is parsed on load; the first bad one stops the load with its file, row and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import Profile
from ..messages import content_text
from .columns import (
    COLUMNS, CONTEXT_SIZES, MODALITIES, PARSERS, SPLITS, DataError, parse_int, parse_optional_int, topic_key,
)
from .histories import ChatHistory, HistoryStore
from .sources import HubMirror, LocalMirror, _relative_parts, open_source, table_path

TOPIC_COLUMNS = ("topic_query", "topic_preference")


@dataclass
class PersonaMemData:
    """One split: ``questions`` (one typed row per question) and the histories they point at."""

    split: str
    modality: str
    source: LocalMirror | HubMirror
    table: str
    questions: pd.DataFrame
    histories: HistoryStore

    def __len__(self) -> int:
        return len(self.questions)

    def link_column(self, size: str = "32k") -> str:
        """Each size has its own link column: real 32k and 128k file names carry different time stamps."""
        if size not in CONTEXT_SIZES:
            raise ValueError(f"context size must be one of {CONTEXT_SIZES}, got {size!r}")
        return f"chat_history_{size}_link"

    def chat_history(self, row: int, size: str = "32k") -> ChatHistory:
        """The shared history object for question ``row`` (0-based position in ``questions``)."""
        column = self.link_column(size)
        link = self.questions[column].iat[row]
        if pd.isna(link):
            raise DataError(f"this question has no {size} history", file=self.table, row=row, column=column)
        return self.histories.get(link, table=self.table, row=row, column=column)

    def history(self, row: int, size: str = "32k", keep_persona: bool = True, text_only: bool = False) -> list[dict]:
        """Messages before the query; ``keep_persona=False`` drops the persona system message."""
        history = self.chat_history(row, size)
        return history.text_view(keep_persona) if text_only else history.view(keep_persona)

    def history_rows(self, size: str = "32k") -> list[int]:
        """Position of the first question linking to each distinct history file (rows without one skipped)."""
        links = self.questions[self.link_column(size)]
        return [int(i) for i in links.dropna().drop_duplicates().index]

    def load_all_histories(self, sizes: tuple[str, ...] = ("32k",), progress: bool = True) -> int:
        """Load (and validate) every history the split links to; returns how many distinct files."""
        from tqdm.auto import tqdm

        todo = [(row, size) for size in sizes for row in self.history_rows(size)]
        for row, size in tqdm(todo, desc=f"histories ({self.split})", disable=not progress):
            self.chat_history(row, size)
        return len(todo)


def parse_table(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Type every column of a raw string table; raise on the first bad cell with its location."""
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(f"missing column(s): {', '.join(missing)}", file=table, column=missing[0])
    typed = {}
    for column in frame.columns:
        parser = PARSERS.get(column)
        if parser is None:
            typed[column] = frame[column].tolist()
            continue
        values = []
        for row, cell in enumerate(frame[column].tolist()):
            try:
                values.append(parser(cell))
            except ValueError as err:
                raise DataError(str(err), file=table, row=row, column=column) from None
        typed[column] = values
    for column in ("chat_history_32k_link", "chat_history_128k_link"):
        for row, link in enumerate(typed[column]):
            if link is not None:
                try:
                    _relative_parts(link)
                except DataError as err:
                    raise DataError(err.reason, file=table, row=row, column=column) from None
    questions = pd.DataFrame(typed, index=pd.RangeIndex(len(frame)))
    for column, parser in PARSERS.items():
        if parser in (parse_int, parse_optional_int):  # keep counts as integers, with <NA> where empty
            questions[column] = questions[column].astype("Int64")
    questions["query_text"] = [content_text(query["content"]) for query in questions["user_query"]]
    questions["n_options"] = [1 + len(wrong) for wrong in questions["incorrect_answers"]]
    # Raw topic labels stay as written; group on these keys so "Health" and "health" count together.
    for column in TOPIC_COLUMNS:
        questions[f"{column}_key"] = [topic_key(label) for label in questions[column]]
    return questions


def read_raw_table(path: Path, table: str, limit: int | None = None) -> pd.DataFrame:
    """Read a question CSV with every cell as a string (no NaN guessing, empty stays empty)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, nrows=limit)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"not a readable CSV: {err}", file=table) from None


def load_split(source: str | Path = "data/mini", split: str = "benchmark", modality: str = "text",
               limit: int | None = None, cache_dir: str | Path | None = None) -> PersonaMemData:
    """Load ``split`` from a local mirror or ``"hub"``; ``limit`` keeps the first rows in file order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    mirror = open_source(source, cache_dir)
    relative = table_path(split, modality)
    path = mirror.fetch(relative)
    table = str(path) if isinstance(mirror, LocalMirror) else f"{mirror}/{relative}"
    questions = parse_table(read_raw_table(path, table, limit), table)
    questions.insert(0, "question_id", [f"{split}-{i:05d}" for i in range(len(questions))])
    return PersonaMemData(split=split, modality=modality, source=mirror, table=table,
                          questions=questions, histories=HistoryStore(mirror))


def load_profile_split(profile: Profile, split: str = "benchmark") -> PersonaMemData:
    """Load a split with the profile's source, modality, row limit and cache folder."""
    return load_split(profile.data_source(), split, profile.data.modality, profile.data.row_limit,
                      profile.data.cache_dir)
