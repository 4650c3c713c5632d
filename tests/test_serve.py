"""The real path: ``transformers serve`` on loopback, called through the ``openai`` client."""

import pytest

from pmv2nb.backends import Sampling
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import RunSettings, run_eval

pytestmark = pytest.mark.slow  # starts transformers serve; `make test-fast` leaves it out


@pytest.fixture(scope="module")
def short():
    return RunSettings(rows=3, chunk_rows=2, sampling=Sampling(max_tokens=16), judge_sampling=Sampling(max_tokens=16),
                       eval=EvalSettings(concurrency=2))


def test_server_answers_multiple_choice_and_caches(tiny_server, benchmark_data, tmp_path, short):
    out, cache = tmp_path / "r.jsonl", tmp_path / "c.sqlite"
    run = run_eval(benchmark_data, tiny_server.spec, short, out=out, cache=cache, progress=False)
    results = run.results
    assert run.new_calls == 3 and len(results) == 3 and not results["cached"].any()
    assert (results["tokens_in"] > 2000).all() and (results["tokens_out"] <= 16).all()
    assert results["latency_s"].gt(0).all() and results["cost_usd"].eq(0).all()
    assert set(results["gold_letter"]) <= set("ABCDE") and results["order"].map(len).ge(4).all()
    again = run_eval(benchmark_data, tiny_server.spec, short, out=tmp_path / "again.jsonl", cache=cache,
                     progress=False)
    assert again.new_calls == 0 and again.results["cached"].all()
    assert list(again.results["response"]) == list(results["response"])

    local = run_eval(benchmark_data, "hf:tiny", short, out=tmp_path / "hf.jsonl", cache=cache, progress=False)
    # same weights, tokenizer and chat template: the prompt is the same number of tokens on both paths
    assert list(local.results["tokens_in"]) == list(results["tokens_in"])


def test_server_is_its_own_judge_for_open_ended_questions(tiny_server, benchmark_data, tmp_path, short):
    settings = RunSettings(**{**short.__dict__, "mode": "open", "rows": 2})
    run = run_eval(benchmark_data, tiny_server.spec, settings, judge=tiny_server.spec, out=tmp_path / "o.jsonl",
                   cache=tmp_path / "c.sqlite", progress=False)
    assert run.new_calls == 2 and run.new_judge_calls == 6
    for _, row in run.results.iterrows():
        assert len(row["judge_responses"]) == 3 and len(row["judge_scores"]) == 3
        assert 0.0 <= row["score"] <= 1.0  # a random-weight judge rarely writes a valid score: counted 0
