"""Build training data from a split: SFT conversations and GRPO prompts with their reward labels.

Every prompt is: a system instruction, the user's history (persona system message kept), and the
user's query with the recall request, plus for multiple choice the options labelled (a)-(d) in an
order shuffled with seed ``42 + row`` (the authors' training convention, reproducible everywhere).

Length rule. Prompts are measured with the model's own tokenizer and chat template. When one is
longer than the limit, whole exchanges (a user message and the assistant replies after it; the data
has no session markers) are dropped from the oldest end of the history until it fits. The system
instruction, the persona message and the query are never cut. A prompt that does not fit even with
an empty history is an error naming the row. :class:`LengthReport` counts what was cut, including
how many rows probably lost their evidence (the evidence lies further back than what was kept).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import prompts
from ..answers import reward_labels
from ..config import Profile, TrainPromptSettings, check_choice
from ..data.columns import DataError
from ..messages import content_text
from ..data.loader import PersonaMemData, load_profile_split
from ..evaluate.tasks import MODES as TASKS, rows_with_history
from .prepared import (
    INFO_FILE, ROWS_FILE, code_identity, file_identity, prepared_rows, read_rows, tokenizer_identity,
    write_records,
)
from .tokens import ChatTokens

LONG_PROMPTS = ("cut", "drop")
MESSAGE_OVERHEAD = 5  # <|im_start|> role \n ... <|im_end|> \n around each message's content


def training_option_order(row: int, n: int) -> list[int]:
    """Shuffled option positions for one row (index 0 is the gold answer), seeded with 42 + row."""
    order = list(range(n))
    random.Random(42 + row).shuffle(order)
    return order


def training_options(data: PersonaMemData, row: int,
                     style: TrainPromptSettings | None = None) -> tuple[list[str], list[int], str]:
    """A row's options in training order, that order (index 0 is the gold answer) and the gold letter.

    ``style`` (``train_prompt``) may keep only the gold and the first distractors before the shuffle.
    """
    q = data.questions
    choices = prompts.shown_options([q["correct_answer"].iat[row], *q["incorrect_answers"].iat[row]], style)
    order = training_option_order(row, len(choices))
    return [choices[i] for i in order], order, prompts.TRAIN_LETTERS[order.index(0)]


def split_tasks(rows: list[int], mcq_fraction: float, seed: int = 0) -> dict[int, str]:
    """Assign each row to "mcq" or "open": exactly round(fraction * len(rows)) MCQ rows, chosen with ``seed``."""
    if not 0.0 <= mcq_fraction <= 1.0:
        raise ValueError(f"mcq_fraction must lie in [0, 1], got {mcq_fraction}")
    n_mcq = round(mcq_fraction * len(rows))
    chosen = set(random.Random(seed).sample(rows, n_mcq))
    return {row: "mcq" if row in chosen else "open" for row in rows}


@dataclass
class LengthReport:
    """What the length rule did to one dataset."""

    limit: int
    rows: int = 0
    truncated: int = 0
    messages_dropped: int = 0
    evidence_lost: int = 0
    dropped_rows: int = 0
    lengths: list[int] = field(default_factory=list)

    def summary(self) -> str:
        dropped = f"; {self.dropped_rows} over-long rows left out" if self.dropped_rows else ""
        if not self.rows:
            return "no prompts built" + dropped
        series = pd.Series(self.lengths)
        return (f"{self.rows} prompts, {series.median():.0f} tokens median, {series.max()} max (limit {self.limit}); "
                f"{self.truncated} truncated ({self.truncated / self.rows:.0%}), {self.messages_dropped} old messages "
                f"dropped, {self.evidence_lost} probably lost their evidence{dropped}")


class PromptBuilder:
    """Builds length-checked training prompts for one split, size and tokenizer.

    ``style`` is the ``train_prompt`` settings. With ``drop_over``, a row whose whole prompt is longer
    than that is left out (:meth:`prompt` returns None) instead of losing its oldest exchanges.
    """

    def __init__(self, data: PersonaMemData, tokenizer, max_prompt_tokens: int, size: str = "32k",
                 think: bool = True, style: TrainPromptSettings | None = None, drop_over: int | None = None):
        self.data, self.tokenizer, self.size, self.think, self.style = data, tokenizer, size, think, style
        self.drop_over = drop_over
        self.report = LengthReport(limit=max_prompt_tokens)
        self._message_tokens: dict[str, list[int]] = {}
        self.chat = ChatTokens(tokenizer)  # renders and tokenizes each persona's history once
        self._new_history = False

    def _template_length(self, messages: list[dict]) -> int:
        # the first prompt over a history is also rendered by the template itself, to check the shortcut
        return len(self.chat.encode(self.chat.render(messages, True, check=self._new_history).text)[0])

    def _history_counts(self, row: int, history: list[dict]) -> list[int]:
        link = self.data.questions[self.data.link_column(self.size)].iat[row]
        self._new_history = link not in self._message_tokens
        if self._new_history:  # histories are shared by every question of a persona
            texts = [m["content"] for m in history]
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
            self._message_tokens[link] = [len(x) + MESSAGE_OVERHEAD for x in ids]
        return self._message_tokens[link]

    def prompt(self, row: int, task: str) -> dict | None:
        """One training prompt with its labels: messages, gold letter, option order, token count
        (None for an over-long row when the builder drops them)."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        q = self.data.questions
        history = self.data.history(row, self.size, keep_persona=True, text_only=True)
        head = [prompts.boxed_system(think=self.think, style=self.style)]
        if history and history[0]["role"] == "system":
            head.append(history[0])
            counts = self._history_counts(row, history)[1:]
            history = history[1:]
        else:
            counts = self._history_counts(row, history)
        options, order, gold = training_options(self.data, row, self.style) if task == "mcq" else (None, None, "")
        query = prompts.training_query(q["user_query"].iat[row], options, think=self.think, style=self.style)
        query = {"role": "user", "content": content_text(query["content"])}
        if self.drop_over is not None and self._template_length(head + history + [query]) > self.drop_over:
            self.report.dropped_rows += 1
            return None
        kept, tokens, history_tokens = self._fit(row, head, history, counts, query)
        self._record(row, len(history) - len(kept), tokens, history_tokens)
        return {"messages": head + kept + [query], "gold_letter": gold, "option_order": order or [],
                "options": options or [], "prompt_tokens": tokens}

    def _fit(self, row: int, head: list[dict], history: list[dict], counts: list[int],
             query: dict) -> tuple[list[dict], int, int]:
        """The newest exchanges that fit: (kept messages, prompt tokens, tokens the kept history adds)."""
        limit = self.report.limit
        starts = [i for i, m in enumerate(history) if m["role"] == "user"] or [0]
        fixed = self._template_length(head + [query])
        # estimate from per-message counts, then confirm with the real template (and cut further if needed)
        start_index = 0
        while start_index < len(starts) and fixed + sum(counts[starts[start_index]:]) > limit:
            start_index += 1
        while True:
            first = starts[start_index] if start_index < len(starts) else len(history)
            kept = history[first:]
            tokens = self._template_length(head + kept + [query])
            if tokens <= limit:
                return kept, tokens, tokens - fixed
            if not kept:
                raise DataError(f"the prompt is {tokens} tokens even with no history, over the {limit}-token limit; "
                                f"raise the profile's max prompt length", file=self.data.table, row=row,
                                column="user_query")
            start_index += 1

    def _record(self, row: int, dropped: int, tokens: int, history_tokens: int) -> None:
        report = self.report
        report.rows += 1
        report.lengths.append(tokens)
        if dropped:
            report.truncated += 1
            report.messages_dropped += dropped
            distance = self.data.questions[f"distance_from_related_snippet_to_query_{self.size}"].iat[row]
            if not pd.isna(distance) and int(distance) > history_tokens:  # the evidence lies before what was kept
                report.evidence_lost += 1


def sft_examples(data: PersonaMemData, tokenizer, max_length: int, size: str = "32k", tasks: tuple[str, ...] = TASKS,
                 limit: int | None = None, target_reserve: int = 256, think: bool = False,
                 mcq_fraction: float | None = None, seed: int = 0,
                 progress: bool = True, style: TrainPromptSettings | None = None) -> tuple[list[dict], LengthReport]:
    """SFT conversations: the prompt plus the gold reply as the final assistant message.

    MCQ rows teach ``\\boxed{letter} answer text``; open-ended rows teach the gold answer itself.
    With ``mcq_fraction`` None every row yields one example per task in ``tasks``; with a fraction
    each row yields one example, its task drawn as :func:`split_tasks` draws the GRPO mix (the
    authors' SFT data). ``target_reserve`` tokens are kept free for the reply, so prompt + reply fit
    in ``max_length``. The targets hold no think block, so by default (``sft.think_instruction``
    false) the prompts do not ask for one either.
    """
    builder, stream = sft_example_stream(data, tokenizer, max_length, size, tasks, limit, target_reserve, think,
                                         mcq_fraction, seed, progress, style)
    return list(stream), builder.report


def sft_example_stream(data: PersonaMemData, tokenizer, max_length: int, size: str = "32k",
                       tasks: tuple[str, ...] = TASKS, limit: int | None = None, target_reserve: int = 256,
                       think: bool = False, mcq_fraction: float | None = None, seed: int = 0, progress: bool = True,
                       style: TrainPromptSettings | None = None) -> tuple[PromptBuilder, Iterator[dict]]:
    """:func:`sft_examples` one at a time (a whole split's conversations do not fit in memory together),
    with the builder whose report and tokens they come from."""
    builder = PromptBuilder(data, tokenizer, max_length - target_reserve, size, think, style)
    rows = rows_with_history(data, size, limit)
    assignment = split_tasks(rows, mcq_fraction, seed) if mcq_fraction is not None else None

    def stream() -> Iterator[dict]:
        for row in tqdm(rows, desc=f"SFT examples ({data.split})", disable=not progress):
            for task in (assignment[row],) if assignment else tasks:
                built = builder.prompt(row, task)
                answer = data.questions["correct_answer"].iat[row]
                reply = prompts.mcq_target(built["gold_letter"], answer) if task == "mcq" else answer
                yield {"messages": built["messages"] + [{"role": "assistant", "content": reply}],
                       "gold_letter": built["gold_letter"], "prompt_tokens": built["prompt_tokens"],
                       **reward_labels(data, row, task)}

    return builder, stream()


def grpo_prompt_stream(data: PersonaMemData, tokenizer, max_prompt_length: int, mcq_fraction: float = 0.8,
                       size: str = "32k", limit: int | None = None, seed: int = 0,
                       progress: bool = True, style: TrainPromptSettings | None = None, long_prompts: str = "cut",
                       drop_over: int | None = None) -> tuple[Iterator[dict], LengthReport]:
    """GRPO prompts in the paper's mix, one at a time: each row is an MCQ or an open-ended prompt, never both.

    The labels the rewards need (gold letter, options, preference, pref_type, sensitive_info, ...) ride
    along as columns, which TRL hands to the reward functions as keyword arguments. ``long_prompts``
    (``grpo.long_prompts``) says what happens to a row too long for ``max_prompt_length``: "cut" keeps
    its newest exchanges, "drop" leaves out a row longer than ``drop_over`` (default ``max_prompt_length``;
    the authors filter such prompts) and still cuts one that is only longer than ``max_prompt_length``.
    The length report fills in as the prompts are drawn.
    """
    check_choice("grpo.long_prompts", long_prompts, LONG_PROMPTS)
    dropping = long_prompts == "drop"
    builder = PromptBuilder(data, tokenizer, max_prompt_length, size, style=style,
                            drop_over=(drop_over or max_prompt_length) if dropping else None)
    rows = rows_with_history(data, size, limit)
    assignment = split_tasks(rows, mcq_fraction, seed)

    def stream() -> Iterator[dict]:
        for row in tqdm(rows, desc=f"GRPO prompts ({data.split})", disable=not progress):
            built = builder.prompt(row, assignment[row])
            if built is not None:
                yield {"prompt": built["messages"], "gold_letter": built["gold_letter"], "options": built["options"],
                       "prompt_tokens": built["prompt_tokens"], **reward_labels(data, row, assignment[row])}

    return stream(), builder.report


def grpo_prompts(*args, **kwargs) -> tuple[list[dict], LengthReport]:
    """:func:`grpo_prompt_stream`'s prompts as a list (same arguments), with the finished length report."""
    stream, report = grpo_prompt_stream(*args, **kwargs)
    return list(stream), report


def prepared_grpo_prompts(profile: Profile, tokenizer, root: str | Path, *, progress: bool = True):
    """The train split's GRPO prompts as the profile builds them (:func:`grpo_prompts`), as a ``datasets.Dataset``,
    and what they hold. Built once into ``root`` by the first process there (:mod:`pmv2nb.train.prepared`),
    keyed by the data, the tokenizer, the code and every setting that shapes them; memory-mapped."""
    from .. import answers
    from . import tokens

    settings = profile.grpo
    data = load_profile_split(profile, "train")
    shape = dict(max_prompt_length=settings.max_prompt_length, mcq_fraction=settings.mcq_fraction,
                 size=profile.data.context_size, limit=settings.rows, seed=profile.seed,
                 long_prompts=settings.long_prompts, drop_over=settings.drop_over)
    parts = {"table": file_identity(data.table), "tokenizer": tokenizer_identity(tokenizer),
             "code": code_identity(answers, prompts, sys.modules[__name__], tokens),
             "style": asdict(profile.train_prompt), **shape}

    def build(folder: Path) -> None:
        stream, report = grpo_prompt_stream(data, tokenizer, progress=progress, style=profile.train_prompt, **shape)
        count = write_records(folder / ROWS_FILE, stream)
        tasks = read_rows(folder)["task"] if count else []
        (folder / INFO_FILE).write_text(json.dumps({
            "prompts": count, "mcq_prompts": sum(task == "mcq" for task in tasks),
            "dropped_rows": report.dropped_rows, "lengths": report.summary()}))

    return prepared_rows(root, "grpo-train", parts, build, "GRPO prompts", progress)
