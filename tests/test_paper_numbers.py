"""The paper's GRPO numbers: reported values kept, derived ones computed from the stated differences, gaps left empty."""

import math

import pandas as pd

from pmv2nb.paper_numbers import beside_grpo_ablations, grpo_ablation_table


def test_ablation_values_follow_the_reported_differences():
    table = grpo_ablation_table().set_index("recipe")
    assert table.loc["mixed (80% MCQ)", ["mcq", "open"]].tolist() == [53.8, 56.0]
    assert math.isclose(table.loc["mcq-only", "open"], 56.0 - 13.1)
    assert math.isnan(table.loc["mcq-only", "mcq"])  # not reported, so not invented
    assert math.isclose(table.loc["open-only", "mcq"], 53.8 - 18.2)
    assert math.isclose(table.loc["open-only", "open"], 56.0 - 3.7)


def test_measured_accuracy_sits_beside_the_paper_in_percent():
    measured = pd.DataFrame({"checkpoint": ["mix", "mix", "m", "m"], "mode": ["mcq", "open", "mcq", "open"],
                             "accuracy": [0.5, 0.25, 0.125, 0.0]})
    table = beside_grpo_ablations(measured, {"mixed (80% MCQ)": "mix", "mcq-only": "m", "open-only": "o"})
    rows = table.set_index("checkpoint")
    assert rows.loc["mix", ["mcq (measured)", "open (measured)"]].tolist() == [50.0, 25.0]
    assert rows.loc["m", "mcq (measured)"] == 12.5 and rows.loc["m", "open (paper)"] == 42.9
    assert rows.loc["o", ["mcq (measured)", "open (measured)"]].isna().all()  # that run was not measured
