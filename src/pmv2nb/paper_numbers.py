"""Numbers the paper reports, in one place, so notebooks put measured results beside them.

Only values stated in the paper's text are here (see FACTS.md section 5). Where the paper gives
a difference rather than a value, the value is derived from it and marked as derived; anything it
does not report stays missing (NaN) instead of being guessed.
"""

from __future__ import annotations

import math

import pandas as pd

# Qwen3-4B after SFT + GRPO with the 80/20 mix (accuracy, %)
GRPO_MIXED = {"mcq": 53.8, "open": 56.0}
# Ablations, relative to the mixed recipe, in accuracy points
ABLATION_DELTAS = {"mcq_only": {"open": -13.1}, "open_only": {"mcq": -18.2, "open": -3.7}}


def grpo_ablation_table() -> pd.DataFrame:
    """The paper's GRPO comparison: one row per recipe, MCQ and open-ended accuracy in %, NaN when not reported."""
    rows = [{"recipe": "mixed (80% MCQ)", "mcq_fraction": 0.8, "mcq": GRPO_MIXED["mcq"], "open": GRPO_MIXED["open"],
             "source": "reported"}]
    for recipe, fraction in (("mcq_only", 1.0), ("open_only", 0.0)):
        deltas = ABLATION_DELTAS[recipe]
        rows.append({"recipe": recipe.replace("_", "-"), "mcq_fraction": fraction,
                     **{task: GRPO_MIXED[task] + deltas[task] if task in deltas else math.nan for task in ("mcq", "open")},
                     "source": "derived from the reported difference"})
    return pd.DataFrame(rows)


def beside_grpo_ablations(measured: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The paper's GRPO comparison next to measured accuracy (in %).

    ``measured`` has columns checkpoint, mode ("mcq"/"open") and accuracy (0-1); ``labels`` maps the
    paper's recipes ("mixed (80% MCQ)", "mcq-only", "open-only") to the checkpoint labels used there.
    """
    ours = measured.pivot(index="checkpoint", columns="mode", values="accuracy").mul(100).round(1)
    paper = grpo_ablation_table()
    paper["checkpoint"] = paper["recipe"].map(labels)
    paper = paper.set_index("checkpoint")[["mcq", "open"]].rename(columns=lambda task: f"{task} (paper)")
    table = paper.join(ours.rename(columns=lambda task: f"{task} (measured)"))
    return table.reset_index()
