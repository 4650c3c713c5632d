"""Prices of the OpenAI models in the paper's Figure 4, and cost estimates before a run.

List prices in US dollars per million tokens (standard tier, no batch or cached-input discount),
as published by OpenAI; check them against the pricing page before a large run, since they change.
"""

from __future__ import annotations

PRICES_AS_OF = "2025-08"
PRICES_PER_MILLION = {  # model: (input, output)
    "gpt-5": (1.25, 10.00),
    "gpt-5-chat-latest": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}

PAPER_MODELS = ("gpt-5-chat", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "o4-mini")


def price(model: str | None) -> tuple[float, float] | None:
    """(input, output) dollars per million tokens, or ``None`` for local and unknown models."""
    if model is None:
        return None
    if model in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model]
    # dated snapshots (gpt-4.1-2025-04-14) cost what their family costs
    family = max((name for name in PRICES_PER_MILLION if model.startswith(name + "-")), key=len, default=None)
    return PRICES_PER_MILLION.get(family) if family else None


def call_cost(model: str | None, tokens_in: int, tokens_out: int) -> float:
    rates = price(model)
    if rates is None:
        return 0.0
    return (tokens_in * rates[0] + tokens_out * rates[1]) / 1e6
