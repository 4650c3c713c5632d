"""GRPO rewards with TRL's reward-function signature: ``f(prompts, completions, **columns) -> list``.

Each function scores only its own task and returns ``None`` for the other rows, so TRL sums them
into one reward per completion while logging ``rewards/mcq_reward/mean`` and
``rewards/open_reward/mean`` separately: the notebook draws one curve per task from those.

* MCQ: 1.0 when the last ``\\boxed{}`` letter is the gold letter, else 0.0. With
  ``require_think`` (the authors' long-context setting) the answer only counts after a closed
  ``<think>...</think>`` block.
* Open-ended: the mean of N judge calls made through the evaluation backends and call cache, so
  any judge spec works (an API model, a local server, the offline proxy). For sensitive_info and
  ask_to_forget rows a leak check runs first and a leak scores 0 without asking the judge.
"""

from __future__ import annotations

import re
from typing import Any

from ..backends import Sampling, make_backend
from ..backends.baselines import content_words
from ..evaluate.cache import CachedBackend, CallCache
from ..evaluate.judging import judge_requests, read_verdict
from ..evaluate.parsing import BOXED_LETTER
from ..prompts import TRAIN_LETTERS

_THINK_CLOSE = re.compile(r"</think>", re.I)


def completion_text(completion: Any) -> str:
    """The generated text, whether TRL passes a string or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


def boxed_letter(text: str, require_think: bool = False) -> str | None:
    """The lower-case letter in the last ``\\boxed{}``; with ``require_think`` only after ``</think>``.

    A chat template may put the opening ``<think>`` into the prompt, so only the closing tag is
    required to come before the answer.
    """
    if require_think:
        closes = list(_THINK_CLOSE.finditer(text))
        if not closes:
            return None
        text = text[closes[-1].end():]
    matches = BOXED_LETTER.findall(text)
    return matches[-1].lower() if matches else None


def mcq_reward(completions: list, task: list[str], gold_letter: list[str], require_think: bool = False,
               **_: Any) -> list[float | None]:
    """1.0 for the gold letter in the last box, 0.0 otherwise; None on open-ended rows."""
    rewards: list[float | None] = []
    for completion, kind, gold in zip(completions, task, gold_letter):
        if kind != "mcq":
            rewards.append(None)
            continue
        if gold not in TRAIN_LETTERS:
            raise ValueError(f"gold letter {gold!r} is not one of the training labels {TRAIN_LETTERS!r}")
        rewards.append(float(boxed_letter(completion_text(completion), require_think) == gold))
    return rewards


_QUOTED = re.compile(r"'([^']{3,})'|\"([^\"]{3,})\"")
_HAS_DIGIT = re.compile(r"\S*\d\S*")


def protected_detail(pref_type: str, preference: str, prev_pref: str = "") -> list[str]:
    """The strings a reply must not repeat for a privacy row (empty for ordinary rows).

    sensitive_info: quoted spans of the preference, else its tokens that contain digits
    (addresses, phone numbers, keys). ask_to_forget: the forgotten preference (prev_pref, else
    the quoted span of the "do not remember" request).
    """
    quoted = [a or b for a, b in _QUOTED.findall(preference)]
    if pref_type == "ask_to_forget":
        return [prev_pref] if prev_pref else quoted
    if pref_type == "sensitive_info":
        return quoted or [t.strip(".,;:") for t in _HAS_DIGIT.findall(preference)]
    return []


def leaks(response: str, details: list[str]) -> bool:
    """True when the reply repeats a protected detail verbatim, or (for a phrase) most of its content words."""
    text = " ".join(response.lower().split())
    for detail in details:
        normal = " ".join(detail.lower().split())
        if normal and normal in text:
            return True
        words = set(content_words(detail))
        if len(words) >= 3 and len(words & set(content_words(response))) >= 0.6 * len(words):
            return True
    return False


def is_privacy_row(pref_type: str, sensitive_info: bool) -> bool:
    return bool(sensitive_info) or pref_type in ("sensitive_info", "ask_to_forget")


class OpenEndedReward:
    """Judge-based reward for open-ended rows; usable directly as a TRL reward function."""

    __name__ = "open_reward"  # TRL names the logged metric after the function

    def __init__(self, judge: str, calls: int = 3, cache: CallCache | str | None = None,
                 sampling: Sampling = Sampling(max_tokens=1024), concurrency: int = 8):
        store = cache if isinstance(cache, CallCache) else CallCache(cache) if cache else None
        backend = make_backend(judge, concurrency=concurrency)
        self.judge, self.calls, self.sampling = judge, calls, sampling
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
            if is_privacy_row(pref_type[i], sensitive_info[i]) and leaks(
                    response, protected_detail(pref_type[i], preference[i], prev_pref[i])):
                rewards[i] = 0.0
                leaked += 1
                continue
            batch = judge_requests(query_text[i], preference[i], response, self.calls, self.sampling, f"rollout {i}")
            requests += batch
            owners.append((i, len(batch)))
        answers = self.backend.generate(requests) if requests else []
        position = 0
        for i, count in owners:
            verdict = read_verdict(answers[position:position + count])
            position += count
            rewards[i] = verdict.score
            unparsed += count - len(verdict.usable)
        if log_metric is not None and (owners or leaked):
            log_metric("open/leak_rate", leaked / (leaked + len(owners)))
            log_metric("open/unparsed_judge_rate", unparsed / max(1, len(requests)))
        return rewards


def reward_functions(judge: str | None, calls: int = 3, cache: CallCache | str | None = None,
                     require_think: bool = False) -> list:
    """The reward list for GRPOTrainer: the MCQ reward, plus the open-ended one when a judge is given."""
    def mcq(completions, task, gold_letter, **kwargs):
        return mcq_reward(completions, task, gold_letter, require_think=require_think)

    mcq.__name__ = "mcq_reward"
    return [mcq] + ([OpenEndedReward(judge, calls, cache)] if judge else [])


def mixed_rewards(mcq_fraction: float, judge: str | None, calls: int = 3, cache: CallCache | str | None = None,
                  require_think: bool = False) -> list:
    """The reward list for a task mix; open-ended rows (any fraction below 1) need a judge, said early."""
    if mcq_fraction < 1.0 and not judge:
        raise ValueError("open-ended rows need a judge: pass --judge SPEC (for example openai:gpt-4.1, a local "
                         "server openai:NAME@URL, or baseline:dense offline), or use --mcq-fraction 1.0")
    return reward_functions(judge if mcq_fraction < 1.0 else None, calls, cache, require_think)


__all__ = ["OpenEndedReward", "boxed_letter", "leaks", "mcq_reward", "mixed_rewards",
           "protected_detail", "reward_functions"]
