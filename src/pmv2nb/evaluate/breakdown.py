"""Accuracy tables with 95% bootstrap confidence intervals, split by the benchmark's labels.

Questions are the unit of resampling: when several option orders were scored per question they are
averaged first, so extra orders tighten the estimate of each question, not the apparent sample size.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# table name -> result column it groups by (None: one overall row)
BREAKDOWNS = {
    "overall": None,
    "pref_type": "pref_type",
    "who": "who",
    "updated": "updated",
    "scenario": "conversation_scenario",
    "sensitive_info": "sensitive_info",
    "size": "size",
    "distance": "distance_bin",
    "gold_letter": "gold_letter",
}
DISTANCE_EDGES = (0, 1_000, 4_000, 16_000, 64_000, math.inf)
DISTANCE_LABELS = ("<1k", "1k-4k", "4k-16k", "16k-64k", ">=64k")


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values`` (NaN for an empty input)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # blocks keep memory flat for large tables
        stop = min(n_boot, start + 256)
        means[start:stop] = data[rng.integers(0, data.size, size=(stop - start, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


def with_distance_bins(results: pd.DataFrame) -> pd.DataFrame:
    frame = results.copy()
    distance = pd.to_numeric(frame["distance_to_evidence"], errors="coerce") if "distance_to_evidence" in frame \
        else pd.Series(np.nan, index=frame.index)
    frame["distance_bin"] = pd.cut(distance, bins=list(DISTANCE_EDGES), labels=list(DISTANCE_LABELS), right=False)
    return frame


def per_question(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per question and group: the mean score over its option-order variants (and the share of those
    answers that were invalid, or stopped at the reply cap)."""
    frame = results.copy()
    frame["invalid"] = ~frame["valid"].astype(bool)
    frame["cut"] = frame["finish_reason"] == "length" if "finish_reason" in frame else False
    return (frame.groupby(keys + ["question_id"], dropna=False, observed=True)
            .agg(score=("score", "mean"), invalid=("invalid", "mean"), cut=("cut", "mean")).reset_index())


def breakdown(results: pd.DataFrame, by: str = "overall", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Accuracy per (model, mode, size, group) with n, a 95% CI, the invalid-answer rate and ``cut_rate``, the share
    of replies that stopped at the reply cap (finish reason ``length``) and may have lost their answer."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; choose from {', '.join(BREAKDOWNS)}")
    column = BREAKDOWNS[by]
    frame = with_distance_bins(results)
    if column is not None and column not in frame:
        raise ValueError(f"results have no {column!r} column (needed for the {by} breakdown)")
    keys = ["model", "mode"] + (["size"] if column != "size" else [])
    if column is None:
        frame["group"] = "all"
    else:  # distance bins keep their natural order; other labels become text ("True", "self")
        frame["group"] = frame[column] if column == "distance_bin" else frame[column].astype(str)
    questions = per_question(frame, keys + ["group"])
    rows = []
    for group_keys, part in questions.groupby(keys + ["group"], sort=True, observed=True):
        mean, low, high = bootstrap_ci(part["score"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(keys + ["group"], group_keys)), "by": by, "n": len(part), "accuracy": mean,
                     "ci_low": low, "ci_high": high, "invalid_rate": float(part["invalid"].mean()),
                     "cut_rate": float(part["cut"].mean())})
    table = pd.DataFrame(rows)
    order = ["by", "group", "model", "mode"] + (["size"] if column != "size" else []) + \
        ["n", "accuracy", "ci_low", "ci_high", "invalid_rate", "cut_rate"]
    return table[order] if len(table) else table


def report_tables(results: pd.DataFrame, names: list[str] | None = None, n_boot: int = 2000) -> dict[str, pd.DataFrame]:
    """Several breakdowns at once, skipping those the results cannot support (no gold letters for open mode)."""
    tables = {}
    for name in names or list(BREAKDOWNS):
        column = BREAKDOWNS[name]
        if column is not None and column != "distance_bin" and (column not in results or results[column].isna().all()):
            continue
        tables[name] = breakdown(results, name, n_boot=n_boot)
    return tables


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-style markdown table (no extra dependency)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def position_bias(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and shown letter: how often the model picked it, against how often the gold answer sat there.

    A model that reads the options picks each letter about as often as the gold answer is there; a
    model that favours a position picks its letter far more often, whatever the options say.
    ``--orders 4`` (or ``variants=4``) shows every question in four orders, which makes this visible
    on a few dozen questions. ``picked`` is a share of the valid answers; ``invalid_rate`` is per model.
    """
    mcq = results[results["mode"] == "mcq"]
    rows = []
    for model, group in mcq.groupby("model", sort=True):
        valid = group[group["valid"].astype(bool)]
        letters = sorted(set(group["gold_letter"].dropna()) | set(valid["parsed"].dropna()))
        for letter in letters:
            rows.append({"model": model, "letter": letter, "answers": len(group),
                         "picked": float((valid["parsed"] == letter).mean()) if len(valid) else math.nan,
                         "gold_here": float((group["gold_letter"] == letter).mean()),
                         "invalid_rate": float(1 - group["valid"].astype(bool).mean())})
    return pd.DataFrame(rows, columns=["model", "letter", "answers", "picked", "gold_here", "invalid_rate"])


def order_consistency(results: pd.DataFrame) -> pd.DataFrame:
    """Per model: the share of questions asked in several orders whose every answer chose the same option.

    A reader of the options keeps its choice when only their order changes; a position-biased model
    follows the letter instead. ``accuracy_by_order`` lists the accuracy of each order variant.
    """
    from ..prompts import LETTERS

    mcq = results[(results["mode"] == "mcq") & results["variant"].notna()]
    rows = []
    for model, group in mcq.groupby("model", sort=True):
        same, asked = 0, 0
        for _, answers in group.groupby("question_id"):
            if answers["variant"].nunique() < 2:
                continue
            asked += 1
            chosen = {order[LETTERS.index(letter)] if isinstance(letter, str) and LETTERS.index(letter) < len(order)
                      else None for letter, order in zip(answers["parsed"], answers["order"])}
            same += len(chosen) == 1 and None not in chosen
        by_order = group.groupby("variant")["correct"].mean().round(3).to_dict()
        rows.append({"model": model, "questions": asked, "same_option_every_order": same / asked if asked else math.nan,
                     "accuracy_by_order": by_order})
    return pd.DataFrame(rows, columns=["model", "questions", "same_option_every_order", "accuracy_by_order"])
