"""Prices of the OpenAI models in the paper's Figure 4, and cost estimates before a run.

List prices in US dollars per million tokens (standard tier, no batch discount), as published by OpenAI
in August 2025 (``PRICES_AS_OF``). They change: check every rate, the cached-input ones included, against
https://openai.com/api/pricing before a large run.

Cached input is the part of a prompt the API found in its prompt cache: a repeated prefix of at least
1,024 tokens, matched in steps of 128 tokens, reported as ``usage.prompt_tokens_details.cached_tokens`` and
billed at the much lower cached-input rate. Every question of a persona repeats that persona's history,
so most of a benchmark's input can be billed that way when a persona's questions are sent together.
"""

from __future__ import annotations

PRICES_AS_OF = "2025-08"
PRICES_PER_MILLION = {  # model: (input, cached input, output)
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-chat-latest": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "o4-mini": (1.10, 0.275, 4.40),
}

PAPER_MODELS = ("gpt-5-chat", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "o4-mini")

CACHE_MIN_TOKENS = 1024  # the shortest prefix the API caches
CACHE_STEP_TOKENS = 128  # cache hits grow in steps of this many tokens


def price(model: str | None) -> tuple[float, float, float] | None:
    """(input, cached input, output) dollars per million tokens, or ``None`` for local and unknown models."""
    if model is None:
        return None
    if model in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model]
    # dated snapshots (gpt-4.1-2025-04-14) cost what their family costs
    family = max((name for name in PRICES_PER_MILLION if model.startswith(name + "-")), key=len, default=None)
    return PRICES_PER_MILLION.get(family) if family else None


def call_cost(model: str | None, tokens_in: int, tokens_out: int, cached_in: int = 0) -> float:
    """Dollars for one call; ``cached_in`` of the ``tokens_in`` prompt tokens are billed at the cached rate."""
    rates = price(model)
    if rates is None:
        return 0.0
    cached_in = min(max(cached_in, 0), tokens_in)
    return ((tokens_in - cached_in) * rates[0] + cached_in * rates[1] + tokens_out * rates[2]) / 1e6


def cacheable(shared_tokens: int) -> int:
    """How many tokens of a prefix shared with an earlier prompt the API would bill as cached: none below
    1,024, else the prefix rounded down to a multiple of 128."""
    if shared_tokens < CACHE_MIN_TOKENS:
        return 0
    return shared_tokens // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS
