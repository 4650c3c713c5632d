"""Loading real-layout splits, shared histories, and located errors on broken copies."""

import csv
import json
import re
from pathlib import PurePosixPath

import pandas as pd
import pytest

from pmv2nb import cli
from pmv2nb.data import COLUMNS, DataError, load_split


def test_every_split_and_modality_loads_with_typed_columns(mini_root):
    for split in ("benchmark", "train", "val"):
        for modality in ("text", "multimodal"):
            data = load_split(mini_root, split, modality)
            q = data.questions
            assert list(q.columns[1:28]) == list(COLUMNS)
            assert q["updated"].map(type).eq(bool).all() and q["sensitive_info"].map(type).eq(bool).all()
            assert q["incorrect_answers"].map(len).isin([3, 4]).all()
            assert q["user_query"].map(lambda m: m["role"]).eq("user").all()
            assert str(q["total_tokens_in_chat_history_32k"].dtype) == "Int64"
            with open(data.table, newline="", encoding="utf-8") as handle:
                raw = list(csv.DictReader(handle))
            links = [{row[f"chat_history_{size}_link"] for row in raw} - {""} for size in ("32k", "128k")]
            assert data.load_all_histories(("32k", "128k"), progress=False) == sum(map(len, links))
            assert all(link in data.histories for link in set.union(*links))  # each read and kept, once


def test_histories_are_loaded_once_and_shared_across_a_personas_rows(mini_root):
    data = load_split(mini_root, "benchmark")
    rows = data.questions.index[data.questions["persona_id"] == data.questions["persona_id"].iat[0]]
    first, second = data.chat_history(rows[0]), data.chat_history(rows[1])
    assert first is second and len(data.histories) == 1
    kept, dropped = data.history(rows[0]), data.history(rows[0], keep_persona=False)
    assert kept[0]["role"] == "system" and len(kept) == len(dropped) + 1
    assert dropped[0] is first.messages[1]  # a view of the stored dicts, not a copy


def test_multimodal_histories_hold_images_and_text_views_hide_them(mini_root):
    data = load_split(mini_root, "benchmark", "multimodal")
    history = data.chat_history(0)
    with_images = [m for m in history.messages if isinstance(m["content"], list)]
    assert with_images and with_images[0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert all(isinstance(m["content"], str) for m in history.text_view())


def test_rows_without_a_128k_history_say_so(mini_root):
    data = load_split(mini_root, "benchmark")
    missing = data.questions.index[data.questions["chat_history_128k_link"].isna()]
    assert len(missing) > 0
    with pytest.raises(DataError, match="no 128k history") as err:
        data.chat_history(int(missing[0]), "128k")
    assert err.value.row == int(missing[0]) and err.value.column == "chat_history_128k_link"


def _rewrite(mirror, edit, split="benchmark"):
    path = mirror / "benchmark" / "text" / f"{split}.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fieldnames = edit(rows) or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: r[k] for k in fieldnames} for r in rows])
    return path


def test_missing_column_is_named(mini_copy):
    path = _rewrite(mini_copy, lambda rows: [c for c in rows[0] if c != "who"])
    with pytest.raises(DataError) as err:
        load_split(mini_copy, "benchmark")
    assert err.value.file == str(path) and err.value.column == "who"


@pytest.mark.parametrize("row, column, cell", [(5, "user_query", "{'role': 'user', 'content': 'unterminated}"),
                                               (4, "short_persona", "{'persona': 'unterminated}")])
def test_malformed_literal_names_row_and_column(mini_copy, row, column, cell):
    def edit(rows):
        rows[row][column] = cell
    path = _rewrite(mini_copy, edit)
    with pytest.raises(DataError) as err:
        load_split(mini_copy, "benchmark")
    assert (err.value.file, err.value.row, err.value.column) == (str(path), row, column)


def test_malformed_json_names_row_and_column(mini_copy):
    def edit(rows):
        rows[3]["incorrect_answers"] = "['not', 'json']"
    _rewrite(mini_copy, edit)
    with pytest.raises(DataError, match="row 3, column 'incorrect_answers'"):
        load_split(mini_copy, "benchmark")


def test_missing_history_file_and_escaping_links_are_errors(mini_copy):
    data = load_split(mini_copy, "benchmark")
    (mini_copy / data.questions["chat_history_32k_link"].iat[0]).unlink()
    with pytest.raises(DataError, match="not found") as err:
        load_split(mini_copy, "benchmark").load_all_histories(progress=False)
    assert (err.value.row, err.value.column) == (0, "chat_history_32k_link")

    def edit(rows):
        rows[2]["chat_history_32k_link"] = "../../etc/passwd"
    _rewrite(mini_copy, edit)
    with pytest.raises(DataError, match="outside the data root") as err:
        load_split(mini_copy, "benchmark")
    assert (err.value.row, err.value.column) == (2, "chat_history_32k_link")


def test_broken_history_json_is_located(mini_copy):
    data = load_split(mini_copy, "benchmark")
    link = data.questions["chat_history_32k_link"].iat[0]
    (mini_copy / link).write_text(json.dumps({"metadata": {}, "chat_history": [{"role": "user"}]}))
    with pytest.raises(DataError, match=r"chat_history\[0\]") as err:
        data.chat_history(0)
    assert err.value.row == 0 and link in str(err.value)


def test_data_check_cli_prints_a_summary_and_fails_on_bad_data(mini_root, mini_copy, capsys):
    assert cli.main(["data", "check", "--source", str(mini_root), "--split", "benchmark"]) == 0
    report = json.loads(capsys.readouterr().out)
    data = load_split(mini_root, "benchmark")
    assert report["rows"] == len(data) and report["personas"] == data.questions["persona_id"].nunique()
    assert sum(report["counts"]["pref_type"].values()) == len(data)
    assert report["histories"]["32k"]["files_found"] == report["histories"]["32k"]["distinct_files"]
    assert report["histories"]["128k"]["qwen3_tokens"]["min"] > report["histories"]["32k"]["qwen3_tokens"]["max"]

    def edit(rows):
        rows[1]["updated"] = "maybe"
    _rewrite(mini_copy, edit)
    assert cli.main(["data", "check", "--source", str(mini_copy)]) == 1
    assert "row 1, column 'updated'" in capsys.readouterr().err


def test_hub_source_offline_fails_with_advice(capsys):
    assert cli.main(["data", "check", "--source", "hub"]) == 1
    assert "data/mini" in capsys.readouterr().err


# Quirks of real rows (FACTS.md section 2), one test each.

def _raw(mirror, split):
    return pd.read_csv(mirror / "benchmark" / "text" / f"{split}.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("split", ["train", "val"])
def test_plain_string_short_persona_of_val_and_train_rows_loads(mini_root, split):
    raw = _raw(mini_root, split)
    assert not raw["short_persona"].str.startswith("{").any()
    assert load_split(mini_root, split).questions["short_persona"].tolist() == raw["short_persona"].tolist()
    assert _raw(mini_root, "benchmark")["short_persona"].str.startswith("{'persona': ").all()
    assert not load_split(mini_root, "benchmark").questions["short_persona"].str.startswith("{").any()


def test_short_persona_forms_can_mix_within_one_table(mini_copy):
    def plain(rows):
        rows[1]["short_persona"] = "A plain sentence about a chef."
    _rewrite(mini_copy, plain)
    personas = load_split(mini_copy, "benchmark").questions["short_persona"]
    assert personas.iat[1] == "A plain sentence about a chef." and not personas.iat[0].startswith("{")


@pytest.mark.parametrize("split", ["benchmark", "train", "val"])
def test_data_check_passes_on_a_mirror_copy_of_every_split(mini_copy, split, capsys):
    assert cli.main(["data", "check", "--source", str(mini_copy), "--split", split]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == {"benchmark": 112, "train": 84, "val": 28}[split]


def test_128k_link_is_read_from_its_own_cell_not_derived_from_the_32k_one(mini_copy):
    q = load_split(mini_copy, "benchmark").questions.dropna(subset=["chat_history_128k_link"])
    stamp = re.compile(r"chat_history_(\d{6}_\d{6})_persona\d+\.json")
    for short, long in zip(q["chat_history_32k_link"], q["chat_history_128k_link"]):
        assert stamp.fullmatch(PurePosixPath(long).name)[1] != stamp.fullmatch(PurePosixPath(short).name)[1]
    row = int(q.index[0])
    old = q.at[row, "chat_history_128k_link"]
    new = str(PurePosixPath(old).with_name("chat_history_991231_235959_persona0.json"))
    (mini_copy / old).rename(mini_copy / new)

    def edit(rows):
        for r in rows:
            r["chat_history_128k_link"] = new if r["chat_history_128k_link"] == old else r["chat_history_128k_link"]
    _rewrite(mini_copy, edit)
    data = load_split(mini_copy, "benchmark")
    assert data.chat_history(row, "128k").link == new
    assert data.chat_history(row, "32k").link == q.at[row, "chat_history_32k_link"]


def test_topic_labels_keep_their_case_and_group_case_insensitively(mini_copy):
    labels = ["health", "Health", "HEALTH ", "health_and_medical", "Health and medical"]

    def edit(rows):
        for row, label in zip(rows, labels):
            row["topic_preference"] = label
    _rewrite(mini_copy, edit)
    q = load_split(mini_copy, "benchmark").questions
    assert q["topic_preference"].iloc[:5].tolist() == labels
    assert q["topic_preference_key"].iloc[:5].tolist() == ["health"] * 3 + ["health and medical"] * 2
    assert q["topic_query_key"].tolist() == q["topic_query"].str.casefold().tolist()


def test_flags_written_as_strings_load_as_booleans(mini_root):
    raw, q = _raw(mini_root, "val"), load_split(mini_root, "val").questions
    for column in ("updated", "sensitive_info"):
        assert set(raw[column]) == {"True", "False"}
        assert q[column].tolist() == (raw[column] == "True").tolist()


def test_ask_to_forget_rows_quote_prev_pref_and_are_marked_updated(mini_root):
    q = load_split(mini_root, "benchmark").questions
    forget = q[q["pref_type"] == "ask_to_forget"]
    assert len(forget) and forget["updated"].all()
    assert (forget["preference"] == "Do not remember '" + forget["prev_pref"] + "' in memory").all()


def test_ask_to_forget_rows_with_four_distractors_load_as_five_options(mini_root):
    q = load_split(mini_root, "benchmark").questions
    five = q[q["n_options"] == 5]
    assert len(five) and set(five["pref_type"]) == {"ask_to_forget"}
    assert five["incorrect_answers"].map(len).eq(4).all()


def test_distance_zero_on_sensitive_rows_is_a_count_with_the_evidence_at_the_end(mini_root):
    data = load_split(mini_root, "benchmark")
    q = data.questions
    zero = q.index[q["sensitive_info"] & q["distance_from_related_snippet_to_query_32k"].eq(0)]
    assert len(zero)
    for row in zero:
        snippet = q.at[row, "related_conversation_snippet"]
        assert list(data.chat_history(int(row)).messages[-len(snippet):]) == snippet


def test_shuffled_val_rows_share_one_history_per_persona(mini_root):
    data = load_split(mini_root, "val")
    ids = data.questions["persona_id"].tolist()
    assert 1 + sum(a != b for a, b in zip(ids, ids[1:])) > len(set(ids))  # not grouped by persona
    assert len(data.history_rows()) == len(set(ids))
    for row, pid in enumerate(ids):
        assert data.chat_history(row).metadata["persona_id"] == pid
    assert len(data.histories) == len(set(ids))
    assert load_split(mini_root, "val", limit=5).questions["persona_id"].tolist() == ids[:5]
