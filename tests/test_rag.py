"""The RAG baseline (``rag:`` specs): windows, their order, the prompt, and whether retrieval finds the evidence."""

import math

import numpy as np
import pytest

from pmv2nb import prompts
from pmv2nb.backends import baselines
from pmv2nb.messages import content_text
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import RunSettings, build_task, retrieval, run_eval
from pmv2nb.evaluate.retrieval import Retrieval, excerpt, retrieve, windows
from pmv2nb.evaluate.suite import baseline_specs
from pmv2nb.evaluate.tasks import display_name, split_context


def synthetic(n=20):
    return [{"role": ("user", "assistant")[i % 2], "content": f"message {i}"} for i in range(n)]


def test_windows_have_exact_boundaries():
    assert windows(20) == [(0, 6), (4, 10), (8, 14), (12, 18), (16, 20)]  # stride 4, the last one shorter
    assert windows(18) == [(0, 6), (4, 10), (8, 14), (12, 18)]  # no window inside the one that reached the end
    assert windows(3) == [(0, 3)] and windows(0) == []
    assert windows(10, 4, 0) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        Retrieval(window=4, overlap=4)


class KeywordEmbedder:
    """Stands in for MiniLM: a text's vector counts "bread", so similarity to the query is easy to predict."""

    def encode(self, texts, normalize_embeddings=True, batch_size=32):
        vectors = np.array([[t.count("bread"), 1.0] for t in texts], dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_top_windows_come_back_in_time_order_with_shared_messages_once(monkeypatch):
    monkeypatch.setattr(baselines, "minilm", KeywordEmbedder)
    monkeypatch.setattr(retrieval, "_EMBEDDED", {})
    monkeypatch.setattr(retrieval, "_QUERIES", {})
    history = synthetic()
    history[17]["content"] = "bread bread bread"  # windows (12, 18) and (16, 20), the best two
    history[1]["content"] = "bread"  # window (0, 6), third
    spans = retrieve(history, "bread", Retrieval(top_k=3))
    assert spans == [(0, 6), (12, 18), (16, 20)]
    kept = excerpt(history, spans)
    assert kept == [history[i] for i in [*range(0, 6), *range(12, 20)]]  # 16 and 17 are in two windows, kept once
    assert retrieve(history, "bread", Retrieval(top_k=5)) == windows(20)  # as many windows as k: all of them
    assert len(retrieval._EMBEDDED) == 1


def test_rag_prefix_builds_the_prompt_from_retrieved_messages(benchmark_data):
    assert split_context("rag:hf:smollm2-135m-instruct") == ("rag", "hf:smollm2-135m-instruct")
    assert display_name("rag:hf:models/smollm2") == "rag:hf:smollm2"
    assert baseline_specs("hf:tiny")[-3:] == ["nohistory:hf:tiny", "oracle:hf:tiny", "rag:hf:tiny"]
    history = benchmark_data.history(5, "32k", keep_persona=False)
    task = build_task(benchmark_data, 5, "mcq", "32k", context="rag")
    assert task.messages[0] == {"role": "system", "content": prompts.RAG_INTRO}
    retrieved = task.messages[1:-2]
    positions = [next(i for i, m in enumerate(history) if m is r) for r in retrieved]
    assert positions == sorted(set(positions))  # time order, nothing twice, no persona message
    assert len(task.rag_windows) == 10 and task.rag_windows == sorted(task.rag_windows)
    full = build_task(benchmark_data, 5, "mcq", "32k")
    assert task.messages[-2:] == full.messages[-2:]  # the same query and options as with the whole history
    everything = build_task(benchmark_data, 5, "mcq", "32k", context="rag", retrieval=Retrieval(top_k=1000))
    assert everything.messages[1:-2] == history


def test_retrieval_finds_the_evidence_session_far_more_often_than_chance(benchmark_data, monkeypatch):
    """On every mini benchmark row (32k), does a kept window hold a message of the evidence session?

    The random rate is exact: with W windows of which m touch the evidence, k random ones miss them all
    with probability C(W-m, k) / C(W, k). Measured with MiniLM (16-19 windows per history):
    k=1: 0.31 vs 0.11, k=3: 0.54 vs 0.30, k=10: 0.88 vs 0.79. The data is fixed and MiniLM on the CPU is
    deterministic, so the margins below (about half of each measured gap) only leave room for small
    numeric drift between library versions; a broken retrieval (reversed ranking, wrong query text, no
    persona drop) lands at or under chance.
    """
    monkeypatch.setattr(retrieval, "_EMBEDDED", {})
    q = benchmark_data.questions
    retrieval.embed_queries(list(q["query_text"]))  # one batch, as plan_tasks does
    hits = {k: 0 for k in (1, 3, 10)}
    chance = {k: 0.0 for k in hits}
    for row in range(len(q)):
        history = benchmark_data.history(row, "32k", keep_persona=False)
        texts = [content_text(m["content"]) for m in history]
        snippet = [content_text(m["content"]) for m in q["related_conversation_snippet"].iat[row]]
        start = next(i for i in range(len(texts)) if texts[i:i + len(snippet)] == snippet)
        evidence = set(range(start, start + len(snippet)))
        spans = windows(len(history))
        touching = sum(bool(evidence & set(range(a, b))) for a, b in spans)
        for k in hits:
            kept = retrieve(history, q["query_text"].iat[row], Retrieval(top_k=k))
            hits[k] += any(evidence & set(range(a, b)) for a, b in kept)
            chance[k] += 1 - math.comb(len(spans) - touching, k) / math.comb(len(spans), k)
    rag = {k: hits[k] / len(q) for k in hits}
    rand = {k: chance[k] / len(q) for k in hits}
    assert rag[1] > rand[1] + 0.10 and rag[3] > rand[3] + 0.12 and rag[10] > rand[10] + 0.05, (rag, rand)
    assert len(retrieval._EMBEDDED) == len(set(q["chat_history_32k_link"]))  # each history embedded once


def test_rag_prefix_runs_through_the_pipeline(benchmark_data, tmp_path):
    run = run_eval(benchmark_data, "rag:baseline:bm25", RunSettings(rows=28, eval=EvalSettings(rag_top_k=3)),
                   out=tmp_path / "r.jsonl", cache=tmp_path / "c.sqlite", progress=False)
    rows = run.results
    assert len(rows) == 28 and rows["valid"].all() and set(rows["context"]) == {"rag"}
    assert rows["rag_windows"].map(len).eq(3).all() and rows["dropped_messages"].eq(0).all()
