"""Cell parsers, with the quirks of the real CSV."""

import json

import pytest

from pmv2nb import messages
from pmv2nb.data import columns


def test_user_query_is_a_python_literal_and_switches_quotes_around_apostrophes():
    plain = repr({"role": "user", "content": "Plan my week"})
    with_apostrophe = repr({"role": "user", "content": "What's a good film?"})
    assert plain.startswith("{'role'") and '"What\'s a good film?"' in with_apostrophe
    assert columns.parse_message(plain)["content"] == "Plan my week"
    assert columns.parse_message(with_apostrophe)["content"] == "What's a good film?"


def test_user_query_rejects_json_style_nulls_and_missing_keys():
    with pytest.raises(ValueError, match="not a Python literal"):
        columns.parse_message('{"role": "user", "content": null}')
    with pytest.raises(ValueError, match="'role' and 'content'"):
        columns.parse_message("{'content': 'hi'}")


def test_multimodal_content_parts_keep_images_addressable_and_have_a_text_view():
    parts = [{"type": "text", "text": "What is in my photo?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    message = columns.parse_message(repr({"role": "user", "content": parts}))
    assert messages.content_images(message["content"]) == ["data:image/png;base64,AAAA"]
    assert messages.content_text(message["content"]) == "What is in my photo?\n[image]"
    with pytest.raises(ValueError, match="no url"):
        columns.parse_message(repr({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}))


@pytest.mark.parametrize("n", [3, 4])
def test_incorrect_answers_are_json_lists_of_three_or_four(n):
    assert columns.parse_answer_list(json.dumps([f"option {i}" for i in range(n)])) == [f"option {i}" for i in range(n)]


@pytest.mark.parametrize("bad", ["['single quotes']", "[]", '["ok", ""]', '"just a string"', "[1, 2, 3]"])
def test_incorrect_answers_reject_malformed_cells(bad):
    with pytest.raises(ValueError):
        columns.parse_answer_list(bad)


def test_booleans_counts_and_optional_cells():
    assert columns.parse_bool("True") is True and columns.parse_bool("false") is False
    with pytest.raises(ValueError):
        columns.parse_bool("yes")
    assert columns.parse_int("1234.0") == 1234
    with pytest.raises(ValueError):
        columns.parse_int("12.5")
    assert columns.parse_optional_int("") is None and columns.parse_optional_text("  ") is None
    assert columns.parse_short_persona("{'persona': 'A chef'}") == "A chef"


def test_data_error_names_file_row_and_column():
    err = columns.DataError("bad cell", file="benchmark.csv", row=7, column="user_query")
    assert str(err) == "benchmark.csv, row 7, column 'user_query': bad cell"
    assert (err.file, err.row, err.column) == ("benchmark.csv", 7, "user_query")


def test_short_persona_is_a_dict_literal_in_benchmark_rows_and_a_plain_string_in_val_rows():
    assert columns.parse_short_persona("{'persona': 'A chef'}") == "A chef"
    assert columns.parse_short_persona("A 28-year-old chef in Lyon.") == "A 28-year-old chef in Lyon."
    assert columns.parse_short_persona("'A quoted chef'") == "'A quoted chef'"  # parses as Python, stays text
    with pytest.raises(ValueError, match="'persona' string"):
        columns.parse_short_persona("{'name': 'A chef'}")
    with pytest.raises(ValueError, match="not a Python literal"):
        columns.parse_short_persona("{'persona': 'unterminated}")
    with pytest.raises(ValueError, match="empty"):
        columns.parse_short_persona("  ")


def test_topic_keys_ignore_case_and_separators_of_real_labels():
    assert {columns.topic_key(label) for label in ("health", "Health", " HEALTH ")} == {"health"}
    assert columns.topic_key("health_and_medical") == columns.topic_key("Health and  medical") == "health and medical"
