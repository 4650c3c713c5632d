"""The embedded mini dataset: deterministic, committed as generated, and shaped like the real data."""

import csv
import io
import json
import re

import pytest

from pmv2nb.data import PREF_TYPES, SCENARIOS, load_split
from pmv2nb.data.mini import build_mini_dataset, write_mini_dataset
from pmv2nb.data.mini_catalogue import FACETS
from pmv2nb.answers import content_words
from pmv2nb.backends.baselines import bm25_scores
from pmv2nb.data.stats import length_shortcut_rates


@pytest.fixture(scope="module")
def generated():
    return build_mini_dataset(seed=0)


def test_generator_is_deterministic_and_seed_dependent(generated):
    assert build_mini_dataset(seed=0) == generated
    assert build_mini_dataset(seed=1)["benchmark/text/benchmark.csv"] != generated["benchmark/text/benchmark.csv"]


def test_committed_copy_equals_a_fresh_generation(generated, mini_root):
    committed = {str(p.relative_to(mini_root)): p.read_bytes() for p in mini_root.rglob("*") if p.is_file()}
    assert sorted(committed) == sorted(generated), "file lists differ: run `pmv2nb mini-data data/mini --seed 0`"
    stale = [name for name, data in generated.items() if committed[name] != data]
    assert not stale, f"stale files, regenerate with `pmv2nb mini-data data/mini --seed 0`: {stale[:5]}"


def test_writer_refuses_to_overwrite_an_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_mini_dataset(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.fixture(scope="module")
def splits(mini_root):
    return {name: load_split(mini_root, name) for name in ("benchmark", "train", "val")}


def test_coverage_matches_the_issue(splits):
    questions = [s.questions for s in splits.values()]
    personas = [set(q["persona_id"]) for q in questions]
    assert 12 <= len(set().union(*personas)) <= 20
    assert 150 <= sum(len(q) for q in questions) <= 300
    assert not (personas[0] & personas[1]) and not (personas[0] & personas[2]) and not (personas[1] & personas[2])
    bench = splits["benchmark"].questions
    assert set(bench["pref_type"]) == set(PREF_TYPES)
    assert set(bench["conversation_scenario"]) == set(SCENARIOS)
    assert set(bench["who"]) == {"self", "others"} and set(bench["updated"]) == {True, False}
    assert bench["sensitive_info"].any() and (bench["n_options"] == 5).any()
    updated = bench[bench["updated"]]
    assert updated["prev_pref"].notna().all()
    forget = bench[bench["pref_type"] == "ask_to_forget"]
    assert forget["preference"].str.startswith("Do not remember").all()


def test_128k_histories_are_several_times_longer(splits):
    bench = splits["benchmark"].questions.dropna(subset=["chat_history_128k_link"])
    ratio = bench["total_tokens_in_chat_history_128k"] / bench["total_tokens_in_chat_history_32k"]
    assert 1000 < bench["total_tokens_in_chat_history_32k"].min() and ratio.min() > 3
    assert ((bench["num_persona_irrelevant_tokens_32k"] == 0).all()
            and (bench["num_persona_irrelevant_tokens_128k"] > 0).all())


def test_evidence_precedes_the_query_and_updates_follow_the_old_preference(splits):
    data = splits["benchmark"]
    detail_of = {c.preference[0].upper() + c.preference[1:]: c.detail for f in FACETS for c in f.choices}
    checked = 0
    for row in data.questions.index:
        q = data.questions.loc[row]
        history = data.chat_history(row).messages
        starts = [i for i, m in enumerate(history) if m == q["related_conversation_snippet"][0]]
        assert starts, f"row {row}: evidence not in history"
        assert 0 <= q["distance_from_related_snippet_to_query_32k"] < q["total_tokens_in_chat_history_32k"]
        if q["updated"] or q["pref_type"] == "ask_to_forget":
            # the earlier preference (or the one later asked to be forgotten) is revealed before the evidence
            earlier = [i for i, m in enumerate(history)
                       if m["role"] == "user" and detail_of[q["prev_pref"]] in m["content"]]
            assert earlier and min(earlier) < starts[0], f"row {row}: old preference not revealed first"
            checked += 1
    assert checked >= 20


def _bm25_pick(documents, options):
    """The option with the strictly best BM25 match to one user message (the package's baseline scorer)."""
    scores = [max(bm25_scores(documents, content_words(o))) for o in options]
    best = max(scores)
    return scores.index(best) if scores.count(best) == 1 else None  # a tie is not a hit for the gold


def test_gold_is_recoverable_from_the_history_but_not_from_option_length(splits):
    data = splits["benchmark"]
    hits = 0
    for row in data.questions.index:
        q = data.questions.loc[row]
        users = [content_words(m["content"])
                 for m in data.history(row, keep_persona=False, text_only=True) if m["role"] == "user"]
        hits += _bm25_pick(users, [q["correct_answer"]] + q["incorrect_answers"]) == 0
    chance = (1 / data.questions["n_options"]).mean()
    assert hits / len(data) > chance + 0.08
    rates = length_shortcut_rates(data.questions)
    assert rates.loc["all", "gold_longest"] <= 0.45  # the real benchmark's rate
    assert rates.loc["all", "gold_shortest"] <= 0.45


def _tables(generated, modality="text"):
    return {split: list(csv.DictReader(io.StringIO(generated[f"benchmark/{modality}/{split}.csv"].decode())))
            for split in ("benchmark", "train", "val")}


def test_generator_reproduces_the_quirks_of_real_rows(generated):
    tables = _tables(generated)
    assert {split: len(rows) for split, rows in tables.items()} == {"benchmark": 112, "train": 84, "val": 28}
    assert all(r["short_persona"].startswith("{'persona': ") for r in tables["benchmark"])
    assert not any(r["short_persona"].startswith("{") for split in ("train", "val") for r in tables[split])
    for split, rows in tables.items():
        labels = {r["topic_query"] for r in rows} | {r["topic_preference"] for r in rows}
        assert any(label != label.lower() and label.lower() in labels for label in labels), split
        assert "health_and_medical" in {r["topic_preference"].lower() for r in rows}
        forget = [r for r in rows if r["pref_type"] == "ask_to_forget"]
        assert all(r["preference"] == f"Do not remember '{r['prev_pref']}' in memory" and r["updated"] == "True"
                   for r in forget)
        assert any(len(json.loads(r["incorrect_answers"])) == 4 for r in forget), split
        assert any(r["pref_type"] == "sensitive_info" and r["distance_from_related_snippet_to_query_32k"] == "0"
                   for r in rows), split


def test_history_names_carry_their_own_time_stamps_and_val_is_shuffled(generated):
    stamp = re.compile(r"data/chat_history_(?:multimodal_)?(32k|128k)/chat_history_(\d{6}_\d{6})_persona(\d+)\.json")
    for rows in _tables(generated).values():
        for r in rows:
            if r["chat_history_128k_link"]:
                short, long = stamp.fullmatch(r["chat_history_32k_link"]), stamp.fullmatch(r["chat_history_128k_link"])
                assert short[3] == long[3] == r["persona_id"] and short[2] != long[2]
    ids = [r["persona_id"] for r in _tables(generated)["val"]]
    assert 1 + sum(a != b for a, b in zip(ids, ids[1:])) > len(set(ids))
    assert [r["persona_id"] for r in _tables(generated, "multimodal")["val"]] == ids
