"""Look inside the notes: how they changed after each chunk, how often the cap cut them, what private data they kept.

Everything here reads the trajectories and result rows that :func:`pmv2nb.memory.run.run_memory`
saves, so the audits can be redone on any finished run without calling a model.
"""

from __future__ import annotations

import difflib
import html
import re

import pandas as pd

from .agent import Trajectory

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def note_items(memory: str) -> list[str]:
    """The notes as comparable items: one per line, long lines split into sentences, bullets stripped."""
    items = []
    for line in memory.splitlines():
        line = line.strip().lstrip("-*•").strip()
        items += [part.strip() for part in _SENTENCE_END.split(line) if part.strip()]
    return items


def memory_diff(before: str, after: str) -> dict[str, list[str]]:
    """Items added, dropped and kept between two versions of the notes (a rewritten item counts as both)."""
    old, new = note_items(before), note_items(after)
    added, dropped, kept = [], [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            kept += old[i1:i2]
        else:
            dropped += old[i1:i2]
            added += new[j1:j2]
    return {"added": added, "dropped": dropped, "kept": kept}


def trajectory_table(trajectory: Trajectory, cap: int) -> pd.DataFrame:
    """One row per chunk: tokens written against the cap, whether it was cut, and items added or dropped."""
    rows = []
    memories = trajectory.memories
    for index, step in enumerate(trajectory.steps):
        change = memory_diff(memories[index], memories[index + 1])
        rows.append({"chunk": index + 1, "chunk_tokens": trajectory.chunking.chunk_tokens[index],
                     "memory_tokens": step.tokens_out, "cap": cap, "capped": step.capped,
                     "kept_previous": step.kept_previous, "added": len(change["added"]),
                     "dropped": len(change["dropped"]), "kept": len(change["kept"])})
    return pd.DataFrame(rows)


def diff_html(before: str, after: str) -> str:
    """The change between two versions of the notes as HTML: kept items plain, added green, dropped struck red."""
    change = memory_diff(before, after)
    parts = [f'<li style="color:#1a7f37">+ {html.escape(item)}</li>' for item in change["added"]]
    parts += [f'<li style="color:#cf222e"><s>{html.escape(item)}</s></li>' for item in change["dropped"]]
    parts += [f"<li>{html.escape(item)}</li>" for item in change["kept"]]
    return "<ul style='font-family:monospace;font-size:90%'>" + "".join(parts) + "</ul>"


def trajectory_html(trajectory: Trajectory, cap: int, limit_chars: int = 600) -> str:
    """Every step of a trajectory as an HTML block: the diff, then the notes themselves (shortened)."""
    blocks = [f"<h4>{html.escape(trajectory.link)}: {len(trajectory.steps)} chunks, "
              f"{trajectory.chunking.omitted_tokens} history tokens left out</h4>"]
    memories = trajectory.memories
    for index, step in enumerate(trajectory.steps):
        notes = memories[index + 1]
        shown = notes if len(notes) <= limit_chars else notes[:limit_chars] + " …"
        flag = " <b>(cut at the cap)</b>" if step.capped else ""
        blocks.append(f"<details{' open' if index == len(trajectory.steps) - 1 else ''}><summary>after chunk "
                      f"{index + 1}: {step.tokens_out}/{cap} tokens{flag}</summary>"
                      f"{diff_html(memories[index], notes)}<pre style='white-space:pre-wrap'>{html.escape(shown)}"
                      f"</pre></details>")
    return "".join(blocks)


def cap_rate(trajectories: dict[str, Trajectory] | list[Trajectory]) -> float:
    """Share of all rewrites that the memory cap cut short."""
    steps = [s for t in (trajectories.values() if isinstance(trajectories, dict) else trajectories) for s in t.steps]
    return sum(s.capped for s in steps) / len(steps) if steps else float("nan")


def privacy_audit(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and kind of privacy row: how often the final notes (and any version of them) kept the protected detail.

    sensitive_info rows: the notes hold the private data itself (a number, an address, a key).
    ask_to_forget rows: the notes still hold what the user asked to be forgotten.
    """
    rows = results[results["memory_leak"].notna()].drop_duplicates(["model", "question_id"]).copy()
    if rows.empty:
        return pd.DataFrame(columns=["model", "kind", "rows", "final_memory_leak_rate", "ever_leaked_rate"])
    rows["kind"] = rows["pref_type"].where(rows["pref_type"] == "ask_to_forget", "sensitive_info")
    table = (rows.groupby(["model", "kind"])
             .agg(rows=("question_id", "size"), final_memory_leak_rate=("memory_leak", "mean"),
                  ever_leaked_rate=("memory_ever_leaked", "mean")).reset_index())
    return table


def token_accounting(results: pd.DataFrame) -> pd.DataFrame:
    """Input tokens per question with notes vs with the full history, counted both ways.

    At answer time the agent reads only its notes and the query ("N x fewer input tokens"). Counting
    the updates too, each question also pays for reading the whole history once, in chunks, plus the
    notes at every step; when notes are shared by several questions of a persona (the causal variant)
    that cost is split between them. One row per model and mode, since the answer prompts differ.
    """
    frame = results.drop_duplicates(["model", "mode", "question_id"]).copy()
    frame["updates_per_question"] = frame["update_tokens_in"] / frame["shared_by"]
    table = frame.groupby(["model", "mode"]).agg(
        questions=("question_id", "size"), full_history_tokens=("full_history_tokens", "mean"),
        answer_tokens_in=("tokens_in", "mean"), update_tokens_in=("update_tokens_in", "mean"),
        updates_per_question=("updates_per_question", "mean"), memory_tokens=("memory_tokens", "mean")).reset_index()
    table["fewer_at_answer"] = table["full_history_tokens"] / table["answer_tokens_in"]
    table["fewer_with_updates"] = table["full_history_tokens"] / (table["answer_tokens_in"] + table["update_tokens_in"])
    table["fewer_with_shared_updates"] = table["full_history_tokens"] / (
        table["answer_tokens_in"] + table["updates_per_question"])
    return table
