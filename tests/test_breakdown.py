"""Breakdown arithmetic and bootstrap intervals on hand-made results."""

import numpy as np
import pandas as pd
import pytest

from pmv2nb.evaluate import bootstrap_ci, breakdown, report_tables
from pmv2nb.evaluate.breakdown import to_markdown


def _results(scores, **columns):
    n = len(scores)
    frame = pd.DataFrame({"question_id": [f"q{i}" for i in range(n)], "model": "m", "mode": "mcq", "size": "32k",
                          "variant": 0, "score": scores, "valid": True, "distance_to_evidence": 500})
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_bootstrap_interval_brackets_the_mean_and_matches_the_normal_approximation():
    values = np.r_[np.ones(300), np.zeros(700)]
    mean, low, high = bootstrap_ci(values, n_boot=4000, seed=1)
    assert mean == pytest.approx(0.3)
    half_width = 1.96 * np.sqrt(0.3 * 0.7 / 1000)
    assert low == pytest.approx(0.3 - half_width, abs=0.006) and high == pytest.approx(0.3 + half_width, abs=0.006)
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0, 1.0)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    assert all(np.isnan(bootstrap_ci([])))


def test_groups_count_and_average_correctly():
    frame = _results([1, 0, 1, 1, 0, 0], who=["self", "self", "self", "others", "others", "others"],
                     valid=[True, True, False, True, True, True])
    table = breakdown(frame, "who").set_index("group")
    assert table.loc["self", "n"] == 3 and table.loc["self", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["others", "accuracy"] == pytest.approx(1 / 3)
    assert table.loc["self", "invalid_rate"] == pytest.approx(1 / 3) and table.loc["others", "invalid_rate"] == 0
    overall = breakdown(frame, "overall")
    assert overall["n"].item() == 6 and overall["accuracy"].item() == pytest.approx(0.5)
    assert overall["ci_low"].item() <= 0.5 <= overall["ci_high"].item()


def test_option_order_variants_are_averaged_per_question_before_resampling():
    frame = pd.concat([_results([1, 0]).assign(variant=0), _results([0, 0]).assign(variant=1)])
    table = breakdown(frame, "overall")
    assert table["n"].item() == 2 and table["accuracy"].item() == pytest.approx(0.25)


def test_distance_bins_and_models_are_separate_rows():
    frame = _results([1, 0, 1, 1], distance_to_evidence=[10, 900, 5000, 70000])
    frame = pd.concat([frame, frame.assign(model="n", score=0)])
    table = breakdown(frame, "distance")
    assert list(table[table["model"] == "m"]["group"]) == ["<1k", "4k-16k", ">=64k"]
    assert table.set_index(["model", "group"]).loc[("m", "<1k"), "accuracy"] == pytest.approx(0.5)
    assert (table[table["model"] == "n"]["accuracy"] == 0).all()


def test_report_skips_tables_the_results_cannot_support_and_renders_markdown():
    frame = _results([1, 0], pref_type=["a|b", "c"], who=["self", "others"])
    tables = report_tables(frame, ["overall", "pref_type", "who", "gold_letter"])
    assert set(tables) == {"overall", "pref_type", "who"}
    text = to_markdown(tables["pref_type"])
    assert text.splitlines()[1].startswith("| --- |") and "a\\|b" in text and "1.000" in text
    with pytest.raises(ValueError, match="unknown breakdown"):
        breakdown(frame, "colour")


def _answers(picks, golds, orders, question_ids):
    return pd.DataFrame({"question_id": question_ids, "model": "m", "mode": "mcq", "size": "32k",
                         "variant": [i % 4 for i in range(len(picks))], "parsed": picks, "gold_letter": golds,
                         "valid": [p is not None for p in picks], "order": orders,
                         "correct": [p == g for p, g in zip(picks, golds)]})


def test_position_bias_counts_picks_against_where_the_gold_answer_sat():
    from pmv2nb.evaluate import position_bias

    # one question in four orders; the model always says A, the gold answer moves around
    orders = [[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 0, 3], [1, 2, 3, 0]]
    frame = _answers(["A", "A", "A", None], ["A", "B", "C", "D"], orders, ["q"] * 4)
    table = position_bias(frame).set_index("letter")
    assert table.loc["A", "picked"] == 1.0 and table.loc["B", "picked"] == 0.0
    assert table["gold_here"].tolist() == [0.25] * 4 and table["invalid_rate"].iat[0] == 0.25


def test_order_consistency_follows_the_option_not_the_letter():
    from pmv2nb.evaluate import order_consistency

    orders = [[0, 1, 2, 3], [1, 0, 2, 3], [0, 1, 2, 3], [1, 0, 2, 3]]
    # q1: the reader picks the gold option (index 0) in both orders, under different letters; q2: always letter A
    frame = _answers(["A", "B", "A", "A"], ["A", "B", "A", "B"], orders, ["q1", "q1", "q2", "q2"])
    frame["variant"] = [0, 1, 0, 1]
    row = order_consistency(frame).iloc[0]
    assert row["questions"] == 2 and row["same_option_every_order"] == 0.5
    assert row["accuracy_by_order"] == {0: 1.0, 1: 0.5}
