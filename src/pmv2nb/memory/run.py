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
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..answers import is_privacy_row, leaks, protected_detail, reward_labels
from ..backends import BackendError, ChatRequest
from ..config import MemorySettings, Profile, TrainPromptSettings, check_choice
from ..messages import content_text
from ..data.loader import PersonaMemData
from ..evaluate.cache import CallCache, opened_cache
from ..evaluate.results import ResultsFile, read_results
from ..evaluate.runner import (
    EvalRun, FailedRow, RunSettings, cached_backends, results_file_name, score_tasks, settings_for,
)
from ..evaluate.tasks import Task, build_task, resolve_format, rows_with_history, split_context
from ..models import chat_template_length, tokenizer_for
from ..prompts import BOXED_FORMAT, CHAT_FORMAT, boxed_system, memory_context
from .agent import Chunker, Trajectory, run_updates

TRAJECTORY_FOLDER = "trajectories"
ANSWER_CAPS = ("reply", "memory")


UPDATE_QUERY_LABELS = {"none": "memory", "query": "memory+query", "query_options": "memory+options"}


def update_query_text(data: PersonaMemData, row: int, mode: str, size: str, update_query: str,
                      style: TrainPromptSettings | None = None) -> str | None:
    """What each update sees of row's question: nothing, the query, or the query with options and answer format
    (the final turn of the boxed format, shaped by ``style``, the ``train_prompt`` settings)."""
    if update_query not in UPDATE_QUERY_LABELS:
        raise ValueError(f"memory.update_query must be one of {tuple(UPDATE_QUERY_LABELS)}, got {update_query!r}")
    if update_query == "none":
        return None
    if update_query == "query":
        return data.questions["query_text"].iat[row]
    task = build_task(data, row, mode, size, "none", 0, BOXED_FORMAT, style=style)
    return content_text(task.messages[-1]["content"])


ANSWER_FORMATS = ("model", "boxed")


def answer_format(memory: MemorySettings, prompt_format: str | None) -> str | None:
    """The format the agent answers in: the training (boxed) format under ``memory.answer_format`` "boxed" (the
    authors' agent always answers with its boxed template, a base model too), else ``prompt_format``."""
    check_choice("memory.answer_format", memory.answer_format, ANSWER_FORMATS)
    return BOXED_FORMAT if memory.answer_format == "boxed" else prompt_format


def agent_settings(settings: RunSettings, memory: MemorySettings) -> RunSettings:
    """The run's sampling as the agent uses it: ``memory.temperature`` / ``top_p`` where set, and the final
    answer capped as ``memory.answer_cap`` says (the memory rewrites always take ``memory.memory_tokens``)."""
    check_choice("memory.answer_cap", memory.answer_cap, ANSWER_CAPS)
    sampling = settings.sampling
    if memory.temperature is not None:
        sampling = replace(sampling, temperature=memory.temperature)
    if memory.top_p is not None:
        sampling = replace(sampling, top_p=memory.top_p)
    if memory.answer_cap == "memory":
        sampling = replace(sampling, max_tokens=memory.memory_tokens)
    return replace(settings, sampling=sampling)


def agent_run_settings(model: str, settings: RunSettings, memory: MemorySettings) -> RunSettings:
    """The settings the agent is asked with: its answer format (:func:`answer_format`), resolved for ``model``
    (:func:`~pmv2nb.evaluate.runner.settings_for`), then its sampling (:func:`agent_settings`)."""
    settings = replace(settings, prompt_format=answer_format(memory, settings.prompt_format))
    return agent_settings(settings_for(model, settings), memory)


def memory_spec(backend_spec: str, update_query: str = "none") -> str:
    """The model label of the agent's results: ``memory:hf:tiny``, ``memory+query:...`` or ``memory+options:...``."""
    return f"{UPDATE_QUERY_LABELS[update_query]}:{backend_spec}"


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

    def __call__(self, row: int, answer_tokens_in: int, memory: str) -> int:
        link = self.data.questions[self.data.link_column(self.size)].iat[row]
        if link not in self._history:
            history = self.data.history(row, self.size, keep_persona=True)
            self._history[link] = chat_template_length(self.tokenizer, history, add_generation_prompt=False)
        notes = chat_template_length(self.tokenizer, [memory_context(memory)], add_generation_prompt=False)
        return self._history[link] + answer_tokens_in - notes


def memory_columns(trajectory: Trajectory, shared_by: int, labels: dict) -> dict:
    """What a memory result row adds: the notes, their cost, and whether they kept private data.

    ``labels`` are the row's :func:`~pmv2nb.answers.reward_labels`, the same the leak reward reads.
    """
    steps = trajectory.steps
    leak = ever = None
    if is_privacy_row(labels["pref_type"], labels["sensitive_info"]):
        detail = protected_detail(labels["pref_type"], labels["preference"], labels["prev_pref"])
        leak = leaks(trajectory.memory, detail)
        ever = any(leaks(step.memory, detail) for step in steps)
    return {"memory_key": trajectory.key, "memory": trajectory.memory,
            "memory_tokens": steps[-1].tokens_out if steps else 0, "chunks": len(steps),
            "capped_updates": sum(s.capped for s in steps), "omitted_tokens": trajectory.chunking.omitted_tokens,
            "update_tokens_in": sum(s.tokens_in for s in steps), "update_tokens_out": sum(s.tokens_out for s in steps),
            "shared_by": shared_by, "memory_leak": leak, "memory_ever_leaked": ever}


def run_memory(data: PersonaMemData, model: str, settings: RunSettings, memory: MemorySettings, *,
               judge: str | None = None, out: str | Path | None = None, cache: CallCache | str | Path | None = None,
               update_query: str | None = None, progress: bool = True) -> MemoryRun:
    """Build notes for each row's history (chunk by chunk), answer from them, and save the results.

    The evaluation's steps with one added: plan the questions without their history, write the notes
    (:class:`_NoteTaker`), put the notes where the history was (:func:`answer_from_notes`), then ask, grade and
    write as every run does (:func:`~pmv2nb.evaluate.runner.score_tasks`). ``model`` is a backend spec
    (``hf:tiny``, ``vllm:...``, ``openai:NAME@URL``). Rows sharing notes are processed
    ``memory.users_per_batch`` notes at a time; an interrupted run resumes from the results file and the
    call cache. ``update_query`` (default ``memory.update_query``) is what each update sees of the question.
    """
    if settings.mode == "open" and not judge:
        raise ValueError("open-ended evaluation needs a judge spec (for example the same model, or openai:gpt-4.1)")
    if split_context(model)[0] != "full":
        raise ValueError(f"{model!r}: give the memory agent a plain backend spec, without a context prefix")
    update_query = update_query or memory.update_query
    label = memory_spec(model, update_query)
    settings = agent_run_settings(model, settings, memory)
    path = Path(out) if out else settings.results_folder() / results_file_name(data, label, settings)
    rows = rows_with_history(data, settings.size, settings.rows)
    variants = range(settings.variants if settings.mode == "mcq" else 1)
    tasks = [build_task(data, row, settings.mode, settings.size, "none", v, settings.prompt_format,
                        settings.eval.recall_sentence, style=settings.train_prompt)
             for row in rows for v in variants]
    run = MemoryRun(path=path, results=pd.DataFrame())
    with opened_cache(cache) as store, ResultsFile(path) as results:
        # the backends first: a vllm: spec without a GPU fails here, before any tokenizer download
        answerer, grader = cached_backends(model, judge, store, settings)
        todo = [t for t in tasks if settings.result_key(label, t) not in results]
        notes = _NoteTaker(data, model, settings, memory, update_query, answerer, path, rows, progress)
        with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"memory {settings.mode} {model[:40]}",
                  disable=not progress) as bar:
            for group in notes.groups(todo, memory.users_per_batch):
                written = notes.write(group, run)
                chunk = [answer_from_notes(t, written[t.row].memory, settings.prompt_format)
                         for t in group if not written[t.row].error]
                for result in score_tasks(data, chunk, label, judge, answerer, grader, settings, run):
                    results.append(notes.columns(result, written))
                bar.update(len(group))
        run.new_calls, run.new_judge_calls = answerer.new_calls, grader.new_calls if grader else 0
    run.results = read_results(path) if path.exists() else pd.DataFrame()
    run.trajectories = read_trajectories(path)  # this run's and those of rows finished earlier
    if run.failed and progress:
        print(run.failure_summary(), file=sys.stderr)
    return run


class _NoteTaker:
    """The memory agent's context step: the notes of each history a run's questions need, written a group of
    histories at a time, each finished trajectory saved once, and the columns a result row gains from them."""

    def __init__(self, data: PersonaMemData, model: str, settings: RunSettings, memory: MemorySettings,
                 update_query: str, answerer, results_path: Path, rows: list[int], progress: bool):
        self.data, self.settings, self.memory, self.answerer, self.progress = data, settings, memory, answerer, progress
        tokenizer = tokenizer_for(model)  # an API model's is not public: its chunks are cut by Qwen3 token counts
        chunker = Chunker(data, tokenizer, memory, settings.size)
        self.jobs = {row: chunker.job(row, update_query_text(data, row, settings.mode, settings.size, update_query,
                                                             settings.train_prompt))
                     for row in rows}
        self.shared_by = Counter(job.key for job in self.jobs.values())
        self.rewrite = backend_rewriter(answerer, replace(settings.sampling, max_tokens=memory.memory_tokens))
        self.full_tokens = _FullHistoryTokens(data, tokenizer, settings.size)
        self.saved_path = trajectory_path(results_path)
        self.saved = set(read_trajectories(results_path))

    def groups(self, todo: list[Task], users_per_batch: int) -> Iterator[list[Task]]:
        """The tasks in groups that share at most ``users_per_batch`` notes, so the questions answered from the
        same notes go out together (a prompt cache keeps the notes)."""
        keys = list(dict.fromkeys(self.jobs[t.row].key for t in todo))
        for start in range(0, len(keys), users_per_batch):
            yield [t for key in keys[start:start + users_per_batch] for t in todo if self.jobs[t.row].key == key]

    def write(self, group: list[Task], run: MemoryRun) -> dict[int, Trajectory]:
        """The notes (trajectory) of each row of ``group``, new ones saved; a task whose notes stopped at a
        failed update is named in ``run.failed`` (its finished updates are cached)."""
        needed = list(dict.fromkeys(self.jobs[t.row].key for t in group))
        calls_before = self.answerer.new_calls
        trajectories = run_updates([self.jobs[t.row] for t in group], self.rewrite, self.memory,
                                   progress=self.progress)
        run.new_update_calls += self.answerer.new_calls - calls_before
        self.saved_path.parent.mkdir(parents=True, exist_ok=True)
        with self.saved_path.open("a", encoding="utf-8") as saved:
            for key in needed:
                if key not in self.saved and not trajectories[key].error:
                    saved.write(json.dumps(trajectories[key].to_record(), ensure_ascii=False) + "\n")
                    saved.flush()
                    self.saved.add(key)
        written = {t.row: trajectories[self.jobs[t.row].key] for t in group}
        run.failed += [FailedRow(t.row, t.question_id, t.variant, written[t.row].error)
                       for t in group if written[t.row].error]
        return written

    def columns(self, result: dict, written: dict[int, Trajectory]) -> dict:
        """A scored row with the notes it was answered from and their token accounting."""
        trajectory = written[result["row"]]
        labels = reward_labels(self.data, result["row"], self.settings.mode)
        result.update(memory_columns(trajectory, self.shared_by[trajectory.key], labels))
        result["full_history_tokens"] = self.full_tokens(result["row"], result["tokens_in"], trajectory.memory)
        return result


def run_profile_memory(data: PersonaMemData, profile: Profile, model: str, mode: str, *,
                       mcq_rows: int | None = None, update_query: str | None = None, judge: str | None = None,
                       results_dir: str | Path | None = None, cache: CallCache | str | Path | None = None,
                       prompt_format: str | None = None, progress: bool = True) -> MemoryRun:
    """``run_memory`` with the profile's settings (:func:`~pmv2nb.evaluate.suite.profile_settings`), writing into
    ``results_dir`` (default: the profile's ``eval_dir``) through ``cache`` (default: its ``cache_path``).

    What the notebooks call: the file name follows ``pmv2nb eval``'s convention, so the suite's results and
    the agent's sit side by side. ``mcq_rows`` narrows a multiple-choice run (None: ``eval.mcq_rows``).
    """
    from ..evaluate.suite import profile_settings

    asked_in = answer_format(profile.memory, resolve_format(model, prompt_format))
    settings = profile_settings(profile, mode, "32k", asked_in, mcq_rows, results_dir)
    return run_memory(data, model, settings, profile.memory, judge=judge if mode == "open" else None,
                      cache=cache or profile.cache_path(), update_query=update_query, progress=progress)


def answer_from_notes(task: Task, notes: str, prompt_format: str = CHAT_FORMAT) -> Task:
    """The answer prompt: the notes in place of the history, then the query (and options) in ``prompt_format``.

    In the boxed (training) format the notes join the system instruction, exactly as memory RL trains it.
    """
    if prompt_format == BOXED_FORMAT:
        return replace(task, messages=[boxed_system(notes), *task.messages[1:]])
    return replace(task, messages=[memory_context(notes), *task.messages])


def reanswer(data: PersonaMemData, row: int, notes: str, model: str, settings: RunSettings, memory: MemorySettings, *,
             judge: str | None = None, cache: CallCache | str | Path | None = None) -> dict:
    """Answer one row from notes you supply (for example notes you edited by hand); nothing is saved.

    Resolved as a run is (:func:`run_memory`), so the answer is asked, sampled and capped the same way."""
    settings = agent_run_settings(model, settings, memory)
    with opened_cache(cache) as store:
        answerer, grader = cached_backends(model, judge, store, settings)
        task = answer_from_notes(build_task(data, row, settings.mode, settings.size, "none", 0, settings.prompt_format,
                                       settings.eval.recall_sentence, style=settings.train_prompt),
                            notes, settings.prompt_format)
        scratch = EvalRun(path=Path("unsaved"), results=pd.DataFrame())
        scored = score_tasks(data, [task], memory_spec(model), judge, answerer, grader, settings, scratch)
    if scratch.failed:  # one row and nothing saved: a failure is the whole answer
        raise BackendError(scratch.failed[0].error)
    return {"memory": notes, **scored[0]}
