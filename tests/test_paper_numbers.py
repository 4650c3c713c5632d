"""The paper's GRPO numbers: reported values kept, derived ones computed from the stated differences, gaps left
empty."""

import math

import pandas as pd
import pytest

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


# Every number FACTS.md section 5 states, transcribed once ("2k" and "32k" as tokens, "16x" as 16).
FACTS_SECTION_5 = sorted([
    45.6, 46.2, 37, 48, 40, 55,                     # GPT-5-Chat; frontier range (abstract); GPT-5 variants
    53.8, 56.0, 55.2, 60.7, 2000, 32000, 16,        # Qwen3-4B-GRPO; agentic memory; tokens and the 16x
    -13.1, -18.2, -3.7,                             # GRPO ablations against the mixed recipe
    48.9, 5.7, 41.6, 3.3, 33.0, 5.0, 40.1, 2.7, 35.4, 10.5, 42.1, 4.9, 17.5, 11.7, 44.7, 3.0, 32.9, 8.9,
    36.8, 40.6, 35.1,                               # Mem0, MemOS, Letta
])


def _numbers_in_reference_tables() -> list[float]:
    from pmv2nb.paper_numbers import TABLES, reference_table

    values = []
    for name, (required, optional) in TABLES.items():
        table = reference_table(name)
        for column in (*required, *optional):
            values += [float(v) for v in table[column] if not math.isnan(v)]
    return sorted(values)


def test_reference_tables_hold_exactly_the_numbers_of_facts_section_5():
    assert _numbers_in_reference_tables() == FACTS_SECTION_5


def test_the_transcription_matches_facts_md_when_the_reference_folder_is_there():
    import re

    from pmv2nb.config import repo_root

    facts = repo_root().parent / "shared" / "reference" / "FACTS.md"
    if not facts.is_file():
        pytest.skip("../shared/reference/FACTS.md is not beside this checkout")
    section = facts.read_text().split("## 5.")[1].split("\n## ")[0].split("\n", 1)[1]
    # Model names, context sizes and token counts carry digits that are not reported values.
    section = re.sub(r"GPT-[\w.-]+|o4-mini|Qwen3-4B[\w-]*|Mem0|Figure \d+|\d+k\b|\d+x\b", " ", section)
    stated = sorted(abs(float(n)) for n in re.findall(r"\d+(?:\.\d+)?", section))
    assert stated == sorted(abs(v) for v in FACTS_SECTION_5 if v not in (2000, 32000, 16))


def test_unknown_values_stay_missing_and_every_value_has_a_source():
    from pmv2nb.paper_numbers import family_reference, reference_table

    frontier = reference_table("figure4_frontier")
    assert len(frontier) == 6 * 2 * 2  # six models, two sizes, two tasks, as in Figure 4
    known = frontier[frontier["status"] == "reported"]
    assert set(zip(known["model"], known["size"], known["mode"])) == {("GPT-5-Chat", "32k", "mcq"),
                                                                       ("GPT-5-Chat", "32k", "open")}
    assert frontier.loc[frontier["status"] == "unknown", "accuracy"].isna().all()
    family = family_reference().set_index(["model", "mode"])
    assert family.loc[("Qwen3-4B-SFT", "mcq"), "status"] == "unknown"
    assert family.loc[("GRPO MCQ-only", "open"), "status"] == "derived"
    assert family.loc[("GPT-5-Chat", "open"), "accuracy"] == 46.2
    assert family["source"].str.len().gt(10).all()
    ranges = reference_table("headline_ranges")
    assert set(ranges["status"]) == {"reported"}


def test_a_bad_reference_cell_names_its_file_row_and_column(tmp_path):
    import shutil

    from pmv2nb.data import DataError
    from pmv2nb.paper_numbers import paper_dir, reference_table

    for path in paper_dir().glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / "figure5_breakdown.csv"
    lines = target.read_text().splitlines()
    lines[3] = lines[3].replace(",33.0,", ",about 33,")
    target.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        reference_table("figure5_breakdown", tmp_path)
    assert caught.value.row == 3 and caught.value.column == "mean" and "figure5_breakdown.csv" in str(caught.value)
    lines[3] = "preference type,anti-stereotypical,pref_type,anti_stereotypical_pref,33.0,5.0,"
    target.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="source") as caught:
        reference_table("figure5_breakdown", tmp_path)
    assert caught.value.row == 3
    lines[3] += ",an extra field"
    target.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="figure5_breakdown.csv"):
        reference_table("figure5_breakdown", tmp_path)
