"""Run a model over benchmark rows, multiple choice or open-ended, resumably and within a budget.

Rows are processed in chunks: build the prompts, ask the (cached) model, for open-ended questions
ask the judge several times, then append one finished result row per question to the JSONL file.
Restarting with the same arguments skips finished rows and answers already-made calls from the
cache, so an interrupted run costs nothing twice and a finished one costs nothing at all.

A call that keeps failing after its retries fails its row only: the row is named in ``EvalRun.failed``
and left out of the file, every other row is written, and the next run asks just for what is missing.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import prompts
from ..backends import (
    BackendError, ChatRequest, ChatResponse, ContextTooLongError, Sampling, generate_some, make_backend,
)
from ..backends.openai_http import ALIASES, is_reasoning_model
from ..config import EvalSettings, TrainPromptSettings, check_choice, shipped_profile
from ..messages import content_text
from ..data.loader import PersonaMemData
from ..data.sources import describe_source
from .cache import CachedBackend, CallCache, opened_cache
from .cost import cacheable, call_cost
from .judging import judge_requests, read_verdict
from .parsing import answer_part, boxed_choice, parse_choice
from .results import ResultsFile, read_results, row_key
from .retrieval import Retrieval, embed_queries
from .tasks import (
    MODES, Task, build_task, fit_history, resolve_format, row_facts, rows_with_history, split_context,
    trained_format, trained_prompt_style,
)

EXPECTED_OUTPUT_TOKENS = {"mcq": 500, "open": 600, "judge": 350}  # typical lengths, for estimates only
FIT_HISTORY = ("before", "on_error")  # eval.fit_history
JUDGE_FRAME_TOKENS = 250


def results_file_name(data: PersonaMemData, model: str, settings: "RunSettings") -> str:
    """``<split>-<modality>-<size>-<mode>[-<format>][-<protocol>][-<retrieval>]-<model>.jsonl`` (server URLs left
    out), for settings already resolved for ``model`` (:func:`settings_for`).

    The evaluation's own ``chat`` format and the ``paper`` protocol are unmarked; another format,
    protocol or ``rag:`` retrieval setting is named, so each way of asking keeps its own file.
    """
    name = model.split("@http")[0]
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")
    slug = slug if len(slug) <= 80 else slug[:20] + "--" + slug[-58:]
    prompt_format = settings.prompt_format or prompts.CHAT_FORMAT
    marked = settings.mode if prompt_format == prompts.CHAT_FORMAT else f"{settings.mode}-{prompt_format}"
    marked = marked if settings.protocol == "paper" else f"{marked}-{settings.protocol.replace('+', '-')}"
    retrieval = settings.retrieval_tag(model)
    marked = f"{marked}-{retrieval}" if retrieval else marked
    return f"{data.split}-{data.modality}-{settings.size}-{marked}-{slug}.jsonl"


@dataclass
class RunSettings:
    """One run: its mode, size, rows and sampling, with the profile's ``eval`` and ``train_prompt`` sections as
    they are (:func:`~pmv2nb.evaluate.suite.profile_settings` builds it from a profile). The defaults are the
    paper protocol's, as the sections' own defaults are."""

    mode: str = "mcq"
    size: str = "32k"
    rows: int | None = None  # the first N rows with a history of this size (None: all)
    variants: int = 1  # option orders per MCQ row
    sampling: Sampling = Sampling()
    judge_sampling: Sampling = Sampling(max_tokens=1024)
    budget_usd: float | None = None
    chunk_rows: int = 32
    prompt_format: str | None = None  # "chat" or "boxed"; None: the checkpoint's training format, else "chat"
    profile: str | None = None  # recorded in each result row, so figures can say where a number came from
    protocol: str = "paper"  # the protocol tag (config.protocol_tag), recorded in each row and part of its key
    dtype: str = "auto"  # precision of local (hf:) models (model.dtype)
    results_dir: Path | None = None  # where result files go by default (None: the default profile's eval_dir)
    eval: EvalSettings = field(default_factory=EvalSettings)  # the profile's switches, sizes and judging
    train_prompt: TrainPromptSettings = field(default_factory=TrainPromptSettings)  # the boxed format's shape

    def with_eval(self, **changes) -> "RunSettings":
        """These settings with some ``eval`` settings changed, e.g. ``settings.with_eval(parser="strict")``."""
        return replace(self, eval=replace(self.eval, **changes))

    def results_folder(self) -> Path:
        """``results_dir``, else where the shipped default profile keeps evaluation results (``Profile.eval_dir``)."""
        return Path(self.results_dir) if self.results_dir else shipped_profile().eval_dir()

    def retrieval(self) -> Retrieval:
        return Retrieval(self.eval.rag_window, self.eval.rag_overlap, self.eval.rag_top_k)

    def retrieval_tag(self, model: str) -> str:
        """What a ``rag:`` spec's rows and file are marked with (``w6o2k10``); empty for every other spec."""
        return self.retrieval().tag() if split_context(model)[0] == "rag" else ""

    def result_key(self, model: str, task: Task) -> tuple:
        """The key the finished row of ``task`` has in a results file (``results.KEY_FIELDS``)."""
        return row_key({"question_id": task.question_id, "model": model, "mode": self.mode, "size": self.size,
                        "variant": task.variant, "prompt_format": self.prompt_format or prompts.CHAT_FORMAT,
                        "protocol": self.protocol, "retrieval": self.retrieval_tag(model)})


@dataclass(frozen=True)
class FailedRow:
    """A task left unwritten because one of its calls (answer, judge or memory update) ran out of retries."""

    row: int
    question_id: str
    variant: int
    error: str


@dataclass
class EvalRun:
    path: Path
    results: pd.DataFrame
    new_calls: int = 0
    new_judge_calls: int = 0
    spent_usd: float = 0.0
    stopped: str = ""  # why the run ended early, empty when it finished
    skipped_rows: int = 0
    warning: str = ""  # replies cut at the reply cap, when some were (printed as well)
    failed: list[FailedRow] = field(default_factory=list)  # not in the file: the next run asks for them again

    def failure_summary(self) -> str:
        """One line per failed task, or empty when none failed."""
        if not self.failed:
            return ""
        lines = [f"{len(self.failed)} task(s) failed after their retries and were not written to {self.path}; "
                 f"run the same command again to retry only those:"]
        lines += [f"  row {f.row} ({f.question_id}, variant {f.variant}): {f.error}" for f in self.failed]
        return "\n".join(lines)


class _Tokens:
    """Approximate token counts (Qwen3 tokenizer) for estimates and error messages."""

    def __init__(self):
        from ..models import tokenizer_for

        self.tokenizer = tokenizer_for("tiny")
        self._seen: dict[str, int] = {}  # the questions of a persona share its history: count each text once

    def messages(self, messages: list[dict]) -> int:
        total = 0
        for m in messages:
            text = content_text(m["content"])
            if text not in self._seen:
                self._seen[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + 4
            total += self._seen[text]
        return total


def plan_tasks(data: PersonaMemData, model: str, settings: RunSettings) -> tuple[list[Task], int]:
    """Every task of the run (rows x order variants), in the order they are sent (a history's questions together,
    :func:`grouped_by_history`), and how many rows were skipped for lack of a history."""
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {settings.mode!r}")
    check_choice("eval.fit_history", settings.eval.fit_history, FIT_HISTORY)
    context, _ = split_context(model)
    rows = rows_with_history(data, settings.size)
    skipped = len(data) - len(rows)
    rows = rows[:settings.rows] if settings.rows is not None else rows
    variants = range(settings.variants if settings.mode == "mcq" else 1)
    prompt_format = resolve_format(model, settings.prompt_format)
    retrieval = settings.retrieval()
    if context == "rag":
        embed_queries([data.questions["query_text"].iat[row] for row in rows])
    fit_first = settings.eval.max_prompt_tokens is not None and settings.eval.fit_history == "before"
    counter = _Tokens().messages if fit_first else None
    tasks = [build_task(data, row, settings.mode, settings.size, context, v, prompt_format,
                        settings.eval.recall_sentence, retrieval, counter, settings.eval.max_prompt_tokens,
                        settings.train_prompt)
             for row in rows for v in variants]
    return grouped_by_history(data, tasks, settings.size), skipped


def grouped_by_history(data: PersonaMemData, tasks: list[Task], size: str) -> list[Task]:
    """The tasks with the questions of each history next to each other, histories in order of first appearance
    and tasks in their own order within one (a stable sort, so file order is kept where it already groups them).

    Sent together, a persona's prompts find its history in the engine's prefix cache (vLLM) or the API's
    prompt cache (OpenAI, which forgets a prefix after minutes), instead of paying for it again. Only the
    order of sending changes: each task, and so each result row, is the same.
    """
    links = data.questions[data.link_column(size)]
    first: dict = {}
    for task in tasks:
        first.setdefault(links.iat[task.row], len(first))
    return sorted(tasks, key=lambda task: first[links.iat[task.row]])


def _prompt_pieces(data: PersonaMemData, task: Task, settings: RunSettings, context: str,
                   counter: _Tokens) -> list[tuple]:
    """A task's prompt as (kind, content, tokens) pieces in order, to compare prompts and add up their size.

    A whole full-context history is one piece counted from the dataset's own token column (tokenizing
    every 32k history would make a dry run slow); every other message is a piece of its own.
    """
    messages = task.messages
    known = data.questions[f"total_tokens_in_chat_history_{settings.size}"].iat[task.row]
    start = end = 0
    if context == "full" and not task.dropped and not pd.isna(known):
        history = data.history(task.row, settings.size, keep_persona=True)
        # the chat format opens with the history, the boxed format with its instruction and then the history
        start = next((i for i in range(len(messages) - len(history) + 1)
                      if messages[i:i + len(history)] == history), -1)
        end = start + len(history) if start >= 0 else 0
    pieces = [(m["role"], content_text(m["content"]), counter.messages([m])) for m in messages[:max(start, 0)]]
    if end:
        pieces.append(("history", data.questions[data.link_column(settings.size)].iat[task.row], int(known)))
    return pieces + [(m["role"], content_text(m["content"]), counter.messages([m])) for m in messages[end:]]


def _shared_tokens(pieces: list[tuple], earlier: list[tuple] | None) -> int:
    """Tokens in the leading pieces two prompts have in common (0 without an earlier prompt)."""
    shared = 0
    for mine, theirs in zip(pieces, earlier or []):
        if mine[:2] != theirs[:2]:
            break
        shared += mine[2]
    return shared


def estimate(data: PersonaMemData, model: str, settings: RunSettings, judge: str | None = None,
             tasks: list[Task] | None = None) -> dict:
    """Calls, tokens and dollars a run would need, before making any call (``--dry-run``).

    Three prices: ``cost_usd_expected`` with typical reply lengths and the API's prompt cache,
    ``cost_usd_no_cache`` with typical replies and no cache hit at all, ``cost_usd_max`` with no cache hit
    and every reply at its cap.

    The cache is modelled simply, on the tasks in the order they are sent (a persona's questions together,
    :func:`grouped_by_history`): a prompt is billed as cached for the messages it shares from the start with
    the previous prompt of the same history, counted only from 1,024 tokens and in steps of 128
    (:func:`~pmv2nb.evaluate.cost.cacheable`). So a persona's first question pays its whole history and the
    others pay the cached rate for it; the API backend sends that first question alone so that they can.
    Real hits can be fewer: a prefix the API has already forgotten, a resumed run. Judge prompts are short
    and priced without the cache.
    """
    tasks = tasks if tasks is not None else plan_tasks(data, model, settings)[0]
    counter = _Tokens()
    context, backend_spec = split_context(model)
    links = data.questions[data.link_column(settings.size)]
    tokens_in = cached_in = 0
    previous: dict = {}  # history link -> the pieces of the last prompt sent with it
    for task in tasks:
        pieces = _prompt_pieces(data, task, settings, context, counter)
        tokens_in += sum(piece[2] for piece in pieces)
        cached_in += cacheable(_shared_tokens(pieces, previous.get(links.iat[task.row])))
        previous[links.iat[task.row]] = pieces
    out_each = min(settings.sampling.max_tokens, EXPECTED_OUTPUT_TOKENS[settings.mode])
    priced = _priced_name(backend_spec, ALIASES)
    plan = {"model": model, "mode": settings.mode, "size": settings.size, "rows": len({t.row for t in tasks}),
            "calls": len(tasks), "tokens_in": tokens_in, "tokens_in_cached_expected": cached_in,
            "tokens_out_expected": out_each * len(tasks),
            "tokens_out_max": _reply_cap(priced, settings.sampling.max_tokens, settings) * len(tasks),
            # with eval.api_sampling none nothing caps a reply, and the maximum above is only what the cap would be
            "replies_capped": priced is None or settings.eval.api_sampling == "capped"}
    plan["cost_usd_expected"] = call_cost(priced, tokens_in, plan["tokens_out_expected"], cached_in)
    plan["cost_usd_no_cache"] = call_cost(priced, tokens_in, plan["tokens_out_expected"])
    plan["cost_usd_max"] = call_cost(priced, tokens_in, plan["tokens_out_max"])
    if settings.mode == "open" and judge:
        judge_in = sum(counter.messages(t.messages[-1:]) + JUDGE_FRAME_TOKENS + out_each for t in tasks)
        judge_calls = len(tasks) * settings.eval.judge_calls
        judge_out = min(settings.judge_sampling.max_tokens, EXPECTED_OUTPUT_TOKENS["judge"]) * judge_calls
        judge_priced = _priced_name(judge, ALIASES)
        plan.update(judge=judge, judge_calls=judge_calls, judge_tokens_in=judge_in * settings.eval.judge_calls,
                    judge_tokens_out_expected=judge_out)
        plan["cost_usd_expected"] += call_cost(judge_priced, plan["judge_tokens_in"], judge_out)
        plan["cost_usd_no_cache"] += call_cost(judge_priced, plan["judge_tokens_in"], judge_out)
        plan["cost_usd_max"] += call_cost(judge_priced, plan["judge_tokens_in"],
                                          _reply_cap(judge_priced, settings.judge_sampling.max_tokens, settings)
                                          * judge_calls)
    return plan


def _reply_cap(api_name: str | None, max_tokens: int, settings: RunSettings) -> int:
    """Output tokens one call may bill: the reply cap, plus the hidden-reasoning room of an API reasoning model."""
    return max_tokens + (settings.eval.reasoning_tokens if api_name and is_reasoning_model(api_name) else 0)


def _priced_name(spec: str, aliases: dict) -> str | None:
    engine, _, rest = spec.partition(":")
    if engine != "openai" or "@http" in rest:
        return None
    return aliases.get(rest, rest)


def run_eval(data: PersonaMemData, model: str, settings: RunSettings | None = None, *, judge: str | None = None,
             out: str | Path | None = None, cache: CallCache | str | Path | None = None,
             progress: bool = True) -> EvalRun:
    """Evaluate ``model`` (a spec, maybe prefixed ``nohistory:``, ``oracle:`` or ``rag:``) and return its results."""
    settings = settings or RunSettings()
    if settings.mode == "open" and not judge:
        raise ValueError("open-ended evaluation needs a judge spec (for example the same model, or openai:gpt-4.1)")
    settings = settings_for(model, settings)
    tasks, skipped = plan_tasks(data, model, settings)
    path = Path(out) if out else results_path_for(data, model, settings)
    run = EvalRun(path=path, results=pd.DataFrame(), skipped_rows=skipped)
    with opened_cache(cache) as store, ResultsFile(path) as results:
        answerer, grader = cached_backends(split_context(model)[1], judge, store, settings)
        todo = [t for t in tasks if settings.result_key(model, t) not in results]
        per_task_estimate = None
        if settings.budget_usd is not None and todo:
            # priced without cache hits: a hit is never certain (concurrent requests miss, the API forgets a
            # prefix within minutes, a resumed run starts cold), so the run stops before a budget it could
            # overrun, while what it records as spent is what the API billed, cached input included
            plan = estimate(data, model, settings, judge, todo[:min(len(todo), 8)])
            per_task_estimate = plan["cost_usd_no_cache"] / plan["calls"]
        with tqdm(total=len(tasks), initial=len(tasks) - len(todo), disable=not progress,
                  desc=f"{settings.mode} {settings.size} {model[:40]}") as bar:
            for start in range(0, len(todo), settings.chunk_rows):
                chunk = todo[start:start + settings.chunk_rows]
                if (per_task_estimate is not None
                        and run.spent_usd + per_task_estimate * len(chunk) > settings.budget_usd):
                    run.stopped = (f"budget of ${settings.budget_usd:.2f} reached after ${run.spent_usd:.4f}; "
                                   f"{len(todo) - start} task(s) left. Re-run with a higher --budget to continue "
                                   f"(finished rows and cached calls are not paid again).")
                    break
                for row in score_tasks(data, chunk, model, judge, answerer, grader, settings, run):
                    results.append(row)
                bar.update(len(chunk))
        run.new_calls, run.new_judge_calls = answerer.new_calls, grader.new_calls if grader else 0
    run.results = read_results(path) if path.exists() else pd.DataFrame()
    if run.stopped and progress:
        print(run.stopped)
    run.warning = cut_replies_warning(run.results, model, settings)
    if run.warning:
        print(run.warning, file=sys.stderr)
    if run.failed and progress:
        print(run.failure_summary(), file=sys.stderr)
    return run


def results_path_for(data: PersonaMemData, model: str, settings: RunSettings) -> Path:
    """Where a run of ``model`` with ``settings`` keeps its rows: :func:`results_file_name` in the settings'
    results folder."""
    settings = settings_for(model, settings)
    return settings.results_folder() / results_file_name(data, model, settings)


def cut_replies_warning(results: pd.DataFrame, model: str, settings: RunSettings) -> str:
    """A warning naming the model, how many of this run's replies stopped at the reply cap without a readable
    answer and the setting to raise; empty when none did.

    A reply cut after its answer is the cap working as sized (the laptop profile's 8-token MCQ cap holds the
    letter its model writes first), so only cut replies that lost their answer are worth a warning; the
    breakdown's ``cut_rate`` still counts every cut. A local model that was never trained on the boxed format
    and is asked in it (the base model beside its SFT run) writes prose there whatever the cap: its unreadable
    replies are the invalid rate that comparison reports, not answers the cap cut off, so no warning."""
    if not len(results) or "finish_reason" not in results:
        return ""
    backend = split_context(model)[1]
    if (settings.prompt_format == prompts.BOXED_FORMAT and backend.split(":", 1)[0] in ("hf", "vllm")
            and trained_format(backend) is None):
        return ""
    protocol = results["protocol"] if "protocol" in results else "paper"  # files older than protocols
    mine = results[(results["model"] == model) & (results["mode"] == settings.mode)
                   & (results["size"] == settings.size) & (protocol == settings.protocol)]
    cut = mine[mine["finish_reason"] == "length"]
    unreadable = int((~cut["valid"].astype(bool)).sum()) if "valid" in cut else len(cut)
    if not unreadable:
        return ""
    api_name = _priced_name(split_context(model)[1], ALIASES)
    if api_name and settings.eval.api_sampling == "none":
        remedy = "no cap was sent (eval.api_sampling=none), so they reached the model's own output limit"
    else:
        remedy = ("raise eval.mcq_max_new_tokens (eval.max_new_tokens when it is unset; --max-tokens sets both)"
                  if settings.mode == "mcq" else "raise eval.max_new_tokens (--max-tokens)")
        remedy += f", now {settings.sampling.max_tokens}"
        if api_name and is_reasoning_model(api_name):
            remedy += (f", or eval.reasoning_tokens (now {settings.eval.reasoning_tokens}): hidden reasoning fills the "
                       f"cap too")
    return (f"warning: {unreadable} of {len(mine)} {settings.mode} replies of {model} ({settings.size}) stopped at "
            f"the reply cap (finish_reason 'length') without a readable answer ({len(cut)} were cut in all); "
            f"{remedy}")


def settings_for(model: str, settings: RunSettings) -> RunSettings:
    """The settings as they apply to ``model``: its prompt format resolved (a trained run's own, shaped as its
    run.json's ``train_prompt`` says), and in the boxed format that format's temperature. Every path that asks
    a model (eval, memory run, reanswer) uses it."""
    settings = replace(settings, prompt_format=resolve_format(model, settings.prompt_format))
    recorded = trained_prompt_style(model)
    if recorded is not None:
        settings = replace(settings, train_prompt=TrainPromptSettings(**recorded))
    if settings.prompt_format == prompts.BOXED_FORMAT and settings.eval.boxed_temperature is not None:
        return replace(settings, sampling=replace(settings.sampling, temperature=settings.eval.boxed_temperature))
    return settings


def nearest_option(text: str, options: list[str]) -> str:
    """The letter of the option closest to ``text`` by sentence embedding (the authors' no-letter fallback).

    Callers pass what the authors embed: the reply after its last ``</think>`` (:func:`.parsing.answer_part`).
    The offline all-MiniLM-L6-v2 stands in for their API embedder.
    """
    from ..backends.baselines import minilm

    vectors = minilm().encode([text, *options], normalize_embeddings=True)
    similarity = vectors[1:] @ vectors[0]
    return prompts.LETTERS[int(similarity.argmax())]


BOXED_READERS = ("parser", "mcq_reward")


def read_choice(text: str, settings: RunSettings) -> str | None:
    """The upper-case letter of an MCQ reply as ``settings`` read it: in the boxed format under
    ``eval.boxed_reader`` "mcq_reward" as the authors' validation does (their GRPO reward's reader), else by
    ``eval.parser``."""
    check_choice("eval.boxed_reader", settings.eval.boxed_reader, BOXED_READERS)
    if settings.prompt_format == prompts.BOXED_FORMAT and settings.eval.boxed_reader == "mcq_reward":
        letter = boxed_choice(text or "", forms="pattern", scope="after_think")
        return letter.upper() if letter else None
    return parse_choice(text, strict=settings.eval.parser == "strict")


def cached_backends(spec: str, judge: str | None, store: CallCache,
                    settings: RunSettings) -> tuple[CachedBackend, CachedBackend | None]:
    """The answering model and (when given) the judge, both answering through ``store``.

    The judge's calls go out as the model's do: the authors asked their judge through the same client, so
    ``eval.api_sampling`` covers both.
    """
    asked = settings.eval
    api = {"concurrency": asked.concurrency, "api_sampling": asked.api_sampling,
           "reasoning_tokens": asked.reasoning_tokens}
    answerer = CachedBackend(make_backend(spec, batch_size=asked.batch_size, dtype=settings.dtype, **api), store)
    grader = CachedBackend(make_backend(judge, **api), store) if judge else None
    return answerer, grader


def _ask(backend: CachedBackend, requests: list[ChatRequest], data: PersonaMemData, tasks: list[Task],
         settings: RunSettings) -> tuple[list, dict[int, BackendError]]:
    """The answers (``None`` where a call ran out of retries) and those calls' errors by index; with
    ``fit_history`` on_error, a row refused as too long is cut and asked once more.

    Answers that arrived before a refusal are in the cache, so asking the whole chunk again pays only for
    the cut row and for what had not been sent.
    """
    refitted: set[str] = set()
    while True:
        try:
            return generate_some(backend, requests)
        except ContextTooLongError as err:
            limit = _refit_limit(err, settings)
            again = [tag for tag in err.tags if tag in refitted]
            if settings.eval.fit_history != "on_error" or not all(err.tags) or again or limit is None:
                if again:  # name a row refused a second time; its size is counted anew
                    err.tag, err.tokens = again[0], None
                raise _too_long(err, backend, data, tasks, requests, settings, bool(again)) from None
            refitted.update(err.tags)
            counter = _Tokens().messages
            for i, task in enumerate(tasks):
                if requests[i].tag in err.tags:
                    task.messages, task.dropped = fit_history(task.messages, counter, limit)
                    task.retried_shorter = True
                    requests[i] = replace(requests[i], messages=task.messages)


def _refit_limit(err: ContextTooLongError, settings: RunSettings) -> int | None:
    """The prompt size to cut a refused row to: eval.max_prompt_tokens, else the window the server named less the
    reply cap (our token counts only approximate the server's)."""
    if settings.eval.max_prompt_tokens is not None:
        return settings.eval.max_prompt_tokens
    return err.limit - settings.sampling.max_tokens if err.limit else None


def _too_long(err: ContextTooLongError, backend: CachedBackend, data: PersonaMemData, tasks: list[Task],
              requests: list[ChatRequest], settings: RunSettings, refitted: bool) -> ContextTooLongError:
    """The refusal, with the row, its size and what to change."""
    task = next((t for t, r in zip(tasks, requests) if r.tag == err.tag), tasks[0])
    tokens = err.tokens or _Tokens().messages(task.messages)
    if refitted:
        advice = (f"It was refused again after {len(task.dropped)} history messages were dropped to fit "
                  f"{_refit_limit(err, settings)} tokens; lower eval.max_prompt_tokens.")
    elif settings.eval.fit_history == "on_error":
        advice = "Set eval.max_prompt_tokens to cut such a history after a refusal (eval.fit_history on_error)."
    else:
        advice = ("Use a model with a longer context, --size 32k, the memory agent (notebook 05), or "
                  "eval.max_prompt_tokens to cut the history.")
    return ContextTooLongError(
        f"{data.table} row {task.row} ({task.question_id}), {settings.size} history: the prompt is about {tokens} "
        f"tokens, more than {backend.spec} accepts{f' ({err.limit})' if err.limit else ''}. {advice}\n{err}",
        tokens=tokens, limit=err.limit, tag=err.tag)


def paid(backend: CachedBackend, response: ChatResponse | None) -> float:
    """What one call cost: nothing when it came from the cache (or never came), else its tokens at the
    backend's prices, cached input at the cached rate."""
    if response is None or response.cached:
        return 0.0
    return call_cost(backend.priced_as, response.tokens_in, response.tokens_out, response.cached_tokens_in)


def score_tasks(data: PersonaMemData, chunk: list[Task], model: str, judge: str | None, answerer: CachedBackend,
                grader: CachedBackend | None, settings: RunSettings, run: EvalRun) -> list[dict]:
    """One finished result row per task of ``chunk``: ask the model, grade each answer (read its letter, or ask
    the judge), write the row. The tasks arrive planned (:func:`plan_tasks`) with their context in place: the
    history, retrieved windows, or a memory agent's notes (``memory.run``).

    A task whose answer or any judge call ran out of retries gets no row: it goes to ``run.failed``
    (what its successful calls cost still counts towards the budget), and the other tasks are scored.
    """
    answers, failed = ask_tasks(answerer, data, chunk, settings)
    judged = judge_answers(grader, data, chunk, answers, failed, settings) if settings.mode == "open" else None
    rows = []
    for i, (task, answer) in enumerate(zip(chunk, answers)):
        verdicts = judged[i] if judged else []
        judge_cost = sum(paid(grader, v) for v in verdicts)
        cost = paid(answerer, answer) + judge_cost
        run.spent_usd += cost
        if i in failed:
            run.failed.append(FailedRow(task.row, task.question_id, task.variant, str(failed[i])))
            continue
        grade = (grade_choice(data, task, answer.text, settings) if settings.mode == "mcq"
                 else grade_open(verdicts, judge, judge_cost, settings))
        rows.append({**result_row(data, task, model, answer, cost, settings), **grade})
    return rows


def ask_tasks(answerer: CachedBackend, data: PersonaMemData, tasks: list[Task],
              settings: RunSettings) -> tuple[list, dict[int, BackendError]]:
    """The model's answers to ``tasks`` (``None`` where a call ran out of retries) and those calls' errors."""
    requests = [ChatRequest(t.messages, settings.sampling, f"{data.table} row {t.row}") for t in tasks]
    return _ask(answerer, requests, data, tasks, settings)


def judge_answers(grader: CachedBackend, data: PersonaMemData, tasks: list[Task], answers: list,
                  failed: dict[int, BackendError], settings: RunSettings) -> list[list]:
    """The judge's verdicts on each open-ended answer (``eval.judge_calls`` each); a task whose judging ran out of
    retries joins ``failed``, and an unanswered task is not judged."""
    q = data.questions
    grading, owners = [], []
    for i, (task, answer) in enumerate(zip(tasks, answers)):
        if i in failed:
            continue
        asked = judge_requests(q["query_text"].iat[task.row], q["preference"].iat[task.row], answer.text,
                               settings.eval.judge_calls, settings.judge_sampling, f"{data.table} row {task.row}",
                               settings.eval.judge_rubric)
        grading += asked
        owners += [i] * len(asked)
    verdicts, judge_failed = generate_some(grader, grading)
    for position, err in judge_failed.items():
        failed.setdefault(owners[position], err)
    judged: list[list] = [[] for _ in tasks]
    for owner, verdict in zip(owners, verdicts):
        judged[owner].append(verdict)
    return judged


def grade_choice(data: PersonaMemData, task: Task, text: str, settings: RunSettings) -> dict:
    """A multiple-choice answer's columns: the letter read (:func:`read_choice`, then the nearest option by
    embedding where ``eval.no_letter_fallback`` says so), whether it is valid and whether it is right."""
    q = data.questions
    parsed = read_choice(text, settings)
    fallback = (parsed is None and settings.eval.no_letter_fallback == "nearest_option"
                and settings.prompt_format == prompts.BOXED_FORMAT and bool(text))
    if fallback:
        options = [q["correct_answer"].iat[task.row], *q["incorrect_answers"].iat[task.row]]
        parsed = nearest_option(answer_part(text), [options[i] for i in task.order])
    valid = parsed is not None and parsed in prompts.LETTERS[:task.n_options]
    correct = bool(valid and parsed == task.gold_letter)
    return {"letter_by_embedding": fallback, "order": task.order, "gold_letter": task.gold_letter, "parsed": parsed,
            "valid": valid, "correct": correct, "score": float(correct)}


def grade_open(verdicts: list[ChatResponse], judge: str | None, judge_cost: float, settings: RunSettings) -> dict:
    """An open-ended answer's columns: the judge's replies, the score read from them
    (``eval.judge_score_reader``), their spread, and what judging took."""
    verdict = read_verdict(verdicts, settings.eval.judge_score_reader)
    return {"judge": judge, "judge_responses": [v.text for v in verdicts], "judge_scores": verdict.scores,
            "valid": verdict.valid, "score": verdict.score, "judge_sd": verdict.spread,
            "judge_tokens_in": sum(v.tokens_in for v in verdicts),
            "judge_tokens_out": sum(v.tokens_out for v in verdicts),
            "judge_cached_tokens_in": sum(v.cached_tokens_in for v in verdicts), "judge_cost_usd": judge_cost}


def result_row(data: PersonaMemData, task: Task, model: str, answer: ChatResponse, cost: float,
               settings: RunSettings) -> dict:
    """The columns every result row has: its key, where it came from, the row's facts, the reply and what the
    row's calls cost (``cost_usd``, the judge's included)."""
    row = {"question_id": task.question_id, "model": model, "mode": settings.mode, "size": settings.size,
           "variant": task.variant, "row": task.row, "split": data.split, "modality": data.modality,
           "context": split_context(model)[0], "prompt_format": settings.prompt_format or prompts.CHAT_FORMAT,
           "profile": settings.profile, "protocol": settings.protocol, "data_source": describe_source(data.source),
           **row_facts(data.questions, task.row, settings.size),
           "response": answer.text, "finish_reason": answer.finish_reason, "tokens_in": answer.tokens_in,
           "cached_tokens_in": answer.cached_tokens_in, "tokens_out": answer.tokens_out,
           "latency_s": round(answer.latency_s, 4), "cost_usd": cost,
           "cached": answer.cached, "served_model": answer.served_model,
           "dropped_messages": len(task.dropped), "retried_shorter": task.retried_shorter}
    if task.rag_windows is not None:
        row["rag_windows"] = task.rag_windows
        row["retrieval"] = settings.retrieval_tag(model)
    return row
