"""Evaluation runs: cache reuse, resuming after kill -9, budgets, keys kept out of files, baselines."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from fake_openai import FakeOpenAI

from pmv2nb.backends import ChatRequest, ChatResponse, Sampling
from pmv2nb.backends.openai_http import ALIASES
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import CachedBackend, CallCache, RunSettings, read_results, run_eval
from pmv2nb.evaluate.results import ResultsFile

KEY = "sk-test-0123456789abcdef"


class CountingBackend:
    spec, priced_as = "counting:x", None

    def __init__(self):
        self.seen = []

    def cache_identity(self):
        return {"engine": "counting"}

    def generate(self, requests, on_result=None, progress=False):
        out = []
        for i, request in enumerate(requests):
            self.seen.append(request.messages[0]["content"])
            out.append(ChatResponse(text=f"echo {request.messages[0]['content']}", tokens_in=3))
            if on_result:
                on_result(i, out[-1])
        return out


def test_cache_answers_repeats_and_identical_requests_once(tmp_path):
    inner = CountingBackend()
    cached = CachedBackend(inner, CallCache(tmp_path / "c.sqlite"))
    requests = [ChatRequest([{"role": "user", "content": c}], Sampling(seed=s)) for c, s in
                [("a", 0), ("b", 0), ("a", 0), ("a", 1)]]
    first = cached.generate(requests)
    assert inner.seen == ["a", "b", "a"]  # the duplicate was asked once; another seed is another call
    assert [r.text for r in first] == ["echo a", "echo b", "echo a", "echo a"]
    again = CachedBackend(inner, CallCache(tmp_path / "c.sqlite")).generate(requests)
    assert len(inner.seen) == 3 and all(r.cached for r in again)


def test_torn_last_line_is_cut_and_rows_are_never_duplicated(tmp_path):
    path = tmp_path / "r.jsonl"
    row = {"question_id": "q1", "model": "m", "mode": "mcq", "size": "32k", "variant": 0, "score": 1.0}
    with ResultsFile(path) as results:
        results.append(row)
        results.append(row)
    path.write_text(path.read_text() + '{"question_id": "q2", "mod')  # killed mid-write
    with ResultsFile(path) as results:
        assert ("q1", "m", "mcq", "32k", 0, "chat", "paper", "") in results and len(results.done) == 1
        results.append({**row, "question_id": "q2"})
    assert list(read_results(path)["question_id"]) == ["q1", "q2"]


def test_baselines_run_through_the_pipeline(benchmark_data, tmp_path):
    scores = {}
    for name in ("random", "longest", "shortest", "bm25"):
        run = run_eval(benchmark_data, f"baseline:{name}", out=tmp_path / f"{name}.jsonl",
                       cache=tmp_path / "c.sqlite", progress=False)
        assert len(run.results) == len(benchmark_data) and run.results["valid"].all()
        scores[name] = run.results["correct"].mean()
    q = benchmark_data.questions
    longest = sum(len(q["correct_answer"].iat[r]) > max(map(len, q["incorrect_answers"].iat[r])) for r in range(len(q)))
    assert scores["longest"] == pytest.approx(longest / len(q), abs=0.02)  # ties are rare
    assert scores["bm25"] > 0.3 > scores["random"] - 0.05  # word overlap with the history beats chance
    orders = run_eval(benchmark_data, "baseline:longest", RunSettings(variants=3), out=tmp_path / "v.jsonl",
                      cache=tmp_path / "c.sqlite", progress=False).results
    assert len(orders) == 3 * len(q)
    # with a unique longest option the pick is the same text whatever the order; ties go to the first letter
    lengths = [sorted(map(len, [q["correct_answer"].iat[r], *q["incorrect_answers"].iat[r]])) for r in range(len(q))]
    unique = {q["question_id"].iat[r] for r, ls in enumerate(lengths) if ls[-1] != ls[-2]}
    agree = orders.groupby("question_id")["correct"].nunique()
    assert (agree[agree.index.isin(unique)] == 1).all() and len(unique) > 80


def test_nohistory_and_oracle_prefixes_change_what_the_model_sees(benchmark_data, tmp_path):
    full = run_eval(benchmark_data, "baseline:bm25", out=tmp_path / "f.jsonl", cache=tmp_path / "c.sqlite",
                    progress=False).results
    blind = run_eval(benchmark_data, "nohistory:baseline:bm25", out=tmp_path / "n.jsonl", cache=tmp_path / "c.sqlite",
                     progress=False).results
    assert set(blind["context"]) == {"none"} and set(full["context"]) == {"full"}
    assert blind["response"].str.contains("bm25 scores: A=0, B=0").all()  # nothing to retrieve from
    assert full["correct"].mean() > blind["correct"].mean()


def test_budget_stops_cleanly_and_a_rerun_continues(benchmark_data, tmp_path, monkeypatch):
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        settings = RunSettings(rows=24, chunk_rows=4, budget_usd=0.05, sampling=Sampling(max_tokens=64))
        out, cache = tmp_path / "r.jsonl", tmp_path / "c.sqlite"
        first = run_eval(benchmark_data, "openai:gpt-4.1", settings, out=out, cache=cache, progress=False)
        assert "budget of $0.05 reached" in first.stopped
        assert 0 < len(first.results) < 24 and first.spent_usd <= 0.05
        assert first.results["cost_usd"].sum() == pytest.approx(first.spent_usd)
        assert first.results["cost_usd"].iloc[0] == pytest.approx((1000 * 2.0 + 10 * 8.0) / 1e6)
        settings.budget_usd = 1.0
        second = run_eval(benchmark_data, "openai:gpt-4.1", settings, out=out, cache=cache, progress=False)
    assert not second.stopped and len(second.results) == 24
    assert len(fake.answered) == len(set(fake.answered)) == 24
    for path in (out, cache):
        assert KEY.encode() not in path.read_bytes()


def test_open_ended_scores_are_the_mean_of_three_judge_calls(benchmark_data, tmp_path, monkeypatch):
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        run = run_eval(benchmark_data, "openai:gpt-4.1-mini", RunSettings(mode="open", rows=8),
                       judge="openai:gpt-4.1", out=tmp_path / "o.jsonl", cache=tmp_path / "c.sqlite", progress=False)
    results = run.results
    assert run.new_calls == 8 and run.new_judge_calls == 24
    for _, row in results.iterrows():
        assert len(row["judge_scores"]) == 3
        assert row["score"] == pytest.approx(sum(row["judge_scores"]) / 3)
    judged = [body for body in fake.requests if body["model"] == "gpt-4.1-2025-04-14"]  # the dated snapshot
    assert sorted(body["seed"] for body in judged) == [0] * 8 + [1] * 8 + [2] * 8
    preferences = benchmark_data.questions.set_index("question_id")["preference"]
    for _, row in results.iterrows():
        prompts_for_row = [b["messages"][0]["content"] for b in judged
                           if preferences[row["question_id"]] in b["messages"][0]["content"]]
        assert len(prompts_for_row) == 3
        negative = row["pref_type"] == "ask_to_forget"
        assert all(("left out" in text) == negative for text in prompts_for_row)


def _cache_keys(path):
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM calls")}


def test_a_killed_run_resumes_with_every_row_once_and_no_repeated_calls(benchmark_data, tmp_path):
    out, cache = tmp_path / "r.jsonl", tmp_path / "c.sqlite"
    with FakeOpenAI(delay_s=0.05) as fake:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url}
        command = [sys.executable, "-m", "pmv2nb.cli", "eval", "--source", "data/mini",
                   "--model", "openai:gpt-4.1-mini",
                   "--rows", "48", "--concurrency", "2", "--out", str(out), "--cache", str(cache)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(fake.answered) < 40:  # first chunk written, second under way
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(fake.answered) >= 40, process.stdout.read().decode()[-2000:]
        done_before = len(read_results(out))
        stored_before = _cache_keys(cache)
        answered_before = len(fake.answered)
        assert 0 < done_before < 48 and len(stored_before) > done_before

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert "48 result rows" in resumed.stdout
        rows = read_results(out)
        assert len(rows) == 48 and rows["question_id"].is_unique
        # calls that finished before the kill were cached and never asked again; at most the two in flight repeat
        assert len(fake.answered) - answered_before <= 48 - len(stored_before) + 2
        assert len(fake.answered) - len(set(fake.answered)) <= 2

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert "(0 new model calls" in again.stdout
        assert len(read_results(out)) == 48


def test_cli_dry_run_calls_nothing_and_report_prints_breakdowns(benchmark_data, tmp_path, capsys, monkeypatch):
    import json

    from pmv2nb import cli

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: any call would fail
    assert cli.main(["eval", "--source", "data/mini", "--model", "openai:gpt-4.1", "--mode", "open", "--judge",
                     "openai:gpt-4.1-mini", "--rows", "10", "--max-tokens", "2000", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["calls"] == 10 and plan["judge_calls"] == 30 and plan["tokens_out_max"] == 20000
    # ten questions of one persona: all but the first find its history in the API's prompt cache
    assert plan["cost_usd_max"] > plan["cost_usd_no_cache"] > plan["cost_usd_expected"] > 0
    assert plan["tokens_in_cached_expected"] > 0.8 * plan["tokens_in"]
    out = tmp_path / "bm25.jsonl"
    # the profile's row count is the default, as in the notebooks; "none" asks for every row
    assert cli.main(["eval", "--source", "data/mini", "--model", "baseline:bm25", "--out", str(out),
                     "--cache", str(tmp_path / "c.sqlite"), "--set", "eval.mcq_rows=none"]) == 0
    assert "112 result rows" in capsys.readouterr().out
    assert cli.main(["report", str(out), "--by", "overall", "who"]) == 0
    text = capsys.readouterr().out
    assert "### overall" in text and "### who" in text and "| who | others | baseline:bm25 |" in text
    assert cli.main(["report", str(out), "--format", "csv", "--by", "pref_type"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 7


def _api(monkeypatch, fake):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)


def test_replies_cut_at_the_cap_are_summarised_and_warned_about_only_when_they_lost_their_answer(
        benchmark_data, tmp_path, monkeypatch, capsys):

    from pmv2nb.evaluate import breakdown

    settings = RunSettings(rows=4, sampling=Sampling(max_tokens=16))
    with FakeOpenAI(finish_reason="length") as fake:  # cut, but after the letter: a cap sized as designed
        _api(monkeypatch, fake)
        kept = run_eval(benchmark_data, "openai:gpt-5-mini", settings, out=tmp_path / "kept.jsonl",
                        cache=tmp_path / "kept.sqlite", progress=False)
    assert kept.warning == "" and "reply cap" not in capsys.readouterr().err
    assert breakdown(kept.results)["cut_rate"].item() == 1.0 and kept.results["valid"].all()
    with FakeOpenAI(finish_reason="length", answer_text="Let me weigh each option in") as fake:
        _api(monkeypatch, fake)
        cut = run_eval(benchmark_data, "openai:gpt-5-mini", settings, out=tmp_path / "cut.jsonl",
                       cache=tmp_path / "c.sqlite", progress=False)
        printed = capsys.readouterr().err
        uncapped = run_eval(benchmark_data, "openai:gpt-5-mini", settings.with_eval(api_sampling="none"),
                            out=tmp_path / "none.jsonl", cache=tmp_path / "c.sqlite", progress=False)
    assert cut.warning in printed
    assert ("4 of 4 mcq replies of openai:gpt-5-mini (32k) stopped at the reply cap (finish_reason 'length') "
            "without a readable answer") in cut.warning
    assert "eval.mcq_max_new_tokens" in cut.warning and "eval.reasoning_tokens" in cut.warning
    assert "eval.api_sampling=none" in uncapped.warning
    assert breakdown(cut.results)["cut_rate"].item() == 1.0
    assert set(cut.results["served_model"]) == {"gpt-5-mini-2025-08-07"}
    whole = run_eval(benchmark_data, "baseline:bm25", RunSettings(rows=4), out=tmp_path / "bm25.jsonl",
                     cache=tmp_path / "c.sqlite", progress=False)
    assert whole.warning == "" and breakdown(whole.results)["cut_rate"].item() == 0.0


def test_fit_history_on_error_cuts_only_a_refused_row_and_retries_it_once(benchmark_data, tmp_path, monkeypatch):
    from dataclasses import replace

    from pmv2nb.backends import ContextTooLongError

    # the mini histories are about 2,800 tokens; the fake server takes 2,000, the cut keeps 1,500
    before = RunSettings(rows=4, sampling=Sampling(max_tokens=16),
                         eval=EvalSettings(concurrency=2, max_prompt_tokens=1500))
    on_error = before.with_eval(fit_history="on_error")
    cache = tmp_path / "c.sqlite"
    with FakeOpenAI(context_tokens=2000) as fake:
        _api(monkeypatch, fake)
        theirs = run_eval(benchmark_data, "openai:gpt-4.1", on_error, out=tmp_path / "theirs.jsonl", cache=cache,
                          progress=False)
        refused_whole = fake.refused
        sent_whole = [FakeOpenAI.prompt_tokens(body) for body in fake.requests[:2]]
        ours = run_eval(benchmark_data, "openai:gpt-4.1", before, out=tmp_path / "ours.jsonl", cache=cache,
                        progress=False)
        refused_after = fake.refused
        with pytest.raises(ContextTooLongError, match="refused again after"):  # the cut still too long: once only
            run_eval(benchmark_data, "openai:gpt-4.1", replace(on_error, rows=1).with_eval(max_prompt_tokens=2700),
                     out=tmp_path / "again.jsonl", cache=cache, progress=False)
    assert refused_whole == 4 and min(sent_whole) > 2000  # every whole history went out first
    rows = theirs.results
    assert rows["retried_shorter"].all() and (rows["dropped_messages"] > 0).all()
    assert refused_after == 4 and not ours.results["retried_shorter"].any()  # cut before sending: never refused
    assert (ours.results["dropped_messages"] == rows["dropped_messages"]).all()
    assert ours.new_calls == 0  # the same rule and limit cut the same messages, so the cache had every answer
    assert fake.refused == 6 and len(fake.answered) == len(set(fake.answered))


def _query_turn(body):
    """The question's own turn and the options or judge frame after it (the history before is left out)."""
    return str(body["messages"][-2:])


def test_a_row_that_keeps_failing_is_named_and_a_rerun_asks_only_for_it(benchmark_data, tmp_path, capsys,
                                                                       monkeypatch):
    from pmv2nb import cli

    q = benchmark_data.questions
    stuck = q["query_text"].iat[3]
    out, cache = tmp_path / "r.jsonl", tmp_path / "c.sqlite"
    command = ["eval", "--source", "data/mini", "--model", "openai:gpt-4.1-mini", "--rows", "12",
               "--concurrency", "4", "--out", str(out), "--cache", str(cache)]
    with FakeOpenAI(fail_when=lambda body: stuck in _query_turn(body)) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        assert cli.main(command) == 4
        printed = capsys.readouterr()
        assert "11 result rows" in printed.out
        assert "1 task(s) failed" in printed.err and f"row 3 ({q['question_id'].iat[3]}" in printed.err
        assert "still failing after 7 attempts" in printed.err
        rows = read_results(out)
        assert len(rows) == 11 and q["question_id"].iat[3] not in set(rows["question_id"])
        assert fake.failures == 7 and len(_cache_keys(cache)) == 11  # the failure was never cached

        fake.fail_when = None  # healed
        asked_before = len(fake.requests)
        assert cli.main(command) == 0
        assert "12 result rows" in capsys.readouterr().out
        asked = fake.requests[asked_before:]
    assert len(asked) == 1 and stuck in _query_turn(asked[0])  # only the failed row was asked again
    rows = read_results(out)
    assert len(rows) == 12 and rows["question_id"].is_unique


def test_a_judge_call_that_keeps_failing_fails_its_row_and_the_rest_are_written(benchmark_data, tmp_path,
                                                                                monkeypatch):
    q = benchmark_data.questions
    stuck = q["query_text"].iat[2]

    def judged_row_two(body):
        return body["model"] == ALIASES["gpt-4.1"] and stuck in _query_turn(body)  # the judge's dated name

    settings = RunSettings(mode="open", rows=6, chunk_rows=4)
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite"
    with FakeOpenAI(fail_when=judged_row_two) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        first = run_eval(benchmark_data, "openai:gpt-4.1-mini", settings, judge="openai:gpt-4.1", out=out,
                         cache=cache, progress=False)
        assert [(f.row, f.question_id) for f in first.failed] == [(2, q["question_id"].iat[2])]
        assert len(first.results) == 5 and not first.stopped
        assert "row 2 (" in first.failure_summary()
        fake.fail_when = None
        asked_before = len(fake.requests)
        second = run_eval(benchmark_data, "openai:gpt-4.1-mini", settings, judge="openai:gpt-4.1", out=out,
                          cache=cache, progress=False)
        asked = fake.requests[asked_before:]
    assert not second.failed and len(second.results) == 6
    # the row's answer came from the cache; only its three judge calls were asked again
    assert second.new_calls == 0 and second.new_judge_calls == 3
    assert [b["model"] for b in asked] == [ALIASES["gpt-4.1"]] * 3


def test_a_second_writer_is_refused_and_a_killed_holder_blocks_nothing(tmp_path):
    from pmv2nb.evaluate.results import ResultsBusyError

    path = tmp_path / "r.jsonl"
    with ResultsFile(path):
        with pytest.raises(ResultsBusyError, match=f"r.jsonl is being written by another run \\(PID {os.getpid()}"):
            ResultsFile(path)
    ResultsFile(path).close()  # released on close

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pmv2nb.evaluate.results import ResultsFile\n"
                               "f = ResultsFile(sys.argv[1])\nprint('holding', flush=True)\ntime.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ResultsBusyError, match=f"PID {holder.pid} "):
            ResultsFile(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with ResultsFile(path) as results:  # the kernel dropped the dead process's lock
        results.append({"question_id": "q1", "model": "m", "mode": "mcq", "size": "32k", "variant": 0})
    assert len(read_results(path)) == 1


def test_a_second_identical_run_while_the_first_writes_is_refused_and_each_row_is_written_once(tmp_path):
    from pmv2nb.evaluate.results import owner_path

    out, cache = tmp_path / "r.jsonl", tmp_path / "c.sqlite"
    with FakeOpenAI(delay_s=0.4) as fake:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url}
        command = [sys.executable, "-m", "pmv2nb.cli", "eval", "--source", "data/mini",
                   "--model", "openai:gpt-4.1-mini", "--rows", "16", "--concurrency", "1",
                   "--out", str(out), "--cache", str(cache)]

        def start():
            return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        first = start()
        deadline = time.monotonic() + 60
        while not owner_path(out).exists():  # the first run holds the file (about 6 s of calls still to go)
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        runs = [first, start()]
        finished = [(run, *run.communicate(timeout=120)) for run in runs]
    rows = read_results(out)
    assert len(rows) == 16 and rows["question_id"].is_unique
    assert len(fake.answered) == len(set(fake.answered)) == 16  # no call paid twice
    (winner, won, _), = [f for f in finished if f[0].returncode == 0]
    (loser, _, refused), = [f for f in finished if f[0].returncode != 0]
    assert "16 result rows" in won and loser.returncode == 1
    assert f"{out} is being written by another run (PID {winner.pid} " in refused


def test_caches_opened_on_a_new_file_at_the_same_moment_all_open(tmp_path):
    import threading

    # SQLite refuses a journal-mode switch at once ("database is locked") instead of waiting out the busy
    # timeout; before the cache retried it, 5 of these 240 openings failed, and 19 of 90 processes opened together
    errors = []
    for attempt in range(40):
        path, start = tmp_path / f"c{attempt}.sqlite", threading.Barrier(6)

        def open_cache():
            start.wait()
            try:
                CallCache(path).close()
            except Exception as err:  # collected and asserted below
                errors.append(err)

        threads = [threading.Thread(target=open_cache) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors


def test_the_call_cache_takes_writes_from_two_processes_at_once(tmp_path):
    path = tmp_path / "c.sqlite"
    script = ("import sys\nfrom pmv2nb.backends import ChatResponse\nfrom pmv2nb.evaluate.cache import CallCache\n"
              "cache = CallCache(sys.argv[1])\nfor i in range(300):\n"
              "    cache.put(f'{sys.argv[2]}-{i}', 'm', ChatResponse(text=str(i)))\n"
              "    cache.put(f'shared-{i % 50}', 'm', ChatResponse(text='same'))\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), name], stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    errors = [w.communicate(timeout=60)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    keys = _cache_keys(path)
    assert len(keys) == 650 and CallCache(path).get_many(["a-299", "b-0"])["b-0"].text == "0"


def test_cached_input_is_billed_at_the_cached_rate_and_the_rows_add_up(benchmark_data, tmp_path, monkeypatch):
    """Eight requests at a time to a server that takes a while: the cache only holds a history once its first
    question has been answered, so each persona's first question must go alone for the others to hit it."""
    from pmv2nb.evaluate.cost import call_cost, cacheable

    # a dated snapshot costs what its family does; cached tokens are part of the prompt, never more than it
    assert call_cost("gpt-4.1-mini-2025-04-14", 2000, 10, 1024) == pytest.approx((976 * 0.40 + 1024 * 0.10
                                                                                   + 10 * 1.60) / 1e6)
    assert call_cost("gpt-4.1-mini", 100, 0, 500) == pytest.approx(100 * 0.10 / 1e6)
    assert [cacheable(n) for n in (1023, 1024, 1151, 1152, 30_000)] == [0, 1024, 1024, 1152, 29_952]
    settings = RunSettings(rows=28, chunk_rows=8, sampling=Sampling(max_tokens=64))  # two personas, 14 rows each
    assert settings.eval.concurrency == 8
    with FakeOpenAI(prompt_cache=True, delay_s=0.05) as fake:
        _api(monkeypatch, fake)
        run = run_eval(benchmark_data, "openai:gpt-4.1-mini", settings, out=tmp_path / "r.jsonl",
                       cache=tmp_path / "c.sqlite", progress=False)
    rows = run.results
    assert len(rows) == 28 and not rows["cached"].any()
    # each persona's first prompt to arrive shares nothing long with any earlier one; every other one finds the
    # history in the cache (in 128-token steps, from 1,024 on) and pays the full rate only for what follows it
    for _, persona in rows.groupby("persona_id"):
        assert (persona["cached_tokens_in"] == 0).sum() == 1
        hits = persona[persona["cached_tokens_in"] > 0]
        assert len(hits) == 13 and (hits["cached_tokens_in"] % 128 == 0).all()
        assert (hits["cached_tokens_in"] >= 1024).all() and (hits["cached_tokens_in"] < hits["tokens_in"]).all()
        assert (hits["cached_tokens_in"] > 0.8 * hits["tokens_in"]).all()  # the history is most of the prompt
    expected = (rows["tokens_in"] - rows["cached_tokens_in"]) * 0.40 + rows["cached_tokens_in"] * 0.10 \
        + rows["tokens_out"] * 1.60
    assert list(rows["cost_usd"]) == pytest.approx(list(expected / 1e6))
    assert rows["cost_usd"].sum() == pytest.approx(run.spent_usd)
    uncached = (rows["tokens_in"] * 0.40 + rows["tokens_out"] * 1.60).sum() / 1e6
    assert run.spent_usd < 0.5 * uncached


def test_the_cost_plan_pays_each_history_once_and_budgets_for_no_cache_hits(benchmark_data):
    from pmv2nb.evaluate.cost import cacheable
    from pmv2nb.evaluate.runner import _Tokens, estimate
    from pmv2nb.prompts import boxed_system

    plan = estimate(benchmark_data, "openai:gpt-4.1", RunSettings(rows=28, sampling=Sampling(max_tokens=2000)))
    q = benchmark_data.questions
    # chat format: the history leads every prompt and the query follows, so all but a persona's first question
    # reuse exactly its history
    known = q["total_tokens_in_chat_history_32k"].iloc[:28]
    first = ~q["chat_history_32k_link"].iloc[:28].duplicated()
    assert first.sum() == 2
    assert plan["tokens_in_cached_expected"] == sum(cacheable(int(n)) for n in known[~first])
    assert plan["tokens_in"] > plan["tokens_in_cached_expected"] > 0.8 * plan["tokens_in"]
    cached, full = plan["tokens_in_cached_expected"], plan["tokens_in"]
    out = plan["tokens_out_expected"] * 8.0
    assert plan["cost_usd_expected"] == pytest.approx(((full - cached) * 2.0 + cached * 0.5 + out) / 1e6)
    assert plan["cost_usd_no_cache"] == pytest.approx((full * 2.0 + out) / 1e6)
    assert plan["cost_usd_max"] > plan["cost_usd_no_cache"] > 1.5 * plan["cost_usd_expected"]
    # the boxed format opens with its instruction, then the history: both are shared
    boxed = estimate(benchmark_data, "openai:gpt-4.1", RunSettings(rows=16, prompt_format="boxed"))
    instruction = _Tokens().messages([boxed_system()])
    assert boxed["tokens_in_cached_expected"] == sum(cacheable(int(n) + instruction) for n in known[~first][:14])
    # without a history nothing long repeats
    blind = estimate(benchmark_data, "nohistory:openai:gpt-4.1", RunSettings(rows=16))
    assert blind["tokens_in_cached_expected"] == 0 and blind["cost_usd_expected"] == blind["cost_usd_no_cache"]


def test_a_personas_questions_are_sent_together_and_each_task_is_unchanged(mini_root, tmp_path):
    from pmv2nb.data import load_split
    from pmv2nb.evaluate.runner import plan_tasks

    val = load_split(mini_root, "val")  # its file order alternates between two histories
    settings = RunSettings(variants=2)
    file_order = [build for row in range(len(val)) for build in ((row, 0), (row, 1))]
    tasks, _ = plan_tasks(val, "baseline:longest", settings)
    links = val.questions["chat_history_32k_link"]

    def switches(rows) -> int:  # how often the history changes from one prompt to the next
        return sum(links.iat[a] != links.iat[b] for a, b in zip(rows, rows[1:]))

    assert switches(range(len(val))) == 12
    assert switches([t.row for t in tasks]) == links.nunique() - 1 == 1
    assert sorted((t.row, t.variant) for t in tasks) == sorted(file_order)
    for link in links.unique():  # within a history, file order and each row's variants in order
        mine = [(t.row, t.variant) for t in tasks if links.iat[t.row] == link]
        assert mine == [pair for pair in file_order if links.iat[pair[0]] == link]
    run = run_eval(val, "baseline:longest", settings, out=tmp_path / "v.jsonl", cache=tmp_path / "c.sqlite",
                   progress=False)
    assert switches(list(run.results["row"])) == 1
    assert len(run.results) == 2 * len(val)


def test_a_profile_run_writes_where_its_profile_says_and_carries_its_eval_section(benchmark_data, tmp_path):
    from pmv2nb import config
    from pmv2nb.evaluate.suite import profile_settings, run_suite

    moved = config.resolve("tiny", {"results_dir": str(tmp_path / "elsewhere"), "eval.parser": "strict"})
    settings = profile_settings(moved, "mcq", "32k")
    assert settings.eval is moved.eval and settings.train_prompt is moved.train_prompt  # carried, not copied
    assert settings.results_folder() == tmp_path / "elsewhere" / "eval" == moved.eval_dir()
    results, runs = run_suite(benchmark_data, moved, ["baseline:bm25"], modes=("mcq",), sizes=("32k",),
                              mcq_rows=3, progress=False)
    assert runs[0].path.parent == tmp_path / "elsewhere" / "eval" and len(results) == 3
    assert moved.cache_path().exists() and moved.cache_path().parent == tmp_path / "elsewhere" / "cache"
    # the same run without a profile's folder: the default profile's
    assert RunSettings().results_folder() == config.resolve("tiny").eval_dir()


def test_no_cap_warning_for_a_base_model_asked_in_a_format_it_never_learned(tmp_path):
    import json

    import pandas as pd

    from pmv2nb.evaluate.runner import cut_replies_warning

    run = tmp_path / "sft"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"stage": "sft", "prompt_format": "boxed"}))

    def rows(model, prompt_format):  # two prose replies, both cut at the cap, neither with a letter
        return pd.DataFrame([{"model": model, "mode": "mcq", "size": "32k", "protocol": "paper",
                              "prompt_format": prompt_format, "finish_reason": "length", "valid": False}] * 2)

    boxed, chat = RunSettings(prompt_format="boxed"), RunSettings(prompt_format="chat")
    assert cut_replies_warning(rows("hf:tiny", "boxed"), "hf:tiny", boxed) == ""  # its invalid rate, by design
    assert "2 of 2 mcq replies of hf:tiny" in cut_replies_warning(rows("hf:tiny", "chat"), "hf:tiny", chat)
    trained = f"hf:{run}"  # the run that learned the format: a cut reply there did lose its answer
    assert "stopped at the reply cap" in cut_replies_warning(rows(trained, "boxed"), trained, boxed)
    api = "openai:gpt-4.1"  # an API model follows the format: the cap is worth naming
    assert "stopped at the reply cap" in cut_replies_warning(rows(api, "boxed"), api, boxed)
