"""Assemble the prompt for each benchmark row: which history, which options, in which order.

Option order is shuffled with a seed derived from the persona and the query text (sha256), so it is
the same on every machine and every run, unlike a seed from Python's salted ``hash()``; the order is
stored with each result. Several order variants per row can be requested to measure position bias.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import prompts
from ..config import TrainPromptSettings
from ..messages import content_text
from ..data.loader import PersonaMemData
from ..models import read_run_record
from .retrieval import Retrieval, excerpt, retrieve

MODES = ("mcq", "open")
# memory contexts label the memory agent's results (pmv2nb.memory); run_eval does not build them
CONTEXTS = {"full": "", "none": "nohistory:", "oracle": "oracle:", "rag": "rag:", "memory": "memory:",
            "memory+query": "memory+query:"}


def split_context(spec: str) -> tuple[str, str]:
    """``"nohistory:hf:tiny"`` -> ("none", "hf:tiny"); a spec without a prefix keeps the full history."""
    for context, prefix in CONTEXTS.items():
        if prefix and spec.startswith(prefix):
            return context, spec[len(prefix):]
    return "full", spec


def display_name(spec: str) -> str:
    """A short label for plots: context prefix and engine kept, server URL and folder path dropped."""
    context, backend = split_context(spec)
    engine, _, rest = backend.partition(":")
    rest = rest.split("@http")[0].rstrip("/")
    return f"{CONTEXTS[context]}{engine}:{rest.rsplit('/', 1)[-1] if engine in ('openai', 'hf') else rest}"


def option_order(persona_id: int, query: str, n: int, variant: int = 0) -> list[int]:
    """A stable permutation of ``range(n)`` for one row and variant (index 0 is the gold answer)."""
    digest = hashlib.sha256(f"{persona_id}\x00{query}\x00{variant}".encode("utf-8")).hexdigest()
    order = list(range(n))
    random.Random(int(digest[:16], 16)).shuffle(order)
    return order


@dataclass
class Task:
    """One prompt to send: a benchmark row, in one mode, with one option order."""

    row: int
    question_id: str
    variant: int
    messages: list[dict]
    order: list[int] | None = None  # order[i] = original option shown at letter i (0 = gold)
    gold_letter: str | None = None
    n_options: int = 0
    rag_windows: list[int] | None = None  # start (in messages after the persona's) of each retrieved window
    dropped: list[dict] = field(default_factory=list)  # history messages left out by fit_history
    retried_shorter: bool = False  # the API refused the whole prompt, and it was asked again with `dropped` left out


def rag_messages(data: PersonaMemData, row: int, size: str,
                 retrieval: Retrieval = Retrieval()) -> tuple[list[dict], list[int]]:
    """The RAG context (see :mod:`.retrieval`) and the start of each window it kept."""
    history = data.history(row, size, keep_persona=False)
    spans = retrieve(history, data.questions["query_text"].iat[row], retrieval)
    return prompts.rag_context(excerpt(history, spans)), [start for start, _ in spans]


def context_messages(data: PersonaMemData, row: int, size: str, context: str,
                     retrieval: Retrieval = Retrieval()) -> list[dict]:
    """The messages before the query: the whole history, nothing, only the evidence session, or retrieved windows."""
    if context == "full":
        return list(data.history(row, size, keep_persona=True))
    if context == "none":
        return []
    if context == "oracle":
        return prompts.oracle_context(data.questions["related_conversation_snippet"].iat[row])
    if context == "rag":
        return rag_messages(data, row, size, retrieval)[0]
    if context.startswith("memory"):
        raise ValueError("memory-agent specs are run by pmv2nb.memory.run_memory (`pmv2nb memory run`), "
                         "which builds the notes first")
    raise ValueError(f"unknown context {context!r}; expected one of {', '.join(CONTEXTS)}")


def rows_with_history(data: PersonaMemData, size: str, limit: int | None = None) -> list[int]:
    """Rows that have a history of this size (some lack a 128k one), first ``limit`` in file order."""
    links = data.questions[data.link_column(size)]
    rows = [int(i) for i in links.index[links.notna()]]
    return rows[:limit] if limit is not None else rows


def build_task(data: PersonaMemData, row: int, mode: str, size: str, context: str = "full",
               variant: int = 0, prompt_format: str = prompts.CHAT_FORMAT, recall: str = "people",
               retrieval: Retrieval = Retrieval(), count_tokens: Callable[[list[dict]], int] | None = None,
               max_prompt_tokens: int | None = None, style: TrainPromptSettings | None = None) -> Task:
    """One prompt in one of :data:`prompts.PROMPT_FORMATS`: the evaluation's ``chat`` format or the
    training's ``boxed``.

    ``recall`` picks the chat format's recall sentence (``eval.recall_sentence``). Options are in the same
    stable per-row order in both formats; the gold letter is upper case
    either way, as :func:`~pmv2nb.evaluate.parsing.parse_choice` returns.

    ``style`` (``train_prompt`` settings) shapes the boxed format as the model was trained: its opening
    message, the recall request and how many options it lists. ``retrieval`` sets the ``rag`` context's
    windows; with ``max_prompt_tokens`` (and ``count_tokens``) a longer prompt is cut by :func:`fit_history`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if prompt_format not in prompts.PROMPT_FORMATS:
        raise ValueError(f"prompt format must be one of {prompts.PROMPT_FORMATS}, got {prompt_format!r}")
    q = data.questions
    task = Task(row=row, question_id=q["question_id"].iat[row], variant=variant, messages=[])
    shown = None
    if mode == "mcq":
        options = [q["correct_answer"].iat[row], *q["incorrect_answers"].iat[row]]
        if prompt_format == prompts.BOXED_FORMAT:
            options = prompts.shown_options(options, style)
        order = option_order(int(q["persona_id"].iat[row]), q["query_text"].iat[row], len(options), variant)
        shown = [options[i] for i in order]
        task.order, task.n_options = order, len(options)
        task.gold_letter = prompts.LETTERS[order.index(0)]
    if context == "rag":
        context_part, task.rag_windows = rag_messages(data, row, size, retrieval)
    else:
        context_part = context_messages(data, row, size, context)
    if prompt_format == prompts.BOXED_FORMAT:
        task.messages = [prompts.boxed_system(style=style), *context_part,
                         prompts.training_query(q["user_query"].iat[row], shown, style=style)]
    else:
        task.messages = [*context_part, prompts.with_recall_note(q["user_query"].iat[row], recall)]
        if shown is not None:
            task.messages.append(prompts.mcq_message(shown))
    if max_prompt_tokens is not None and count_tokens is not None:
        task.messages, task.dropped = fit_history(task.messages, count_tokens, max_prompt_tokens)
    return task


# what marks the 128k filler's code-debugging exchanges (the authors matched code, python and buggy)
CODE_FILLER = re.compile(r"\b(code|python|bugs?|buggy|traceback|debug\w*)\b", re.IGNORECASE)


def fit_history(messages: list[dict], count_tokens: Callable[[list[dict]], int],
                limit: int) -> tuple[list[dict], list[dict]]:
    """Cut a prompt longer than ``limit`` tokens: code-debugging exchanges first, oldest first, then the oldest
    messages; returns the kept messages and the dropped ones, both in their original order.

    A fallback for 128k histories past a model's context (the authors drop only code messages, at
    random, and may still overflow). System messages (the persona's, the options) and the last user
    message (the query) with everything after it are never dropped. ``count_tokens`` counts a list of
    messages; it is called on one message at a time.
    """
    sizes = [count_tokens([m]) for m in messages]
    excess = sum(sizes) - limit
    if excess <= 0:
        return list(messages), []
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    query = users[-1] if users else len(messages)
    droppable = [i for i in range(query) if messages[i]["role"] != "system"]
    order = []  # indices in the order they go, in groups that go together
    for i in droppable:
        if messages[i]["role"] != "user":
            continue
        reply = i + 1 if i + 1 < query and messages[i + 1]["role"] == "assistant" else None
        pair = [i] if reply is None else [i, reply]
        if any(CODE_FILLER.search(content_text(messages[j]["content"])) for j in pair):
            order.append(pair)
    order += [[i] for i in droppable]
    gone: set[int] = set()
    for group in order:
        if excess <= 0:
            break
        fresh = [i for i in group if i not in gone]
        gone.update(fresh)
        excess -= sum(sizes[i] for i in fresh)
    return ([m for i, m in enumerate(messages) if i not in gone],
            [m for i, m in enumerate(messages) if i in gone])


def _run_folder(spec: str) -> Path | None:
    """The training run folder behind a spec (one holding run.json), or None."""
    _, backend = split_context(spec)
    engine, _, rest = backend.partition(":")
    if engine not in ("hf", "vllm", "openai"):
        return None
    folder = Path(rest.split("@http")[0]).expanduser()
    return folder if (folder / "run.json").is_file() else None


def trained_format(spec: str) -> str | None:
    """The prompt format a trained checkpoint learned, from its run.json; None for anything else.

    Works for ``hf:DIR``, ``vllm:DIR`` and ``openai:DIR@URL`` (a run folder behind a local server),
    with or without a context prefix.
    """
    folder = _run_folder(spec)
    if folder is None:
        return None
    recorded = read_run_record(folder).get("prompt_format")
    # runs saved before the format was recorded were trained on the boxed format all the same
    return recorded or prompts.TRAINING_FORMAT


def trained_prompt_style(spec: str) -> dict | None:
    """The ``train_prompt`` settings a trained checkpoint recorded in its run.json (None: not a run, or
    a run saved before they were recorded, which was trained with the defaults)."""
    folder = _run_folder(spec)
    return read_run_record(folder).get("train_prompt") if folder is not None else None


def resolve_format(spec: str, prompt_format: str | None) -> str:
    """The format to ask ``spec`` in: the one given, else the one it was trained on, else the evaluation's."""
    return prompt_format or trained_format(spec) or prompts.CHAT_FORMAT


def row_facts(questions: pd.DataFrame, row: int, size: str) -> dict:
    """The row's labels that breakdowns group by, copied into every result row."""
    q = questions
    distance = q[f"distance_from_related_snippet_to_query_{size}"].iat[row]
    tokens = q[f"total_tokens_in_chat_history_{size}"].iat[row]
    return {
        "persona_id": int(q["persona_id"].iat[row]),
        "pref_type": q["pref_type"].iat[row],
        "who": q["who"].iat[row],
        "updated": bool(q["updated"].iat[row]),
        "conversation_scenario": q["conversation_scenario"].iat[row],
        "sensitive_info": bool(q["sensitive_info"].iat[row]),
        "distance_to_evidence": None if pd.isna(distance) else int(distance),
        "history_tokens": None if pd.isna(tokens) else int(tokens),
    }
