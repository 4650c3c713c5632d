"""Run the memory agent over benchmark rows and write results in the evaluation format.

The notes are built first (batched across users, every call through the shared cache), then each
question is answered from its notes with the harness's own prompts, parsing and judges, so the
breakdowns and figures treat the agent as one more model (``memory:<spec>``). Result rows gain the
final notes and the token accounting; each trajectory (the notes after every chunk) is stored once
in ``trajectories/<results file name>`` next to the results file (a subfolder, so globs over result
files never pick trajectories up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..backends import ChatRequest, make_backend
from ..backends.hf_local import text_messages
from ..config import MemorySettings
from ..data.loader import PersonaMemData
from ..evaluate.cache import CachedBackend, CallCache
from ..evaluate.results import ResultsFile, read_results
from ..evaluate.runner import EvalRun, RunSettings, score_tasks, default_cache_path, default_results_path
from ..evaluate.tasks import Task, build_task, rows_with_history, split_context
from ..prompts import memory_context
from ..train.rewards import is_privacy_row, leaks, protected_detail
from .agent import Chunker, Trajectory, run_updates

TRAJECTORY_FOLDER = "trajectories"


def memory_spec(backend_spec: str, show_query: bool = False) -> str:
    """The model label of the agent's results: ``memory:hf:tiny`` or ``memory+query:hf:tiny``."""
    return f"{'memory+query' if show_query else 'memory'}:{backend_spec}"


def tokenizer_for_spec(spec: str):
    """The tokenizer that counts and cuts chunks for a backend spec.

    Local checkpoints and vLLM models use their own; API models (whose tokenizers are not public)
    fall back to the Qwen3 tokenizer, so chunk sizes are then Qwen3 token counts.
    """
    from transformers import AutoTokenizer

    from ..backends import split_spec
    from ..models import load_tokenizer

    engine, rest = split_spec(spec)
    if engine == "hf":
        return load_tokenizer("tiny") if rest == "tiny" else AutoTokenizer.from_pretrained(rest)
    if engine == "vllm":
        return AutoTokenizer.from_pretrained(rest)
    served = rest.rpartition("@")[0] if engine == "openai" and "@http" in rest else rest
    if engine == "openai" and Path(served).is_dir():  # a local checkpoint behind transformers serve or vllm serve
        return AutoTokenizer.from_pretrained(served)
    return load_tokenizer("tiny")


def trajectory_path(results_path: str | Path) -> Path:
    path = Path(results_path)
    return path.parent / TRAJECTORY_FOLDER / path.name


def read_trajectories(results_path: str | Path) -> dict[str, Trajectory]:
    """Every stored trajectory of a results file, by memory key."""
    path = trajectory_path(results_path)
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    found = {}
    for number, line in enumerate(text[:text.rfind("\n") + 1].splitlines(), start=1):  # a torn last line is skipped
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}: line {number} is not valid JSON") from None
            found[record["memory_key"]] = Trajectory.from_record(record)
    return found


@dataclass
class MemoryRun(EvalRun):
    trajectories: dict[str, Trajectory] | None = None
    new_update_calls: int = 0


def backend_rewriter(backend, sampling, progress: bool = False):
    """A rewriter (see :func:`agent.run_updates`) that sends each step's batch through a chat backend."""
    def rewrite(conversations: list[list[dict]], tags: list[str]):
        return backend.generate([ChatRequest(c, sampling, tag) for c, tag in zip(conversations, tags)],
                                progress=progress)
    return rewrite


class _FullHistoryTokens:
    """Tokens the long-context model would read for a row: the whole history plus the query part."""

    def __init__(self, data: PersonaMemData, tokenizer, size: str):
        self.data, self.tokenizer, self.size = data, tokenizer, size
        self._history: dict[str, int] = {}

    def template(self, messages: list[dict]) -> int:
        ids = self.tokenizer.apply_chat_template(text_messages(messages), tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def __call__(self, row: int, answer_tokens_in: int, memory: str) -> int:
        link = self.data.questions[self.data.link_column(self.size)].iat[row]
        if link not in self._history:
            self._history[link] = self.template(self.data.history(row, self.size, keep_persona=True))
        return self._history[link] + answer_tokens_in - self.template([memory_context(memory)])


def memory_columns(trajectory: Trajectory, shared_by: int, q: pd.DataFrame, row: int) -> dict:
    """What a memory result row adds: the notes, their cost, and whether they kept private data."""
    steps = trajectory.steps
    leak = ever = None
    if is_privacy_row(q["pref_type"].iat[row], q["sensitive_info"].iat[row]):
        prev = q["prev_pref"].iat[row]
        detail = protected_detail(q["pref_type"].iat[row], q["preference"].iat[row],
                                  "" if pd.isna(prev) else str(prev))
        leak = leaks(trajectory.memory, detail)
        ever = any(leaks(step.memory, detail) for step in steps)
    return {"memory_key": trajectory.key, "memory": trajectory.memory,
            "memory_tokens": steps[-1].tokens_out if steps else 0, "chunks": len(steps),
            "capped_updates": sum(s.capped for s in steps), "omitted_tokens": trajectory.chunking.omitted_tokens,
            "update_tokens_in": sum(s.tokens_in for s in steps), "update_tokens_out": sum(s.tokens_out for s in steps),
            "shared_by": shared_by, "memory_leak": leak, "memory_ever_leaked": ever}


def run_memory(data: PersonaMemData, model: str, settings: RunSettings, memory: MemorySettings, *,
               judge: str | None = None, out: str | Path | None = None, cache: CallCache | str | Path | None = None,
               show_query: bool | None = None, users_per_batch: int = 64, batch_size: int = 8,
               progress: bool = True) -> MemoryRun:
    """Build notes for each row's history (chunk by chunk), answer from them, and save the results.

    ``model`` is a backend spec (``hf:tiny``, ``vllm:...``, ``openai:NAME@URL``). Rows sharing
    notes are processed ``users_per_batch`` notes at a time; an interrupted run resumes from the
    results file and the call cache.
    """
    if settings.mode == "open" and not judge:
        raise ValueError("open-ended evaluation needs a judge spec (for example the same model, or openai:gpt-4.1)")
    show_query = memory.show_query_in_updates if show_query is None else show_query
    label = memory_spec(model, show_query)
    if split_context(model)[0] != "full":
        raise ValueError(f"{model!r}: give the memory agent a plain backend spec, without a context prefix")
    path = Path(out) if out else default_results_path(data, label, settings.mode, settings.size)
    rows = rows_with_history(data, settings.size, settings.limit)
    variants = range(settings.variants if settings.mode == "mcq" else 1)
    tasks = [build_task(data, row, settings.mode, settings.size, "none", v) for row in rows for v in variants]
    backend = make_backend(model, concurrency=settings.concurrency, batch_size=batch_size)  # fails early without a GPU
    tokenizer = tokenizer_for_spec(model)
    chunker = Chunker(data, tokenizer, memory, settings.size)
    jobs = {task.row: chunker.job(task.row, show_query) for task in tasks}
    shared_by: dict[str, int] = {}
    for row in rows:
        shared_by[jobs[row].key] = shared_by.get(jobs[row].key, 0) + 1

    own_cache = not isinstance(cache, CallCache)
    store = cache if isinstance(cache, CallCache) else CallCache(cache or default_cache_path())
    answerer = CachedBackend(backend, store)
    grader = CachedBackend(make_backend(judge, concurrency=settings.concurrency), store) if judge else None
    update_sampling = replace(settings.sampling, max_tokens=memory.memory_tokens)
    rewrite = backend_rewriter(answerer, update_sampling)
    full_tokens = _FullHistoryTokens(data, tokenizer, settings.size)
    run = MemoryRun(path=path, results=pd.DataFrame(), trajectories={})
    results = ResultsFile(path)
    saved = set(read_trajectories(path))
    todo = [t for t in tasks if (t.question_id, label, settings.mode, settings.size, t.variant) not in results]
    keys = list(dict.fromkeys(jobs[t.row].key for t in todo))
    unique_jobs = {job.key: job for job in jobs.values()}
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"memory {settings.mode} {model[:40]}",
               disable=not progress)
    try:
        trajectory_path(path).parent.mkdir(parents=True, exist_ok=True)
        with trajectory_path(path).open("a", encoding="utf-8") as trajectory_file:
            for start in range(0, len(keys), users_per_batch):
                group = set(keys[start:start + users_per_batch])
                group_jobs = [unique_jobs[key] for key in keys[start:start + users_per_batch]]
                calls_before = answerer.new_calls
                trajectories = run_updates(group_jobs, rewrite, memory, progress=progress)
                run.new_update_calls += answerer.new_calls - calls_before
                for key, trajectory in trajectories.items():
                    if key not in saved:
                        trajectory_file.write(json.dumps(trajectory.to_record(), ensure_ascii=False) + "\n")
                        trajectory_file.flush()
                        saved.add(key)
                chunk = [_with_memory(t, trajectories[jobs[t.row].key].memory) for t in todo if jobs[t.row].key in group]
                for task, result in zip(chunk, score_tasks(data, chunk, label, judge, answerer, grader, settings, run)):
                    trajectory = trajectories[jobs[task.row].key]
                    result.update(memory_columns(trajectory, shared_by[trajectory.key], data.questions, task.row))
                    result["full_history_tokens"] = full_tokens(task.row, result["tokens_in"], trajectory.memory)
                    results.append(result)
                bar.update(len(chunk))
    finally:
        bar.close()
        results.close()
        if own_cache:
            store.close()
    run.new_calls, run.new_judge_calls = answerer.new_calls, grader.new_calls if grader else 0
    run.results = read_results(path) if path.exists() else pd.DataFrame()
    run.trajectories = read_trajectories(path)  # this run's and those of rows finished earlier
    return run


def _with_memory(task: Task, notes: str) -> Task:
    """The answer prompt: the notes in place of the history, then the harness's query (and options)."""
    return replace(task, messages=[memory_context(notes), *task.messages])


def reanswer(data: PersonaMemData, row: int, notes: str, model: str, settings: RunSettings, *,
             judge: str | None = None, cache: CallCache | str | Path | None = None) -> dict:
    """Answer one row from notes you supply (for example notes you edited by hand); nothing is saved."""
    store = cache if isinstance(cache, CallCache) else CallCache(cache or default_cache_path())
    try:
        answerer = CachedBackend(make_backend(model, concurrency=settings.concurrency), store)
        grader = CachedBackend(make_backend(judge, concurrency=settings.concurrency), store) if judge else None
        task = _with_memory(build_task(data, row, settings.mode, settings.size, "none"), notes)
        scratch = EvalRun(path=Path("unsaved"), results=pd.DataFrame())
        result = score_tasks(data, [task], memory_spec(model), judge, answerer, grader, settings, scratch)[0]
    finally:
        if not isinstance(cache, CallCache):
            store.close()
    return {"memory": notes, **result}
