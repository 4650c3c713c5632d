"""GRPO rewards with TRL's reward-function signature: ``f(prompts, completions, **columns) -> list``.

Each function scores only its own task and returns ``None`` for the other rows, so TRL sums them
into one reward per completion while logging ``rewards/mcq_reward/mean`` and
``rewards/open_reward/mean`` separately: the notebook draws one curve per task from those.

* MCQ: 1.0 when the boxed letter is the gold letter, else 0.0. Which boxes count and where they
  are looked for are settings (``box_forms``, ``box_scope``: :func:`~pmv2nb.evaluate.parsing.boxed_choice`);
  with ``no_letter_fallback`` "nearest_option" a reply without one is scored by the option nearest to
  it by sentence embedding, as the authors' GRPO reward does. With ``require_think`` the answer only
  counts after a closed ``<think>...</think>`` block.
* Open-ended: the mean of N judge calls made through the evaluation backends and call cache, so
  any judge spec works (an API model, a local server, the offline proxy). For sensitive_info and
  ask_to_forget rows a leak check runs first and a leak scores 0 without asking the judge. With
  ``require_think`` (the authors' code) a reply without a closed think block and an answer after
  it scores 0, and the judge reads only that answer.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..answers import after_thinking, is_privacy_row, leaks, protected_detail
from ..config import EvalSettings, check_choice
from ..backends import Sampling, make_backend
from ..evaluate.cache import CachedBackend, CallCache
from ..evaluate.judging import judge_requests, read_verdict
from ..evaluate.parsing import answer_part, boxed_choice
from ..prompts import TRAIN_LETTERS

NO_LETTER_FALLBACKS = ("invalid", "nearest_option")


def completion_text(completion: Any) -> str:
    """The generated text, whether TRL passes a string or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


def boxed_letter(text: str, require_think: bool = False, forms: str = "lenient", scope: str = "anywhere") -> str | None:
    """The lower-case letter the reply boxed (:func:`~pmv2nb.evaluate.parsing.boxed_choice`); with
    ``require_think`` only a reply with a closed think block has one.

    A chat template may put the opening ``<think>`` into the prompt, so only the closing tag is
    required to come before the answer.
    """
    if require_think:
        text = after_thinking(text)
        if text is None:
            return None
    return boxed_choice(text, forms, scope)


def mcq_reward(completions: list, task: list[str], gold_letter: list[str], require_think: bool = False,
               options: list[list[str]] | None = None, forms: str = "lenient", scope: str = "anywhere",
               no_letter_fallback: str = "invalid", **_: Any) -> list[float | None]:
    """1.0 for the gold letter, 0.0 otherwise; None on open-ended rows.

    ``options`` (each row's option texts in the order shown) are read only by the nearest-option fallback.
    """
    from ..evaluate.runner import nearest_option

    check_choice("no_letter_fallback", no_letter_fallback, NO_LETTER_FALLBACKS)
    rewards: list[float | None] = []
    for i, (completion, kind, gold) in enumerate(zip(completions, task, gold_letter)):
        if kind != "mcq":
            rewards.append(None)
            continue
        if gold not in TRAIN_LETTERS:
            raise ValueError(f"gold letter {gold!r} is not one of the training labels {TRAIN_LETTERS!r}")
        text = completion_text(completion)
        if require_think and after_thinking(text) is None:  # the format gate failed: nothing to read or embed
            rewards.append(0.0)
            continue
        letter = boxed_letter(text, require_think, forms, scope)
        if letter is None and no_letter_fallback == "nearest_option" and text:
            if not options or not options[i]:
                raise ValueError("the nearest-option fallback needs each MCQ row's options (an 'options' column)")
            letter = nearest_option(answer_part(text, scope), options[i]).lower()
        rewards.append(float(letter == gold))
    return rewards


class OpenEndedReward:
    """Judge-based reward for open-ended rows; usable directly as a TRL reward function."""

    __name__ = "open_reward"  # TRL names the logged metric after the function

    def __init__(self, judge: str, calls: int = 3, cache: CallCache | str | None = None,
                 sampling: Sampling = Sampling(max_tokens=1024), concurrency: int = 8, require_think: bool = False,
                 rubric: str = "graded", score_reader: str = "last_in_range"):
        store = cache if isinstance(cache, CallCache) else CallCache(cache) if cache else None
        backend = make_backend(judge, concurrency=concurrency)
        self.judge, self.calls, self.sampling = judge, calls, sampling
        self.require_think, self.rubric, self.score_reader = require_think, rubric, score_reader
        self.backend = CachedBackend(backend, store) if store is not None else backend

    def __call__(self, prompts: list, completions: list, task: list[str], query_text: list[str],
                 preference: list[str], pref_type: list[str], sensitive_info: list[bool],
                 prev_pref: list[str] | None = None, log_metric=None, **_: Any) -> list[float | None]:
        prev_pref = prev_pref or [""] * len(completions)
        rewards: list[float | None] = [None] * len(completions)
        requests, owners, leaked, unparsed = [], [], 0, 0
        for i, kind in enumerate(task):
            if kind != "open":
                continue
            response = completion_text(completions[i])
            if self.require_think:
                answer = after_thinking(response) if "<think>" in response.lower() else None
                if not (answer and answer.strip()):
                    rewards[i] = 0.0
                    continue
                response = answer
            if is_privacy_row(pref_type[i], sensitive_info[i]) and leaks(
                    response, protected_detail(pref_type[i], preference[i], prev_pref[i])):
                rewards[i] = 0.0
                leaked += 1
                continue
            batch = judge_requests(query_text[i], preference[i], response, self.calls, self.sampling, f"rollout {i}",
                                   self.rubric)
            requests += batch
            owners.append((i, len(batch)))
        answers = self.backend.generate(requests) if requests else []
        position = 0
        for i, count in owners:
            verdict = read_verdict(answers[position:position + count], self.score_reader)
            position += count
            rewards[i] = verdict.score
            unparsed += count - len(verdict.usable)
        if log_metric is not None and (owners or leaked):
            log_metric("open/leak_rate", leaked / (leaked + len(owners)))
            log_metric("open/unparsed_judge_rate", unparsed / max(1, len(requests)))
        return rewards


def mcq_reading(settings) -> dict[str, str]:
    """How an RL stage (``grpo`` or ``memory.rl`` settings) reads an MCQ reply, as :func:`mcq_reward`'s keywords:
    which boxes count (``box_forms``), where (``box_scope``) and what a reply without one scores
    (``no_letter_fallback``)."""
    return {"forms": settings.box_forms, "scope": settings.box_scope, "no_letter_fallback": settings.no_letter_fallback}


def reward_functions(judge: str | None, calls: int = 3, cache: CallCache | str | None = None,
                     require_think: bool = False, require_think_open: bool = False, rubric: str = "graded",
                     concurrency: int = 8, *, reading: Mapping[str, str] | None = None,
                     score_reader: str = "last_in_range") -> list:
    """The reward list for GRPOTrainer: the MCQ reward, plus the open-ended one when a judge is given.

    ``require_think`` applies to MCQ rows, ``require_think_open`` to open-ended rows; ``rubric`` and
    ``score_reader`` are the judge's, ``concurrency`` the judge calls in flight at once. ``reading``
    (:func:`mcq_reading`; None: :func:`mcq_reward`'s defaults) says how the MCQ reward reads a reply.
    """
    def mcq(completions, task, gold_letter, options=None, **kwargs):
        return mcq_reward(completions, task, gold_letter, require_think=require_think, options=options,
                          **(reading or {}))

    mcq.__name__ = "mcq_reward"
    if not judge:
        return [mcq]
    return [mcq, OpenEndedReward(judge, calls, cache, concurrency=concurrency, require_think=require_think_open,
                                 rubric=rubric, score_reader=score_reader)]


def mixed_rewards(mcq_fraction: float, judge: str | None, calls: int = 3, cache: CallCache | str | None = None,
                  require_think: bool = False, require_think_open: bool = False, rubric: str = "graded",
                  concurrency: int = 8, **reading: str) -> list:
    """The reward list for a task mix; open-ended rows (any fraction below 1) need a judge, said early.

    ``reading`` holds :func:`reward_functions`' keyword settings of how replies and verdicts are read."""
    if mcq_fraction < 1.0 and not judge:
        raise ValueError("open-ended rows need a judge: pass --judge SPEC (for example openai:gpt-4.1, a local "
                         "server openai:NAME@URL, or baseline:dense offline), or use --mcq-fraction 1.0")
    return reward_functions(judge if mcq_fraction < 1.0 else None, calls, cache, require_think, require_think_open,
                            rubric, concurrency, **reading)


def rl_rewards(settings, judging: EvalSettings, cache: CallCache | str | None = None) -> list:
    """The rewards of an RL stage as its settings (``grpo`` or ``memory.rl``) and the profile's evaluation settings
    (the judge's rubric and score reader, shared with evaluation) define them: the task mix, the judge, its call
    count and concurrency, the think rules, and how the MCQ reward reads a reply."""
    return mixed_rewards(settings.mcq_fraction, settings.judge, settings.judges, cache, settings.require_think_mcq,
                         settings.require_think_open, judging.judge_rubric, settings.judge_concurrency,
                         reading=mcq_reading(settings), score_reader=judging.judge_score_reader)


__all__ = ["NO_LETTER_FALLBACKS", "OpenEndedReward", "boxed_letter", "completion_text", "mcq_reading", "mcq_reward",
           "mixed_rewards", "reward_functions", "rl_rewards"]
