"""What is inside a split: label counts, history lengths, evidence positions and the option-length shortcut.

These tables feed ``pmv2nb data check`` and notebook 01. History lengths are measured in Qwen3
tokens (the model family the project trains); the CSV's own token columns are reported as given.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ..messages import content_text
from .loader import PersonaMemData

LABEL_COLUMNS = ("pref_type", "who", "updated", "conversation_scenario", "sensitive_info", "n_options")


def label_counts(questions: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts per value of each label column, most frequent first (booleans as 'True'/'False')."""
    return {column: {str(k): int(v) for k, v in questions[column].value_counts().items()} for column in LABEL_COLUMNS}


def history_token_table(data: PersonaMemData, sizes: tuple[str, ...] = ("32k", "128k"), tokenizer=None,
                        progress: bool = True) -> pd.DataFrame:
    """One row per distinct history file: persona, context size, messages and Qwen3 tokens (text view)."""
    from tqdm.auto import tqdm

    if tokenizer is None:
        from ..models import tokenizer_for
        tokenizer = tokenizer_for("tiny")
    records = []
    for size in sizes:
        for row in tqdm(data.history_rows(size), desc=f"{size} histories", disable=not progress):
            history = data.chat_history(row, size)
            texts = [content_text(m["content"]) for m in history.messages]
            tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
            records.append({"persona_id": int(data.questions.at[row, "persona_id"]), "size": size,
                            "link": history.link, "messages": len(history), "qwen3_tokens": tokens,
                            "csv_tokens": data.questions.at[row, f"total_tokens_in_chat_history_{size}"]})
    return pd.DataFrame.from_records(records, columns=["persona_id", "size", "link", "messages", "qwen3_tokens",
                                                       "csv_tokens"])


def option_lengths(questions: pd.DataFrame) -> pd.DataFrame:
    """Per question: is the gold option the unique longest, or the unique shortest, by characters?"""
    rows = []
    for gold, wrong, who in zip(questions["correct_answer"], questions["incorrect_answers"], questions["who"]):
        lengths = [len(option) for option in [gold] + list(wrong)]
        rows.append({"who": who, "n_options": len(lengths),
                     "gold_longest": lengths[0] == max(lengths) and lengths.count(max(lengths)) == 1,
                     "gold_shortest": lengths[0] == min(lengths) and lengths.count(min(lengths)) == 1})
    return pd.DataFrame(rows, index=questions.index)


def length_shortcut_rates(questions: pd.DataFrame) -> pd.DataFrame:
    """How often picking the longest (or shortest) option would be right, overall and by ``who``.

    The real benchmark leaks the answer this way (gold uniquely longest in about 45% of rows, and
    almost always uniquely shortest when the preference is someone else's); chance is 1/options.
    """
    table = option_lengths(questions)
    table["chance"] = 1.0 / table["n_options"]
    by_who = table.groupby("who")[["gold_longest", "gold_shortest", "chance"]].mean()
    overall = table[["gold_longest", "gold_shortest", "chance"]].mean().to_frame("all").T
    return pd.concat([overall, by_who]).rename_axis("who")


def evidence_location(data: PersonaMemData, row: int, size: str = "32k") -> list[int]:
    """Indices of the history messages that make up the row's evidence snippet (empty if not found)."""
    history = data.chat_history(row, size).messages
    snippet = data.questions.at[row, "related_conversation_snippet"]
    wanted = [content_text(m["content"]) for m in snippet]
    texts = [content_text(m["content"]) for m in history]
    for start in range(len(texts) - len(wanted) + 1):
        if texts[start:start + len(wanted)] == wanted:
            return list(range(start, start + len(wanted)))
    return [i for i, text in enumerate(texts) if text in wanted]


def render_example(data: PersonaMemData, row: int, size: str = "32k", context: int = 2) -> str:
    """HTML view of one question: the query, its options, and the history around the highlighted evidence."""
    q = data.questions.loc[row]
    evidence = evidence_location(data, row, size)
    history = data.chat_history(row, size).messages
    shown = sorted({i for e in evidence for i in range(max(0, e - context), min(len(history), e + context + 1))})
    parts = [f"<h4>Question {html.escape(q['question_id'])} &middot; persona {q['persona_id']} &middot; "
             f"{q['pref_type']} &middot; who={q['who']} &middot; updated={q['updated']}</h4>",
             f"<p><b>Preference:</b> {html.escape(q['preference'])}</p>",
             f"<p><b>Query:</b> {html.escape(q['query_text'])}</p><ol type='A'>"]
    parts.append(f"<li><b>{html.escape(q['correct_answer'])}</b> (gold)</li>")
    parts += [f"<li>{html.escape(option)}</li>" for option in q["incorrect_answers"]]
    parts.append(f"</ol><p><b>History</b> ({len(history)} messages; evidence at {evidence}):</p>")
    previous = -1
    for i in shown:
        if i != previous + 1:
            parts.append("<div style='color:#888'>&hellip;</div>")
        style = "background:#fff3b0;border-left:4px solid #e69f00;" if i in evidence else ""
        text = html.escape(content_text(history[i]["content"]))
        parts.append(f"<div style='{style}padding:2px 6px;margin:2px 0'>"
                     f"<b>[{i}] {history[i]['role']}:</b> {text}</div>")
        previous = i
    return "\n".join(parts)


def describe(x: pd.Series) -> dict[str, Any]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if x.empty:
        return {"count": 0}
    return {"count": int(x.size), "min": int(x.min()), "median": float(x.median()), "max": int(x.max()),
            "total": int(x.sum())}


def summarize(data: PersonaMemData, sizes: tuple[str, ...] = ("32k", "128k"), histories: bool = True,
              progress: bool = False) -> dict[str, Any]:
    """The ``pmv2nb data check`` report: sizes, label counts, history coverage and token statistics."""
    q = data.questions
    summary: dict[str, Any] = {
        "source": str(data.source), "split": data.split, "modality": data.modality, "table": data.table,
        "rows": len(q), "personas": int(q["persona_id"].nunique()), "counts": label_counts(q),
        "csv_tokens": {size: describe(q[f"total_tokens_in_chat_history_{size}"]) for size in sizes},
        "distance_to_evidence": {size: describe(q[f"distance_from_related_snippet_to_query_{size}"]) for size in sizes},
        "length_shortcut": {who: {k: round(float(v), 3) for k, v in rates.items()}
                            for who, rates in length_shortcut_rates(q).iterrows()},
    }
    coverage = {}
    for size in sizes:
        column = data.link_column(size)
        coverage[size] = {"rows_with_link": int(q[column].notna().sum()), "distinct_files": int(q[column].nunique())}
    if histories:
        tokens = history_token_table(data, sizes, progress=progress)  # loads, and so validates, every file
        for size in sizes:
            chosen = tokens[tokens["size"] == size]
            coverage[size] |= {"files_found": len(chosen), "qwen3_tokens": describe(chosen["qwen3_tokens"])}
    summary["histories"] = coverage
    return summary


def split_overview(splits: dict[str, PersonaMemData]) -> pd.DataFrame:
    """Rows, personas and history files per split."""
    return pd.DataFrame([
        {"split": name, "rows": len(data), "personas": data.questions["persona_id"].nunique(),
         "32k histories": data.questions["chat_history_32k_link"].nunique(),
         "128k histories": data.questions["chat_history_128k_link"].nunique(),
         "table": data.table}
        for name, data in splits.items()
    ]).set_index("split")
