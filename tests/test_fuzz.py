"""Property-based fuzzing (Hypothesis) of redaction and of the providers' response parsers: 10,000
generated inputs each (`FUZZ_RECORDS`; `make test` runs 1,000), derandomised (the same inputs on
every run), and not one may raise anything but the classified failure a night records as a row.

- redaction: any request body (text, nested JSON, JSON inside strings, deep nesting) is redacted
  without an exception, keeps its shape, and a personal value planted in it is gone;
- responses: any body a model endpoint might send — plain JSON and a server-sent event stream,
  OpenAI-compatible and Anthropic — ends as a Completion or a `Failure` (`bad_response`), never
  another exception that would end the night.
"""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaybench.config import Candidate
from replaybench.providers import provider_class
from replaybench.providers.base import Completion, Failure
from replaybench.redact import Redactor
from tests.conftest import FUZZ_RECORDS

pytestmark = pytest.mark.fuzz  # 10,000 inputs a test in `make test-e2e`, 1,000 in `make test`

EXAMPLES = FUZZ_RECORDS
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
REDACTOR = Redactor()

# personal values that must be found wherever they are planted (each a whole token)
PLANTED = ["jane.doe@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
           "+44 20 7946 0958", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl", "123-45-6789"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
FRAGMENT = st.sampled_from(["@", ".", "-", "+", " ", "[", "]", "{", "}", "\"", ":", ",", "0",
                            "1234", "\\", "dot", " at ", "SSN", "Bearer ", "<EMAIL_1>"])
NOISE = st.lists(st.one_of(TEXT, FRAGMENT), max_size=8).map("".join)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      NOISE)
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["content", "text", "role", "type", "id", "arguments", "user", "metadata", "x"]),
        inner, max_size=4)), max_leaves=20)


def shape(value):
    """The skeleton of a JSON value: containers and their keys, leaves reduced to their type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@FUZZ
@given(body=JSON, planted=st.sampled_from(PLANTED), before=NOISE, after=NOISE,
       wrap=st.integers(0, 3))
def test_redaction_of_any_body_keeps_its_shape_and_loses_the_planted_value(body, planted, before,
                                                                           after, wrap):
    # a value in running text: a word apart from the noise around it (a digit group right
    # after "123-45-6789" makes it part of a longer number, deliberately left alone)
    text = f"{before} is {planted}, {after}"
    message = {"role": "user", "content": text}
    for _ in range(wrap):  # the same text as JSON inside a string, as tool-call arguments are
        message = {"role": "assistant", "content": json.dumps([message])}
    messages = [message, {"role": "user", "content": body}]
    redacted, counts = REDACTOR.redact_messages(messages)
    assert planted not in json.dumps(redacted, ensure_ascii=False)
    assert sum(counts.values()) >= 1
    assert shape(redacted[1]["content"]) == shape(body) or isinstance(body, str)


def test_redaction_survives_nesting_deeper_than_python_reads():
    for depth in (500, 5_000, 50_000):
        text = "[" * depth + '"mail jane.doe@example.com"' + "]" * depth
        redacted, _ = REDACTOR.redact_messages([{"role": "user", "content": text}])
        assert "jane.doe@example.com" not in str(redacted)


# --- response parsers ---------------------------------------------------------------------------

def provider(kind: str, stream: bool):
    candidate = Candidate(name="fuzz", provider=kind, base_url="http://127.0.0.1:9/v1",
                          model="m", stream=stream, max_response_bytes=1 << 20)
    return provider_class(kind)(candidate, None, None, None)


OPENAI, ANTHROPIC = provider("openai", False), provider("anthropic", False)
OPENAI_SSE, ANTHROPIC_SSE = provider("openai", True), provider("anthropic", True)


def openai_like() -> st.SearchStrategy:
    """Chat completions mutated anywhere: every value may be any JSON value instead."""
    any_json = JSON | st.floats() | st.just(math.inf)
    message = st.fixed_dictionaries({}, optional={
        "role": any_json, "content": any_json, "reasoning_content": any_json,
        "reasoning": any_json, "reasoning_details": any_json | st.lists(any_json)})
    choice = st.fixed_dictionaries({}, optional={"message": message | any_json,
                                                 "delta": message | any_json,
                                                 "finish_reason": any_json})
    usage = st.fixed_dictionaries({}, optional={
        "prompt_tokens": any_json, "completion_tokens": any_json,
        "prompt_tokens_details": st.fixed_dictionaries({}, optional={"cached_tokens": any_json})
        | any_json,
        "completion_tokens_details": any_json, "prompt_cache_hit_tokens": any_json,
        "input_tokens": any_json, "output_tokens": any_json,
        "cache_read_input_tokens": any_json})
    return st.fixed_dictionaries({}, optional={
        "choices": st.lists(choice | any_json, max_size=3) | any_json, "usage": usage | any_json,
        "content": st.lists(st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["text", "thinking", "tool_use"]) | any_json,
            "text": any_json, "thinking": any_json}) | any_json, max_size=3) | any_json,
        "stop_reason": any_json, "type": any_json, "error": any_json,
        "delta": choice | any_json, "message": any_json, "index": any_json})


BODY = st.one_of(openai_like().map(lambda d: json.dumps(d, allow_nan=True).encode()),
                 st.binary(max_size=200), NOISE.map(str.encode))


def outcome(call) -> str:
    try:
        result = call()
    except Failure as failure:
        assert failure.kind == "bad_response" and str(failure)
        return "failure"
    assert isinstance(result, Completion)
    return "completion"


@FUZZ
@given(raw=BODY)
def test_any_json_body_is_an_answer_or_a_bad_response(raw):
    outcome(lambda: OPENAI.parse(raw))
    outcome(lambda: ANTHROPIC.parse(raw))


LOOP = asyncio.new_event_loop()  # one loop for the 10,000 streams (a loop each costs more)


def stream_of(chunks: list[bytes]) -> httpx.Response:
    body = b"".join(b"data: " + c.replace(b"\n", b" ") + b"\n\n" for c in chunks)
    return httpx.Response(200, stream=httpx.ByteStream(body),
                          request=httpx.Request("POST", "http://127.0.0.1:9/v1"))


@FUZZ
@given(chunks=st.lists(BODY, max_size=4), done=st.booleans())
def test_any_event_stream_is_an_answer_or_a_bad_response(chunks, done):
    events = chunks + ([b"[DONE]"] if done else [])

    async def read(p):
        return await p.read_stream(stream_of(events), 0.0)

    outcome(lambda: LOOP.run_until_complete(read(OPENAI_SSE)))
    outcome(lambda: LOOP.run_until_complete(read(ANTHROPIC_SSE)))
