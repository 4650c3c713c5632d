"""A stand-in for the paid OpenAI API: a real HTTP server on loopback speaking the chat-completions format.

Tests point the real ``openai`` client at it to exercise retries, permanent errors, budgets and
resumption without a key or network. It answers multiple-choice prompts with a letter and judge
prompts with a boxed score, chosen from a hash of the request so answers are deterministic; with
``echo_notes`` it plays a memory writer that copies every chunk into its notes. ``context_tokens`` makes it
refuse longer prompts (counted as characters / 4) the way the API does; ``served_model`` and
``finish_reason`` set what its replies report, and ``answer_text`` what it answers every prompt but a judge's.
``fail_when`` makes it answer 500 (with ``retry-after: 0``, so retries are instant) to every request the
predicate picks, for as long as it is set: a row that outlasts any number of retries until the test heals
the server.

With ``prompt_cache`` it bills like the API's prompt cache: ``usage.prompt_tokens`` is the prompt's size
(characters / 4), and ``usage.prompt_tokens_details.cached_tokens`` the longest prefix it shares with a prompt
answered before this one arrived (as characters / 4), rounded down to 128 tokens and reported only from 1,024.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer

from pmv2nb.backends.openai_http import prompt_text


class FakeOpenAI(LoopbackServer):
    def __init__(self, delay_s: float = 0.0, flaky_fraction: float = 0.0, flaky_statuses=(429, 500),
                 always_status: int | None = None, error_body: dict | None = None,
                 judge_replies: list[str] | None = None, echo_notes: bool = False, context_tokens: int | None = None,
                 served_model: str | None = None, finish_reason: str = "stop", fail_when=None,
                 prompt_cache: bool = False, answer_text: str | None = None):
        self.prompt_cache = prompt_cache
        self.answer_text = answer_text  # the reply to every prompt but a judge's, when given
        self._prompts_seen: list[str] = []  # prompt texts answered so far, for prompt_cache
        self.context_tokens, self.served_model, self.finish_reason = context_tokens, served_model, finish_reason
        self.refused = 0  # prompts refused as longer than context_tokens
        self.fail_when = fail_when  # body -> bool; set to None to heal the server
        self.echo_notes = echo_notes  # memory-update prompts get the old notes plus the whole chunk back
        self.judge_replies = judge_replies  # judge prompts get judge_replies[seed % len] when given
        self.delay_s, self.flaky_fraction, self.flaky_statuses = delay_s, flaky_fraction, list(flaky_statuses)
        self.always_status, self.error_body = always_status, error_body
        self.requests: list[dict] = []  # every request body received, in order
        self.answered: list[str] = []  # body hashes of requests answered with 200
        self.failures = 0
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__("/v1")

    def do_POST(self, handler: BaseHTTPRequestHandler) -> None:
        self._handle(handler, json.loads(handler.rfile.read(int(handler.headers["content-length"]))))

    @staticmethod
    def body_hash(body: dict) -> str:
        return hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()

    def _handle(self, handler, body: dict) -> None:
        key = self.body_hash(body)
        with self._lock:
            self.requests.append(body)
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        if self.always_status is not None:
            return self._send(handler, self.always_status, self.error_body or {"error": {"message": "refused"}})
        if self.fail_when is not None and self.fail_when(body):
            with self._lock:
                self.failures += 1
            return self._send(handler, 500, {"error": {"message": "this one keeps failing"}}, {"retry-after": "0"})
        size = self.prompt_tokens(body)
        if self.context_tokens is not None and size > self.context_tokens:
            with self._lock:
                self.refused += 1
            message = (f"This model's maximum context length is {self.context_tokens} tokens. However, your messages "
                       f"resulted in {size} tokens. Please reduce the length of the messages.")
            return self._send(handler, 400, {"error": {"message": message, "type": "invalid_request_error",
                                                       "code": "context_length_exceeded"}})
        flaky = int(key[:8], 16) / 0xFFFFFFFF < self.flaky_fraction
        if flaky and attempt < len(self.flaky_statuses):
            with self._lock:
                self.failures += 1
            status = self.flaky_statuses[attempt]
            return self._send(handler, status, {"error": {"message": f"try again ({status})"}},
                              {"retry-after": "0"} if status == 429 else {})
        cached = self._cache_lookup(body) if self.prompt_cache else 0  # what was answered before this one arrived
        time.sleep(self.delay_s)
        last = body["messages"][-1]["content"]
        text = (f"Scoring.\n\\boxed{{{int(key[8:10], 16) % 11 / 10}}}" if "\\boxed" in str(last)
                else f"Thinking it over.\nFinal Answer: {'ABCD'[int(key[:2], 16) % 4]}")
        if self.answer_text is not None and "\\boxed" not in str(last):
            text = self.answer_text
        if self.echo_notes and "Your notes so far:" in str(last):
            old_notes = last.split("Your notes so far:\n", 1)[1].split("\n\n", 1)[0]
            chunk = last.split("conversations with the assistant:\n", 1)[1].rsplit("\n\nWrite the complete", 1)[0]
            text = old_notes + "\n" + chunk.replace("\n\n", "\n")
        if self.judge_replies and "\\boxed" in str(last):
            text = self.judge_replies[int(body.get("seed") or 0) % len(self.judge_replies)]
        usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}
        if self.prompt_cache:
            usage = self._cached_usage(body, cached)
        reply = {"id": "fake", "object": "chat.completion", "created": 0, "model": self.served_model or body["model"],
                 "choices": [{"index": 0, "finish_reason": self.finish_reason,
                              "message": {"role": "assistant", "content": text}}],
                 "usage": usage}
        with self._lock:  # counted before the reply goes out: a client that has its answer finds it counted
            self.answered.append(key)
        self._send(handler, 200, reply)

    def _cache_lookup(self, body: dict) -> int:
        """Tokens of the longest prefix shared with a prompt answered before, in 128-token steps from 1,024."""
        text = self.prompt_text(body)
        with self._lock:
            shared = max((_common_prefix(text, seen) for seen in self._prompts_seen), default=0) // 4
        return shared // 128 * 128 if shared >= 1024 else 0

    def _cached_usage(self, body: dict, cached: int) -> dict:
        """Usage as a prompt cache reports it; the prompt joins the cache once answered, as the API's does:
        requests that arrive while the first of their kind is still being read find nothing."""
        text = self.prompt_text(body)
        with self._lock:
            self._prompts_seen.append(text)
        tokens = len(text) // 4
        return {"prompt_tokens": tokens, "completion_tokens": 10, "total_tokens": tokens + 10,
                "prompt_tokens_details": {"cached_tokens": cached}}

    @staticmethod
    def prompt_text(body: dict) -> str:
        """A request's messages as one string, in order, as a cache keyed on the prompt's prefix sees them."""
        return prompt_text(body["messages"])

    @staticmethod
    def prompt_tokens(body: dict) -> int:
        """A rough token count of a request's messages: four characters a token."""
        return sum(len(str(m["content"])) for m in body["messages"]) // 4

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings (a binary search on slices, fast on long prompts)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
