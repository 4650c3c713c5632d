"""The memory loop: notes rewritten after every chunk, batched across users, then an answer from the notes alone.

Every user (a history, or a history plus query in the non-causal variant) starts from the
profile's initial notes. At step ``i`` all users that still have an ``i``-th chunk send their
rewrite requests together, so a serving engine sees one large batch per step rather than one
request at a time. Each rewrite is capped at ``memory_tokens`` new tokens; a rewrite that was cut
is flagged. In the causal default the query is never shown during updates, so every question of a
persona shares one trajectory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from ..answers import strip_thinking
from ..backends.base import RequestsFailedError
from ..config import MemorySettings
from ..data.loader import PersonaMemData
from ..prompts import memory_update_messages
from .chunking import Chunking, chunk_history


def notes_from_reply(text: str, raw: bool = False) -> str:
    """The notes in a rewrite: any thinking removed; an unfinished think block leaves nothing.

    ``raw`` keeps the reply as it is, thinking included (``memory.raw_notes``, the authors' code).
    """
    if raw:
        return text.strip()
    # blocks vanish without a gap, and a stray closing tag stays: notes have always been read this way
    return strip_thinking(text, gap="", orphan_close=False).strip()


@dataclass
class Rewrite:
    """One memory update: the notes it produced and what it cost."""

    memory: str
    tokens_in: int
    tokens_out: int
    capped: bool  # the rewrite hit the memory cap and was cut
    kept_previous: bool = False  # the rewrite held no notes (e.g. only thinking), so the old ones were kept
    reply: Any = field(default=None, repr=False)  # the rewriter's own reply (the trainer reads token ids); never saved

    def to_record(self) -> dict:
        return {"memory": self.memory, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "capped": self.capped, "kept_previous": self.kept_previous}


@dataclass
class MemoryJob:
    """One user to build notes for: a key, the chunks of their history, and the query when it is shown."""

    key: str
    link: str
    chunking: Chunking
    query: str | None = None


@dataclass
class Trajectory:
    """The notes after every chunk for one job."""

    key: str
    link: str
    query: str | None
    initial: str
    chunking: Chunking
    steps: list[Rewrite] = field(default_factory=list)
    error: str = ""  # set when an update ran out of retries: the notes stop there and are not usable

    @property
    def memory(self) -> str:
        return self.steps[-1].memory if self.steps else self.initial

    @property
    def memories(self) -> list[str]:
        """The notes before the first chunk and after each one."""
        return [self.initial] + [step.memory for step in self.steps]

    def to_record(self) -> dict:
        c = self.chunking
        return {"memory_key": self.key, "link": self.link, "query": self.query, "initial": self.initial,
                "history_tokens": c.history_tokens, "omitted_tokens": c.omitted_tokens,
                "chunk_tokens": list(c.chunk_tokens), "steps": [s.to_record() for s in self.steps]}

    @classmethod
    def from_record(cls, record: dict) -> "Trajectory":
        chunking = Chunking(chunks=(), chunk_tokens=tuple(record["chunk_tokens"]),
                            history_tokens=record["history_tokens"], omitted_tokens=record["omitted_tokens"])
        return cls(key=record["memory_key"], link=record["link"], query=record["query"], initial=record["initial"],
                   chunking=chunking, steps=[Rewrite(**s) for s in record["steps"]])


# A rewriter answers a batch of update conversations; each reply needs text, tokens_in, tokens_out and
# finish_reason, as a backend's ChatResponse and the trainer's Completion (which also holds token ids) have.
Rewriter = Callable[[list[list[dict]], list[str]], Sequence[Any]]


def memory_key(link: str, query: str | None) -> str:
    """Causal notes depend on the history only; the query-in-updates variant also on the query."""
    if query is None:
        return link
    return f"{link}#q{hashlib.sha256(query.encode('utf-8')).hexdigest()[:10]}"


class Chunker:
    """Chunks each history once per tokenizer and settings (every question of a persona shares them)."""

    def __init__(self, data: PersonaMemData, tokenizer, settings: MemorySettings, size: str = "32k"):
        self.data, self.tokenizer, self.settings, self.size = data, tokenizer, settings, size
        self._done: dict[str, Chunking] = {}

    def link(self, row: int) -> str:
        return self.data.questions[self.data.link_column(self.size)].iat[row]

    def __call__(self, row: int) -> Chunking:
        link = self.link(row)
        if link not in self._done:
            history = self.data.history(row, self.size, keep_persona=False, text_only=True)
            self._done[link] = chunk_history(history, self.tokenizer, self.settings.chunk_tokens,
                                             self.settings.max_chunks)
        return self._done[link]

    def job(self, row: int, query: str | None = None) -> MemoryJob:
        """The notes job for ``row``; ``query`` is what each update sees of the question (None: causal)."""
        link = self.link(row)
        return MemoryJob(key=memory_key(link, query), link=link, chunking=self(row), query=query)


def run_updates(jobs: list[MemoryJob], rewrite: Rewriter, settings: MemorySettings,
                progress: bool = False) -> dict[str, Trajectory]:
    """Build every job's notes, one batched rewrite request per step for all jobs still reading.

    When a rewriter reports that some updates ran out of retries (``RequestsFailedError``), those jobs
    stop with ``Trajectory.error`` set, since each update needs the previous notes; the rest go on.
    """
    trajectories = {job.key: Trajectory(job.key, job.link, job.query, settings.initial_memory, job.chunking)
                    for job in jobs}
    unique = list({job.key: job for job in jobs}.values())
    steps = max((len(job.chunking) for job in unique), default=0)
    for step in tqdm(range(steps), desc="memory updates", disable=not progress, leave=False):
        active = [job for job in unique if step < len(job.chunking) and not trajectories[job.key].error]
        if not active:
            break
        conversations = [memory_update_messages(trajectories[job.key].memory, job.chunking.chunks[step], job.query,
                                                settings.privacy_instruction, settings.no_query_in_notes)
                         for job in active]
        try:
            replies = rewrite(conversations, [f"{job.key} chunk {step + 1}" for job in active])
        except RequestsFailedError as err:
            replies = err.responses
            for index, error in err.failures.items():
                trajectories[active[index].key].error = str(error)
        for job, reply in zip(active, replies):
            if reply is None:
                continue
            notes = notes_from_reply(reply.text, settings.raw_notes)
            previous = trajectories[job.key].memory
            trajectories[job.key].steps.append(Rewrite(
                memory=notes or previous, tokens_in=reply.tokens_in, tokens_out=reply.tokens_out,
                capped=reply.finish_reason == "length", kept_previous=not notes, reply=reply))
    return trajectories
