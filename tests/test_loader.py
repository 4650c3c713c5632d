"""Loading real-layout splits, shared histories, and located errors on broken copies."""

import csv
import json

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
            assert data.load_all_histories(("32k", "128k"), progress=False) > 0


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


def _rewrite(mirror, edit):
    path = mirror / "benchmark" / "text" / "benchmark.csv"
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


def test_malformed_literal_names_row_and_column(mini_copy):
    def edit(rows):
        rows[5]["user_query"] = "{'role': 'user', 'content': 'unterminated}"
    path = _rewrite(mini_copy, edit)
    with pytest.raises(DataError) as err:
        load_split(mini_copy, "benchmark")
    assert (err.value.file, err.value.row, err.value.column) == (str(path), 5, "user_query")


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
