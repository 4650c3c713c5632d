"""Open-ended grading shared by evaluation and training: N judge calls per reply, one mean score.

The benchmark's open-ended score and GRPO's open-ended reward are the same quantity, so both
build their judge requests and aggregate the verdicts here. Each of the N calls gets its own
seed, so the calls are independent samples and are cached separately.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from .. import prompts
from ..answers import strip_thinking
from ..backends import ChatRequest, ChatResponse, Sampling
from .parsing import parse_score


def judge_requests(query: str, preference: str, response: str, calls: int, sampling: Sampling,
                   tag: str, rubric: str = "graded") -> list[ChatRequest]:
    """``calls`` requests grading one reply (its think block removed) against one preference."""
    frame = prompts.judge_messages(query, preference, strip_thinking(response).strip(), rubric)
    return [ChatRequest(frame, replace(sampling, seed=j), f"{tag} judge {j}") for j in range(calls)]


@dataclass
class Verdict:
    """The scores parsed from one reply's judge calls; unparsable verdicts are kept as None."""

    scores: list[float | None]

    @property
    def usable(self) -> list[float]:
        return [s for s in self.scores if s is not None]

    @property
    def valid(self) -> bool:
        return bool(self.usable)

    @property
    def score(self) -> float:
        """Mean of the parsable scores; 0.0 when no judge gave one (counted as invalid by callers)."""
        return statistics.fmean(self.usable) if self.usable else 0.0

    @property
    def spread(self) -> float | None:
        return statistics.pstdev(self.usable) if len(self.usable) > 1 else None


def read_verdict(responses: list[ChatResponse], reader: str = "last_in_range") -> Verdict:
    """The scores of one reply's judge calls, each read by ``reader`` (``eval.judge_score_reader``)."""
    return Verdict([parse_score(r.text, reader) for r in responses])
