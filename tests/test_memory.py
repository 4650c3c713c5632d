"""The memory agent: chunking by model tokens, the batched update loop, results in the evaluation format,
resumption, the query switch, token accounting and the audits on the notes themselves."""

import json
from dataclasses import replace

import pandas as pd
import pytest

from fake_openai import FakeOpenAI
from pmv2nb import config, prompts
from pmv2nb.answers import protected_detail, reward_labels
from pmv2nb.backends import Sampling
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import RunSettings, breakdown, run_eval
from pmv2nb.evaluate.cache import CallCache
from pmv2nb.memory import (
    Trajectory, chunk_history, chunk_text, memory_diff, notes_from_reply, privacy_audit, read_trajectories, reanswer,
    run_memory, run_updates, token_accounting, token_spans, trajectory_table,
)
from pmv2nb.memory.agent import Chunker, Rewrite
from pmv2nb.memory.chunking import Chunking
from pmv2nb.memory.run import backend_rewriter, memory_columns
from pmv2nb.models import tokenizer_for

pytestmark = pytest.mark.slow  # generates notes with a local model; `make test-fast` leaves it out

TINY = config.resolve("tiny")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_for("tiny")


def test_token_spans_cover_everything_or_keep_both_ends():
    assert token_spans(10, 4, 8) == [(0, 4), (4, 8), (8, 10)]
    spans = token_spans(100, 10, 5)  # 50 of 100 tokens fit: 3 chunks from the start, 2 from the end
    assert spans == [(0, 10), (10, 20), (20, 30), (80, 90), (90, 100)]
    assert token_spans(0, 10, 5) == []
    with pytest.raises(ValueError):
        token_spans(10, 0, 5)


def test_history_chunks_rejoin_exactly_and_drop_the_persona(benchmark_data, tokenizer):
    history = benchmark_data.history(0, "32k", keep_persona=True, text_only=True)
    assert history[0]["role"] == "system"
    chunking = chunk_history(history, tokenizer, 256, 100)
    rendered = prompts.render_history(history[1:])
    assert rendered.startswith("Message 1 (user): ")
    assert "".join(chunking.chunks) == rendered
    assert history[0]["content"][:60] not in "".join(chunking.chunks)
    assert chunking.omitted_tokens == 0 and sum(chunking.chunk_tokens) == chunking.history_tokens
    assert all(n == 256 for n in chunking.chunk_tokens[:-1])
    for chunk in chunking.chunks[:-1]:  # cut at token boundaries: re-tokenizing gives about the same count
        assert abs(len(tokenizer(chunk, add_special_tokens=False)["input_ids"]) - 256) <= 2


def test_long_history_loses_its_middle(tokenizer):
    text = " ".join(f"word{i}" for i in range(3000))
    chunking = chunk_text(text, tokenizer, 100, 4)
    assert len(chunking) == 4 and chunking.chunk_tokens == (100, 100, 100, 100)
    assert chunking.omitted_tokens == chunking.history_tokens - 400
    assert text.startswith(chunking.chunks[0]) and text.endswith(chunking.chunks[-1])
    assert chunking.chunks[1] + chunking.chunks[2] not in text  # the gap falls between chunks 2 and 3


def test_notes_from_reply_drops_thinking():
    assert notes_from_reply("<think>hmm</think>\n- likes tea") == "- likes tea"
    assert notes_from_reply("<think>still going") == ""
    assert notes_from_reply("  plain notes ") == "plain notes"


def _jobs(data, tokenizer, rows, show_query=False, chunk_tokens=400):
    settings = TINY.memory.__class__(**{**TINY.memory.__dict__, "chunk_tokens": chunk_tokens})
    chunker = Chunker(data, tokenizer, settings, "32k")
    return [chunker.job(row, data.questions["query_text"].iat[row] if show_query else None) for row in rows], settings


def test_each_step_sends_every_active_user_in_one_batch(benchmark_data, tokenizer, tmp_path):
    from pmv2nb.backends import make_backend
    from pmv2nb.evaluate.cache import CachedBackend

    rows = benchmark_data.history_rows("32k")[:3]
    jobs, settings = _jobs(benchmark_data, tokenizer, rows)
    jobs[2].chunking = Chunking(jobs[2].chunking.chunks[:2], jobs[2].chunking.chunk_tokens[:2], 0, 0)  # a short one
    batches = []
    cache = CallCache(tmp_path / "c.sqlite")
    backend = CachedBackend(make_backend("hf:tiny", batch_size=8), cache)
    write = backend_rewriter(backend, Sampling(max_tokens=16, seed=1))

    def recording(conversations, tags):
        batches.append(len(conversations))
        for conversation in conversations:
            assert "request the user will make" not in conversation[0]["content"]  # causal: no query
        return write(conversations, tags)

    trajectories = run_updates(jobs, recording, settings)
    longest = max(len(j.chunking) for j in jobs)
    assert batches[:2] == [3, 3] and batches[2:] == [2] * (longest - 2) and len(batches) == longest
    for job in jobs:
        trajectory = trajectories[job.key]
        assert len(trajectory.steps) == len(job.chunking)
        assert all(step.tokens_out <= 16 for step in trajectory.steps)
        assert all(step.capped == (step.tokens_out == 16) for step in trajectory.steps)
        assert trajectory.memories[0] == settings.initial_memory
    cache.close()


def test_query_switch_puts_the_query_into_every_update(benchmark_data, tokenizer):
    jobs, settings = _jobs(benchmark_data, tokenizer, [0, 1], show_query=True)
    assert jobs[0].key != jobs[1].key  # same persona, different questions: separate notes
    seen = []

    def empty_notes(conversations, tags):
        seen.extend(c[0]["content"] for c in conversations)
        return [type("Reply", (), {"text": "<think>", "tokens_in": 5, "tokens_out": 1, "finish_reason": "stop"})()
                for _ in conversations]

    trajectories = run_updates(jobs, empty_notes, settings)
    query = benchmark_data.questions["query_text"].iat[0]
    assert any(query in text for text in seen)
    trajectory = trajectories[jobs[0].key]
    assert all(step.kept_previous for step in trajectory.steps)  # an empty rewrite keeps the old notes
    assert trajectory.memory == settings.initial_memory


def _settings(mode="mcq", rows=6):
    return RunSettings(mode=mode, size="32k", rows=rows, sampling=Sampling(max_tokens=32, seed=0),
                       eval=EvalSettings(judge_calls=2, concurrency=4))


def test_memory_run_results_resume_and_break_down(benchmark_data, tmp_path):
    out, cache = tmp_path / "memory.jsonl", tmp_path / "calls.sqlite"
    run = run_memory(benchmark_data, "hf:tiny", _settings(rows=4), TINY.memory, out=out, cache=cache,
                     progress=False)
    plain = run_eval(benchmark_data, "baseline:random", _settings(rows=4), out=tmp_path / "plain.jsonl",
                     cache=cache, progress=False)
    results = run.results
    assert len(results) == 4 and set(plain.results.columns) <= set(results.columns)
    assert (results["model"] == "memory:hf:tiny").all() and (results["context"] == "memory").all()
    rows = benchmark_data.questions.iloc[:4]
    assert results["shared_by"].tolist() == rows.groupby("persona_id")["persona_id"].transform("size").tolist()
    assert (results["tokens_in"] < results["full_history_tokens"]).all()
    assert (results["update_tokens_in"] > 0).all() and (results["chunks"] >= 1).all()
    stored = read_trajectories(out)
    assert set(stored) == set(results["memory_key"])
    for _, row in results.iterrows():
        assert stored[row["memory_key"]].memory == row["memory"]
        assert len(stored[row["memory_key"]].steps) == row["chunks"]
    table = breakdown(pd.concat([results, plain.results]), "overall")
    assert set(table["model"]) == {"memory:hf:tiny", "baseline:random"}

    again = run_memory(benchmark_data, "hf:tiny", _settings(rows=6), TINY.memory, out=out, cache=cache,
                       progress=False)
    assert len(again.results) == 6
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["memory.jsonl", "plain.jsonl"]
    lines = (tmp_path / "trajectories" / "memory.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["memory_key"] for line in lines})  # each trajectory stored once
    # finished rows are skipped and the shared notes come from the cache: only the 2 new answers are new calls
    assert again.new_update_calls == 0 and again.new_calls == 2


def test_run_eval_points_memory_specs_to_the_memory_runner(benchmark_data, tmp_path):
    with pytest.raises(ValueError, match="pmv2nb memory run"):
        run_eval(benchmark_data, "memory:hf:tiny", _settings(rows=1), out=tmp_path / "x.jsonl",
                 cache=tmp_path / "c.sqlite", progress=False)


def test_open_ended_memory_run_with_judge_and_privacy_audit(benchmark_data, tmp_path):
    """A writer that copies every chunk keeps private data; the audit has to catch it on privacy rows."""
    q = benchmark_data.questions
    privacy = q.index[q["pref_type"].isin(["sensitive_info", "ask_to_forget"])]
    limit = int(privacy[:6].max()) + 1
    with FakeOpenAI(echo_notes=True) as fake:
        model = f"openai:fake@{fake.url}"
        run = run_memory(benchmark_data, model, _settings("open", limit), TINY.memory, judge=model,
                         out=tmp_path / "open.jsonl", cache=tmp_path / "c.sqlite", progress=False)
        updates = [b for b in fake.requests if "Your notes so far:" in str(b["messages"][-1]["content"])]
    results = run.results
    assert results["score"].between(0, 1).all() and results["judge_scores"].map(len).eq(2).all()
    assert len(updates) == results.drop_duplicates("memory_key")["chunks"].sum()
    audit = privacy_audit(results)
    sensitive = audit[audit["kind"] == "sensitive_info"]
    assert not sensitive.empty and sensitive["final_memory_leak_rate"].iloc[0] > 0
    assert (audit["ever_leaked_rate"] >= audit["final_memory_leak_rate"]).all()
    ordinary = results[~results["pref_type"].isin(["sensitive_info", "ask_to_forget"]) & ~results["sensitive_info"]]
    assert ordinary["memory_leak"].isna().all()


def test_a_memory_update_that_keeps_failing_fails_only_its_persona(benchmark_data, tmp_path):
    """Rows 0-13 share one history and rows 14-15 another; the second's updates fail until the server heals."""
    marker = benchmark_data.history(14, "32k", keep_persona=False, text_only=True)[0]["content"]
    assert marker not in str(benchmark_data.history(0, "32k", keep_persona=False, text_only=True))

    def second_history(body):
        return "Your notes so far:" in str(body["messages"][-1]["content"]) and marker in str(body["messages"])

    out, cache = tmp_path / "m.jsonl", tmp_path / "c.sqlite"
    with FakeOpenAI(echo_notes=True, fail_when=second_history) as fake:
        model = f"openai:fake@{fake.url}"
        first = run_memory(benchmark_data, model, _settings(rows=16), TINY.memory, out=out, cache=cache,
                           progress=False)
        assert sorted(f.row for f in first.failed) == [14, 15] and "still failing" in first.failed[0].error
        assert len(first.results) == 14 and len(read_trajectories(out)) == 1  # the broken notes are not stored
        fake.fail_when = None
        asked_before = len(fake.requests)
        second = run_memory(benchmark_data, model, _settings(rows=16), TINY.memory, out=out, cache=cache,
                            progress=False)
        asked = fake.requests[asked_before:]
    assert not second.failed and len(second.results) == 16 and second.results["question_id"].is_unique
    chunks = second.trajectories[second.results["memory_key"].iat[-1]].steps
    # only the second history's updates and its two answers are asked; the first history's notes are cached
    assert len(asked) == second.new_calls == len(chunks) + 2 and second.new_update_calls == len(chunks)


def test_memory_columns_flag_protected_details(benchmark_data):
    q = benchmark_data.questions
    row = int(q.index[q["pref_type"] == "sensitive_info"][0])
    detail = protected_detail("sensitive_info", q["preference"].iat[row])
    assert detail
    chunking = Chunking(("c",), (1,), 1, 0)
    leaky = Trajectory("k", "link", None, "start", chunking, [Rewrite(f"Notes: {detail[0]}", 10, 5, False),
                                                               Rewrite("Notes: likes tea", 10, 5, False)])
    labels = reward_labels(benchmark_data, row, "open")
    columns = memory_columns(leaky, 1, labels)
    assert columns["memory_leak"] is False and columns["memory_ever_leaked"] is True
    leaky.steps.reverse()
    assert memory_columns(leaky, 1, labels)["memory_leak"] is True


def test_reanswer_uses_the_edited_notes(benchmark_data, tmp_path):
    edited = "The user is vegetarian and writes in short sentences."
    with FakeOpenAI() as fake:
        result = reanswer(benchmark_data, 0, edited, f"openai:fake@{fake.url}", _settings(rows=1), TINY.memory,
                          cache=tmp_path / "c.sqlite")
        sent = fake.requests[-1]["messages"]
    assert edited in sent[0]["content"] and result["memory"] == edited
    assert len(sent) == 3  # the notes, the query, the options: no history
    assert result["parsed"] in "ABCD" and result["model"].startswith("memory:")
    with FakeOpenAI() as fake:  # asked in the boxed format, reanswer takes that format's temperature like every run
        boxed = replace(_settings(rows=1), prompt_format="boxed").with_eval(boxed_temperature=0.0)
        result = reanswer(benchmark_data, 0, edited, f"openai:fake@{fake.url}", boxed, TINY.memory,
                          cache=tmp_path / "c.sqlite")
        request = fake.requests[-1]
        capped = config.with_overrides(TINY, {"memory.answer_cap": "memory"}).memory  # the notes cap the answer
        reanswer(benchmark_data, 0, edited, f"openai:fake@{fake.url}", boxed, capped, cache=tmp_path / "c.sqlite")
        assert fake.requests[-1]["max_tokens"] == capped.memory_tokens != request["max_tokens"]
    assert request["temperature"] == 0.0 and result["prompt_format"] == "boxed"
    assert edited in request["messages"][0]["content"]  # the notes join the boxed system instruction


def test_memory_diff_and_trajectory_table():
    change = memory_diff("- likes tea\n- lives in Oslo", "- likes tea\n- moved to Bergen. Has a cat.")
    assert change == {"added": ["moved to Bergen.", "Has a cat."], "dropped": ["lives in Oslo"], "kept": ["likes tea"]}
    chunking = Chunking(("a", "b"), (5, 3), 8, 0)
    trajectory = Trajectory("k", "l", None, "No previous memory.", chunking,
                            [Rewrite("- likes tea", 20, 4, False), Rewrite("- likes tea\n- has a cat", 20, 8, True)])
    table = trajectory_table(trajectory, cap=8)
    assert table["added"].tolist() == [1, 1] and table["dropped"].tolist() == [1, 0]
    assert table["capped"].tolist() == [False, True] and table["chunk_tokens"].tolist() == [5, 3]


def test_token_accounting_both_ways():
    frame = pd.DataFrame({"model": ["m"] * 4, "mode": ["mcq", "mcq", "open", "open"], "question_id": ["a", "b"] * 2,
                          "full_history_tokens": [3200] * 4, "tokens_in": [200, 200, 100, 100],
                          "update_tokens_in": [3000] * 4, "shared_by": [2] * 4, "memory_tokens": [100] * 4})
    tables = token_accounting(frame).set_index("mode")
    assert tables.loc["open", "fewer_at_answer"] == pytest.approx(32.0)  # each mode's own answer prompts
    table = tables.loc["mcq"]
    assert table["fewer_at_answer"] == pytest.approx(16.0)
    assert table["fewer_with_updates"] == pytest.approx(3200 / 3200)
    assert table["fewer_with_shared_updates"] == pytest.approx(3200 / 1700)


def test_command_line_runs_the_agent_and_refuses_gpu_profiles_clearly(tmp_path, capsys):
    from pmv2nb.cli import main

    out = tmp_path / "cli.jsonl"
    assert main(["memory", "run", "--profile", "tiny", "--rows", "2", "--max-tokens", "16", "--memory-tokens", "24",
                 "--max-chunks", "2",
                 "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]) == 0
    printed = capsys.readouterr().out
    assert "2 result rows" in printed and "fewer_at_answer" in printed
    from pmv2nb.memory import read_trajectories

    trajectories = read_trajectories(out)
    assert trajectories and all(len(t.steps) <= 2 and all(s.tokens_out <= 24 for s in t.steps)
                                for t in trajectories.values())
    import torch

    if not torch.cuda.is_available():
        assert main(["memory", "train", "--profile", "paper", "--out", str(tmp_path / "run")]) == 1
        assert "needs a CUDA GPU" in capsys.readouterr().err
        assert main(["memory", "run", "--profile", "paper", "--source", "data/mini", "--rows", "1",
                     "--out", str(tmp_path / "p.jsonl")]) == 1
        assert "NVIDIA GPU" in capsys.readouterr().err
