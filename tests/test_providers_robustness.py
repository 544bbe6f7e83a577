"""The providers against what a broken endpoint or a broken log can hand them (issue 12): bodies
of the wrong shape, requests JSON cannot carry, waits of a day, answers without end. Each must
be one failed request with a reason, within its deadline, and never the end of the night.

Shapes the fleet cannot make come from a tiny aiohttp app on loopback (`Scripted`), which answers
each model with the reply a test scripted for it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from itertools import count

import httpx
import pytest
from aiohttp import web

from replaybench.config import Candidate
from replaybench.limits import limiter_for
from replaybench.providers import provider_class
from replaybench.replay.send import http_client
from replaybench.sim.server import ThreadedApp, ThreadedFleet
from tests.test_providers import ask, cand, task_messages

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
_names = count()


class Scripted(ThreadedApp):
    """A tiny aiohttp app on 127.0.0.1, on its own event loop in a background thread."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/messages", self._handle)
        super().__init__(app, name="scripted")
        self.replies: dict[str, Reply] = {}
        self.served: Counter[str] = Counter()   # requests per model
        self._sent: dict[str, int] = {}         # bytes an `endless` reply wrote before it ended
        self._ended: dict[str, threading.Event] = {}

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, http://127.0.0.1:port/v1, once started."""
        return f"{self.url}/v1"

    def script(self, reply: Reply) -> str:
        """A fresh model name that is answered with `reply`."""
        model = f"scripted-{next(_names)}"
        self.replies[model] = reply
        return model

    def sent(self, model: str) -> int:
        """What the `endless` reply to `model` wrote, once it has ended (by itself, or because
        the client hung up); the bound only turns a hang into a failure."""
        assert self._ended.setdefault(model, threading.Event()).wait(60)
        return self._sent[model]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model = (await request.json())["model"]
        self.served[model] += 1
        return await self.replies[model](request)


@pytest.fixture(scope="module")
def scripted():
    with Scripted() as server:
        yield server


def body(raw: bytes | object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A whole body at once (raw bytes as they are, anything else as JSON)."""
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()

    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=data, status=status, headers={
            "Content-Type": "application/json", **(headers or {})})
    return reply


def events(*payloads: bytes) -> Reply:
    """A server-sent event stream of these `data:` payloads."""
    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for payload in payloads:
            await response.write(b"data: " + payload + b"\n\n")
        await response.write_eof()
        return response
    return reply


def endless(server: Scripted, head: bytes, piece: bytes, tail: bytes, every_s: float = 0,
            limit_bytes: int = 8 << 20, limit_s: float = 10,
            content_type: str = "application/json") -> Reply:
    """`head`, then `piece` again and again (chunked, no Content-Length), then `tail`: until
    `limit_bytes` or `limit_s`, so that it ends by itself; records what it wrote."""
    async def reply(request: web.Request) -> web.StreamResponse:
        model = (await request.json())["model"]
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        sent, start = 0, time.monotonic()
        try:
            await response.write(head)
            while sent < limit_bytes and time.monotonic() - start < limit_s:
                await response.write(piece)
                sent += len(piece)
                await asyncio.sleep(every_s)
            await response.write(tail)
            await response.write_eof()
        except ConnectionError:  # the client stopped reading and hung up
            pass
        finally:
            server._sent[model] = sent
            server._ended.setdefault(model, threading.Event()).set()
        return response
    return reply


def ask_scripted(server: Scripted, reply: Reply, provider: str = "openai", stream: bool = False,
                 params: dict | None = None, **over):
    model = server.script(reply)
    candidate = Candidate(**{"name": model, "base_url": server.base_url, "model": model,
                             "provider": provider, "stream": stream,
                             "retry": {"max_attempts": 2, "backoff_s": 0.01,
                                       "max_backoff_s": 0.05}, **over})
    return model, ask(candidate, MESSAGES, params or {"max_tokens": 64})


# --- A. bodies of the wrong shape are bad responses --------------------------------------------

OK_MESSAGE = {"role": "assistant", "content": "fine"}
OPENAI_BODIES = {
    "message is a string": {"choices": [{"message": "str"}]},
    "choice is a string": {"choices": ["str"]},
    "choices is an object": {"choices": {"0": {"message": OK_MESSAGE}}},
    "no choices": {"choices": []},
    "body is a list": [1, 2],
    "body is a string": "str",
    "body is null": None,
    "content is a number": {"choices": [{"message": {"content": 5}}]},
    "reasoning is an object": {"choices": [{"message": {**OK_MESSAGE, "reasoning_content": {}}}]},
    "reasoning_details is a number": {"choices": [{"message": {**OK_MESSAGE,
                                                               "reasoning_details": 5}}]},
    "reasoning_details text is a list": {"choices": [{"message": {
        **OK_MESSAGE, "reasoning_details": [{"type": "reasoning.text", "text": ["a"]}]}}]},
    "finish_reason is an object": {"choices": [{"message": OK_MESSAGE, "finish_reason": {}}]},
    "usage is a string": {"choices": [{"message": OK_MESSAGE}], "usage": "lots"},
    "usage count is a string": {"choices": [{"message": OK_MESSAGE}],
                                "usage": {"prompt_tokens": "12", "completion_tokens": 3}},
    "usage count is negative": {"choices": [{"message": OK_MESSAGE}],
                                "usage": {"prompt_tokens": -1, "completion_tokens": 3}},
    "usage count is a fraction": {"choices": [{"message": OK_MESSAGE}],
                                  "usage": {"prompt_tokens": 1.5, "completion_tokens": 3}},
    "usage count is true": {"choices": [{"message": OK_MESSAGE}],
                            "usage": {"prompt_tokens": True, "completion_tokens": 3}},
    "usage details is a number": {"choices": [{"message": OK_MESSAGE}],
                                  "usage": {"prompt_tokens": 2, "prompt_tokens_details": 7}},
    "usage details count is a list": {"choices": [{"message": OK_MESSAGE}], "usage": {
        "completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": [1]}}},
    "usage count is NaN": b'{"choices": [{"message": {"content": "fine"}}],'
                          b' "usage": {"prompt_tokens": NaN}}',
    "usage count is Infinity": b'{"choices": [{"message": {"content": "fine"}}],'
                               b' "usage": {"completion_tokens": Infinity}}',
    "nested past the recursion limit": b"[" * 100_000 + b"]" * 100_000,
    "not JSON": b"<html>502 Bad Gateway</html>",
}
OPENAI_CHUNKS = {
    "chunk is a list": [b"[1,2]"],
    "chunk is a string": [b'"error"'],
    "chunk is a number": [b"5"],
    "choice is a string": [b'{"choices": ["str"]}'],
    "choices is a number": [b'{"choices": 3}'],
    "delta is a string": [b'{"choices": [{"delta": "x"}]}'],
    "delta content is a number": [b'{"choices": [{"delta": {"content": 5}}]}'],
    "finish_reason is a list": [b'{"choices": [{"delta": {"content": "a"}, "finish_reason": [1]}]}'],
    "usage count is a string": [b'{"choices": [{"delta": {"content": "a"}}]}',
                                b'{"choices": [], "usage": {"prompt_tokens": "x"}}'],
    "usage is a list": [b'{"choices": [], "usage": [1]}'],
}
ANTHROPIC_BODIES = {
    "content is a string": {"content": "str"},
    "block is a string": {"content": ["str"]},
    "block text is a number": {"content": [{"type": "text", "text": 5}]},
    "thinking is a list": {"content": [{"type": "thinking", "thinking": ["a"]}]},
    "usage is a string naming a field": {"content": [], "usage": "input_tokens"},
    "usage count is a string": {"content": [], "usage": {"input_tokens": "3", "output_tokens": 1}},
    "cache count is a string": {"content": [], "usage": {"input_tokens": 3,
                                                         "cache_read_input_tokens": "9"}},
    "stop_reason is a number": {"content": [], "stop_reason": 1},
    "body is a list": [1, 2],
}
ANTHROPIC_EVENTS = {
    "event is a list": [b"[1,2]"],
    "event is a string": [b'"message_start"'],
    "message is a string": [b'{"type": "message_start", "message": "x"}'],
    "start usage is a number": [b'{"type": "message_start", "message": {"usage": 4}}'],
    "delta is a string": [b'{"type": "content_block_delta", "delta": "x"}'],
    "delta text is a number": [b'{"type": "content_block_delta", '
                               b'"delta": {"type": "text_delta", "text": 5}}'],
    "usage count is a string": [b'{"type": "message_delta", "delta": {}, '
                                b'"usage": {"output_tokens": "9"}}'],
}
MESSAGE_STOP = b'{"type": "message_stop"}'
CASES = ([("openai", False, name, body(v)) for name, v in OPENAI_BODIES.items()]
         + [("openai", True, name, events(*v, b"[DONE]")) for name, v in OPENAI_CHUNKS.items()]
         + [("anthropic", False, name, body(v)) for name, v in ANTHROPIC_BODIES.items()]
         + [("anthropic", True, name, events(*v, MESSAGE_STOP))
            for name, v in ANTHROPIC_EVENTS.items()])


@pytest.mark.parametrize(("provider", "stream", "case", "reply"), CASES,
                         ids=[f"{p}-{'sse' if s else 'json'}-{c}" for p, s, c, _ in CASES])
def test_a_body_of_the_wrong_shape_is_a_bad_response(scripted, provider, stream, case, reply):
    model, answer = ask_scripted(scripted, reply, provider, stream)
    assert answer.status == "error" and answer.error_kind == "bad_response", answer
    assert answer.attempts == 2 == scripted.served[model]
    assert answer.error and len(answer.error) <= 500


@pytest.mark.parametrize("event", [b'{"type": "error", "error": "overloaded"}',
                                   b'{"type": "error", "error": {"type": "overloaded", '
                                   b'"message": 529}}'])
def test_an_anthropic_error_event_of_any_shape_is_a_server_error(scripted, event):
    _, answer = ask_scripted(scripted, events(event, MESSAGE_STOP), "anthropic", stream=True)
    assert answer.error_kind == "server_error" and "overloaded" in answer.error


def test_the_reason_names_what_was_wrong_and_where(scripted):
    _, answer = ask_scripted(scripted, body({"choices": [{"message": "str"}]}))
    assert "choices[0].message" in answer.error and "not an object" in answer.error
    _, answer = ask_scripted(scripted, events(b"[1,2]"), stream=True)
    assert "stream chunk" in answer.error and "not an object" in answer.error
    _, answer = ask_scripted(scripted, body({"choices": [{"message": OK_MESSAGE}],
                                             "usage": {"prompt_tokens": "12"}}))
    assert "usage.prompt_tokens" in answer.error and "'12'" in answer.error


def test_one_bad_body_among_many_is_one_failed_request(scripted):
    """The night goes on: the other requests of the same candidate are answered."""
    good = {"choices": [{"message": OK_MESSAGE, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    model = scripted.script(body(good))
    bad = scripted.script(body({"choices": [{"message": "str"}]}))
    candidate = Candidate(name="mixed", base_url=scripted.base_url, model="@logged",
                          stream=False, retry={"max_attempts": 1})

    async def go():
        async with http_client(candidate) as client:
            provider = provider_class("openai")(candidate, None, client, limiter_for(candidate))
            return await asyncio.gather(*(provider.complete(MESSAGES, {"model": m,
                                                                       "max_tokens": 9})
                                          for m in (model, bad, model, model)))

    answers = asyncio.run(go())
    assert [a.status for a in answers] == ["ok", "error", "ok", "ok"]
    assert answers[0].output_text == "fine" and answers[0].input_tokens == 7
    assert answers[1].error_kind == "bad_response"


@pytest.mark.parametrize(("status", "kind"), [(200, "bad_response"), (500, "server_error")])
def test_a_body_that_is_not_the_gzip_it_claims_keeps_the_night_going(scripted, status, kind):
    reply = body(b"not gzip at all", status, {"Content-Encoding": "gzip"})
    _, answer = ask_scripted(scripted, reply, retry={"max_attempts": 1})
    assert answer.status == "error" and answer.error_kind == kind, answer


def test_a_whole_number_written_as_a_float_is_still_a_count(scripted):
    _, answer = ask_scripted(scripted, body({"choices": [{"message": OK_MESSAGE}],
                                             "usage": {"prompt_tokens": 12.0,
                                                       "completion_tokens": 3}}))
    assert answer.status == "ok" and answer.input_tokens == 12 and answer.output_tokens == 3


# --- A. requests we cannot send are bad requests, never sent -----------------------------------

@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("params", "named"), [
    ({"max_tokens": 64, "temperature": float("inf")}, "temperature"),
    ({"max_tokens": 64, "top_p": float("nan")}, "top_p"),
    ({"max_tokens": float("inf")}, "max_tokens"),
    ({"max_tokens": 64, "metadata": {"day": date(2026, 11, 1)}}, "metadata.day"),
])
def test_a_request_json_cannot_carry_is_a_bad_request_never_sent(scripted, provider, params,
                                                                   named):
    model, answer = ask_scripted(scripted, body({"choices": []}), provider, params=params)
    assert answer.status == "error" and answer.error_kind == "bad_request", answer
    assert answer.attempts == 1 and scripted.served[model] == 0
    assert named in answer.error and "JSON" in answer.error


def test_a_replay_of_production_without_a_logged_model_is_a_bad_request(scripted):
    candidate = Candidate(name="p", base_url=scripted.base_url, model="@logged")
    answer = ask(candidate, MESSAGES, {"max_tokens": 8})
    assert answer.error_kind == "bad_request" and "model" in answer.error


# --- B. a wait the endpoint asks for never outlasts the request's deadline ----------------------

DEADLINE_S = 1.0
FAR_WAITS = {
    "retry-after a day": {"Retry-After": "86400"},
    "retry-after inf": {"Retry-After": "inf"},
    "retry-after nan": {"Retry-After": "nan"},
    "retry-after negative": {"Retry-After": "-5"},
    "retry-after huge exponent": {"Retry-After": "1e400"},
    "retry-after-ms huge": {"retry-after-ms": "1e15"},
    "retry-after date in year 9999": {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
    "openai reset in 9999 hours": {"x-ratelimit-reset-requests": "9999h0m0s"},
    "anthropic reset in year 9999": {"anthropic-ratelimit-requests-reset": "9999-12-31T00:00:00Z"},
}


def ask_twice(candidate: Candidate) -> list:
    """Two requests one after the other through one provider (one limiter), as in a night; an
    outer bound of 30 deadlines only turns a hang into a failure."""
    async def go():
        async with http_client(candidate) as client:
            provider = provider_class(candidate.provider)(candidate, None, client,
                                                          limiter_for(candidate))
            async with asyncio.timeout(30 * DEADLINE_S):
                return [await provider.complete(MESSAGES, {"max_tokens": 8}) for _ in range(2)]
    return asyncio.run(go())


@pytest.mark.parametrize("max_backoff_s", [60.0, 0.05])
@pytest.mark.parametrize("headers", FAR_WAITS.values(), ids=FAR_WAITS.keys())
def test_a_far_wait_never_outlasts_the_deadline(scripted, headers, max_backoff_s):
    reply = body({"error": {"message": "slow down", "type": "rate_limit_error"}}, 429, headers)
    model = scripted.script(reply)
    candidate = Candidate(name=model, base_url=scripted.base_url, model=model, retry={
        "deadline_s": DEADLINE_S, "max_backoff_s": max_backoff_s, "backoff_s": 0.01,
        "max_attempts": 4})
    start = time.monotonic()
    answers = ask_twice(candidate)
    elapsed = time.monotonic() - start
    assert [a.error_kind for a in answers] == ["rate_limited"] * 2, answers
    assert all(a.attempts <= 4 for a in answers)
    assert sum(a.attempts for a in answers) == scripted.served[model] >= 1
    assert elapsed < 2 * DEADLINE_S * 3  # two requests, each within its deadline (factor 3)


@pytest.mark.parametrize("reset_headers", [False, True])
def test_a_wait_past_the_deadline_fails_at_once_and_says_why(reset_headers):
    """Retry-After: 86400 (or x-ratelimit-reset-*: 24h0m0s) with a 5 s deadline: not worth a
    wait; the request fails at its first answer."""
    spec = {"rate_limited": 1, "retry_after_s": 86400, "reset_headers": reset_headers}
    with ThreadedFleet(time_scale=0, faults={"*": spec}) as fleet:
        candidate = cand(fleet, "glm-5.2", retry={"deadline_s": 5, "max_backoff_s": 600})
        start = time.monotonic()
        answer = ask(candidate, task_messages("triage"))
        elapsed = time.monotonic() - start
        served = httpx.get(fleet.base_url.removesuffix("/v1") + "/_sim/stats").json()
    assert answer.error_kind == "rate_limited" and answer.attempts == 1
    assert served["models"]["glm-5.2"]["requests"] == 1
    assert "86400 s" in answer.error and "deadline" in answer.error
    assert elapsed < 5


def test_a_wait_within_the_deadline_is_still_honoured(scripted):
    reply = body({"error": {"message": "slow down"}}, 429, {"Retry-After": "0.3"})
    model = scripted.script(reply)
    candidate = Candidate(name=model, base_url=scripted.base_url, model=model, retry={
        "deadline_s": 30, "max_attempts": 2})
    start = time.monotonic()
    answer = ask(candidate, MESSAGES)
    assert answer.error_kind == "rate_limited" and answer.attempts == 2 == scripted.served[model]
    assert time.monotonic() - start >= 0.3


# --- C. an answer too large or too long is stopped while it is read ----------------------------

CAP = 64 * 1024
DELTA = b'data: {"choices": [{"delta": {"content": "' + b"x" * 1000 + b'"}}]}\n\n'
ANTHROPIC_DELTA = (b'data: {"type": "content_block_delta", "delta": {"type": "text_delta", '
                   b'"text": "' + b"x" * 1000 + b'"}}\n\n')
SSE_ENDS = {"openai": b"data: [DONE]\n\n", "anthropic": b'data: {"type": "message_stop"}\n\n'}
SSE_PIECES = {"openai": DELTA, "anthropic": ANTHROPIC_DELTA}
JSON_ENDS = {"openai": (b'{"choices": [{"message": {"content": "', b'"}}]}'),
             "anthropic": (b'{"content": [{"type": "text", "text": "', b'"}]}')}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_body_larger_than_the_cap_is_stopped_while_read(scripted, provider):
    head, tail = JSON_ENDS[provider]
    reply = endless(scripted, head, b"x" * 16384, tail)  # 8 MB of a valid answer, chunked
    model, answer = ask_scripted(scripted, reply, provider, max_response_bytes=CAP,
                                 retry={"max_attempts": 1})
    assert answer.error_kind == "bad_response" and f"larger than {CAP} bytes" in answer.error
    assert scripted.sent(model) < 8 << 20  # it stopped reading: the server could not finish


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_declared_length_over_the_cap_is_not_read_at_all(scripted, provider):
    head, tail = JSON_ENDS[provider]
    reply = body(head + b"x" * (4 * CAP) + tail)
    _, answer = ask_scripted(scripted, reply, provider, max_response_bytes=CAP)
    assert answer.error_kind == "bad_response" and f"larger than {CAP} bytes" in answer.error


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_endless_stream_is_stopped_at_the_byte_cap(scripted, provider):
    reply = endless(scripted, b"", SSE_PIECES[provider], SSE_ENDS[provider],
                    content_type="text/event-stream")
    model, answer = ask_scripted(scripted, reply, provider, stream=True, max_response_bytes=CAP,
                                 retry={"max_attempts": 1})
    assert answer.error_kind == "bad_response" and f"larger than {CAP} bytes" in answer.error
    assert scripted.sent(model) < 8 << 20


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_longer_than_its_limit_is_stopped(scripted, provider):
    """A trickle that never ends (a piece every 20 ms, for up to 10 s) against max_stream_s 0.3."""
    reply = endless(scripted, b"", SSE_PIECES[provider], SSE_ENDS[provider], every_s=0.02,
                    limit_s=10, content_type="text/event-stream")
    start = time.monotonic()
    model, answer = ask_scripted(scripted, reply, provider, stream=True, max_stream_s=0.3,
                                 retry={"max_attempts": 1})
    assert answer.error_kind == "bad_response" and "longer than 0.3 s" in answer.error
    assert time.monotonic() - start < 5  # generous: the server would go on for 10 s


def test_an_answer_within_the_caps_is_read_whole(scripted):
    head, tail = JSON_ENDS["openai"]
    _, answer = ask_scripted(scripted, body(head + b"y" * (CAP - 100) + tail),
                             max_response_bytes=CAP)
    assert answer.status == "ok" and answer.output_text == "y" * (CAP - 100)


def test_an_oversized_error_body_keeps_its_class_and_a_short_message(scripted):
    reply = body({"error": {"message": "no such model " + "z" * 200_000}}, 404)
    _, answer = ask_scripted(scripted, reply, max_response_bytes=CAP)
    assert answer.error_kind == "bad_request" and "HTTP 404" in answer.error
