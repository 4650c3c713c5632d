"""The HTTP backend against loopback servers: retries, permanent errors, reasoning-model arguments, keys."""

import pytest
from fake_openai import FakeOpenAI

from pmv2nb.backends import (
    BackendError, ChatRequest, ContextTooLongError, RequestsFailedError, RetriesExhaustedError, Sampling, make_backend,
)
from pmv2nb.backends.hf_local import plan_batches
from pmv2nb.backends.openai_http import MissingKeyError, OpenAIBackend
from pmv2nb.config import EvalSettings
from pmv2nb.evaluate import CachedBackend, CallCache, RunSettings, run_eval


def _requests(n):
    return [ChatRequest([{"role": "user", "content": f"question {i}"}], Sampling(max_tokens=8), f"row {i}")
            for i in range(n)]


def test_transient_failures_are_retried_until_every_request_is_answered():
    with FakeOpenAI(flaky_fraction=0.5, flaky_statuses=(429, 500, 503)) as fake:
        backend = OpenAIBackend("tiny", fake.url, concurrency=4, backoff_s=0.01)
        seen = []
        responses = backend.generate(_requests(24), on_result=lambda i, r: seen.append(i))
    assert fake.failures >= 12  # about half the requests failed three times first
    assert all(r.text.startswith("Thinking") for r in responses)
    assert sorted(seen) == list(range(24))
    assert len(fake.answered) == len(set(fake.answered)) == 24


def test_a_request_that_keeps_failing_gives_up_with_a_clear_message():
    with FakeOpenAI(flaky_fraction=1.0, flaky_statuses=[502] * 10) as fake:
        backend = OpenAIBackend("tiny", fake.url, max_retries=2, backoff_s=0.01)
        with pytest.raises(BackendError, match=r"row 0\): still failing after 3 attempts"):
            backend.generate(_requests(1))
    assert len(fake.requests) == 3


def test_a_request_out_of_retries_fails_alone_and_the_cache_keeps_the_others(tmp_path):
    with FakeOpenAI(fail_when=lambda body: body["messages"][-1]["content"] == "question 2") as fake:
        cached = CachedBackend(OpenAIBackend("tiny", fake.url, concurrency=3, max_retries=2, backoff_s=0.01),
                               CallCache(tmp_path / "c.sqlite"))
        requests = _requests(5) + _requests(3)[2:]  # the failing request twice: asked once, both copies fail
        seen = []
        with pytest.raises(RequestsFailedError) as caught:
            cached.generate(requests, on_result=lambda i, r: seen.append(i))
    failed = caught.value
    assert set(failed.failures) == {2, 5} and isinstance(failed.failures[2], RetriesExhaustedError)
    assert "(row 2): still failing after 3 attempts" in str(failed.failures[2])
    assert [r is None for r in failed.responses] == [False, False, True, False, False, True]
    assert sorted(seen) == [0, 1, 3, 4]
    assert len(fake.requests) == 4 + 3 and len(cached.cache) == 4  # the failure itself is not cached


def test_a_rejected_key_fails_at_once_without_retrying():
    with FakeOpenAI(always_status=401, error_body={"error": {"message": "Incorrect API key"}}) as fake:
        backend = OpenAIBackend("tiny", fake.url, concurrency=1, backoff_s=0.01)
        with pytest.raises(BackendError, match="rejected the API key"):
            backend.generate(_requests(5))
    bodies = [str(body["messages"]) for body in fake.requests]
    assert len(bodies) == len(set(bodies)) < 5  # nothing retried, the rest of the batch abandoned


def test_context_overflow_names_the_row_and_its_size(benchmark_data):
    body = {"error": {"message": "This model's maximum context length is 1024 tokens.", "type": "invalid_request_error",
                      "code": "context_length_exceeded"}}
    with FakeOpenAI(always_status=400, error_body=body) as fake, pytest.raises(ContextTooLongError) as caught:
        run_eval(benchmark_data, f"openai:small@{fake.url}", RunSettings(rows=1, eval=EvalSettings(concurrency=1)),
                 out=None, cache=":memory:", progress=False)
    message = str(caught.value)
    assert "benchmark.csv row 0 (benchmark-00000)" in message and "32k history" in message
    assert caught.value.tokens > 2000


def test_openai_specs_need_a_key_and_say_what_else_to_use(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("pmv2nb.config.repo_root", lambda: tmp_path)  # no .env file there
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY.*hf:PATH"):
        make_backend("openai:gpt-5-chat")


def test_reasoning_models_get_their_own_arguments_and_paper_names_reach_dated_snapshots(monkeypatch):
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        with pytest.warns(UserWarning, match="gpt-5-chat-latest, a name that moves"):
            for spec in ("openai:o4-mini", "openai:gpt-5-mini", "openai:gpt-5-chat", "openai:gpt-4.1"):
                make_backend(spec, reasoning_tokens=1000).generate(
                    [ChatRequest(messages, Sampling(max_tokens=64, temperature=0.3))])
    reasoning, gpt5_mini, chat, gpt41 = fake.requests
    assert [b["model"] for b in fake.requests] == ["o4-mini-2025-04-16", "gpt-5-mini-2025-08-07", "gpt-5-chat-latest",
                                                   "gpt-4.1-2025-04-14"]
    for body in (reasoning, gpt5_mini):  # the reply cap plus room for hidden reasoning
        assert body["max_completion_tokens"] == 64 + 1000 and "temperature" not in body and "max_tokens" not in body
        assert body["messages"][0]["role"] == "developer"
    assert chat["temperature"] == 0.3 and chat["max_tokens"] == 64
    assert gpt41["messages"][0]["role"] == "system"


def test_api_sampling_none_sends_no_cap_and_no_temperature_to_the_api_only(monkeypatch):
    request = ChatRequest([{"role": "user", "content": "hi"}], Sampling(max_tokens=64, temperature=0.3))
    with FakeOpenAI(served_model="gpt-4.1-2025-04-14") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        bare = [make_backend(spec, api_sampling="none") for spec in ("openai:gpt-4.1", "openai:o4-mini")]
        local = make_backend(f"openai:tiny@{fake.url}", api_sampling="none")
        replies = [backend.generate([request])[0] for backend in (*bare, local)]
        capped = make_backend("openai:gpt-4.1")
    for body in fake.requests[:2]:
        assert not {"max_tokens", "max_completion_tokens", "temperature", "top_p"} & set(body)
    assert fake.requests[2]["max_tokens"] == 64 and fake.requests[2]["temperature"] == 0.3  # a local server
    assert replies[0].served_model == "gpt-4.1-2025-04-14"  # what the server says answered, recorded in rows
    assert bare[0].cache_identity() != capped.cache_identity()  # uncapped answers never pass for capped ones
    assert local.cache_identity() == make_backend(f"openai:tiny@{fake.url}").cache_identity()
    with pytest.raises(ValueError, match="api_sampling"):
        make_backend("openai:gpt-4.1", api_sampling="off")


def test_over_long_rows_are_all_named_and_the_other_rows_still_answered():
    long = [{"role": "user", "content": "x" * 400}]
    requests = [ChatRequest(long if i in (2, 4) else [{"role": "user", "content": f"q{i}"}], Sampling(max_tokens=8),
                            f"row {i}") for i in range(6)]
    with FakeOpenAI(context_tokens=50, delay_s=0.3) as fake:
        backend = OpenAIBackend("tiny", fake.url, concurrency=6)
        seen = []
        with pytest.raises(ContextTooLongError) as caught:
            backend.generate(requests, on_result=lambda i, r: seen.append(i))
    assert caught.value.limit == 50 and caught.value.tokens == 100 and sorted(caught.value.tags) == ["row 2", "row 4"]
    assert sorted(seen) == [0, 1, 3, 5]  # the other rows were answered and delivered all the same


def test_bad_specs_list_the_valid_forms():
    with pytest.raises(ValueError, match="openai:… vllm:… hf:… baseline:…".replace(" ", ", ")):
        make_backend("gpt-4.1")
    with pytest.raises(ValueError, match="unknown baseline"):
        make_backend("baseline:coin")


def test_vllm_specs_fail_early_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from pmv2nb.backends.vllm_offline import VLLMUnavailableError

    with pytest.raises(VLLMUnavailableError, match="hf:PATH"):
        make_backend("vllm:Qwen/Qwen3-4B-Instruct-2507")


class _FakeVLLM:
    """Stands in for the vllm module: records the engine's arguments and every conversation it is given."""

    def __init__(self):
        self.engine_args, self.conversations = None, []
        fake = self

        class LLM:
            def __init__(self, **engine_args):
                fake.engine_args = engine_args

            def chat(self, conversations, sampling_params, use_tqdm=False):
                fake.conversations += conversations
                reply = type("Out", (), {"text": "Final Answer: A", "token_ids": [1, 2], "finish_reason": "stop"})
                return [type("Request", (), {"prompt_token_ids": [0] * 5, "outputs": [reply]}) for _ in conversations]

        self.LLM = LLM
        self.SamplingParams = lambda **params: params


def test_vllm_reads_each_history_once_with_prefix_caching_and_gets_a_personas_questions_together(
        monkeypatch, mini_root, tmp_path):
    from pmv2nb.backends import vllm_offline
    from pmv2nb.data import load_split

    fake = _FakeVLLM()
    monkeypatch.setattr(vllm_offline, "require_vllm", lambda: fake)
    val = load_split(mini_root, "val")  # its file order alternates between two histories
    run = run_eval(val, "vllm:Qwen/Qwen3-0.6B", RunSettings(chunk_rows=8), out=tmp_path / "v.jsonl",
                   cache=tmp_path / "c.sqlite", progress=False)
    assert fake.engine_args["enable_prefix_caching"] is True and fake.engine_args["model"] == "Qwen/Qwen3-0.6B"
    assert fake.engine_args["dtype"] in ("bfloat16", "float16")  # never vLLM's pick from a float32 run's config
    assert len(run.results) == len(fake.conversations) == len(val)
    personas = [conversation[0]["content"] for conversation in fake.conversations]  # the persona's system message
    assert sum(a != b for a, b in zip(personas, personas[1:])) == 1


def test_prompts_of_one_history_are_batched_together_and_share_their_prefix():
    history = list(range(1000, 1600))
    ids = [history + [1, 2, 3], [9] * 700, history + [1, 2, 4, 5], history + [7], [8] * 10]
    batches = plan_batches(list(range(5)), ids, batch_size=2, min_shared=256)
    # the three prompts of one history share its 600 tokens; batches of two, shortest first
    assert [(sorted(batch), length) for batch, length in batches if length] == [([0, 3], 600), ([2], 600)]
    assert all(length <= min(len(ids[i]) for i in batch) - 1 for batch, length in batches)
    assert sorted(i for batch, _ in batches for i in batch) == [0, 1, 2, 3, 4]
    assert all(length == 0 for batch, length in batches if set(batch) & {1, 4})


def test_two_histories_that_share_a_system_prompt_stay_two_groups_with_their_whole_histories():
    system = [5] * 80  # above the threshold: grouping on it alone would lose both histories' prefixes
    first, second, lone = (system + list(range(start, start + 500)) for start in (1000, 2000, 1600))
    ids = [first + [1, 2], first + [3], lone + [4], second + [5, 6], second + [7], first + [8]]
    batches = plan_batches(list(range(6)), ids, batch_size=8, min_shared=64)
    assert sorted((sorted(batch), length) for batch, length in batches) == [([0, 1, 5], 580), ([2], 0), ([3, 4], 580)]


def test_a_personas_first_question_goes_alone_and_a_refused_key_leaves_its_followers_unsent():
    """Questions sharing a long history wait for the first of them (so a prompt cache holds the history);
    when that first one stops the run, the others are never sent, so never paid for."""
    history = "me: I grew up by the sea and still swim every morning. " * 100  # about 5,600 characters

    def persona(name: str) -> list[ChatRequest]:
        return [ChatRequest([{"role": "user", "content": f"{name} {history} question {q}?"}], Sampling(max_tokens=4))
                for q in range(4)]

    with FakeOpenAI(always_status=401, error_body={"error": {"message": "Incorrect API key"}}) as fake:
        backend = OpenAIBackend("tiny", fake.url, concurrency=8, backoff_s=0.01)
        with pytest.raises(BackendError, match="rejected the API key"):
            backend.generate(persona("Ann") + persona("Bo"))
    assert sorted(body["messages"][0]["content"].split()[0] for body in fake.requests) == ["Ann", "Bo"]
