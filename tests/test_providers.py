"""The providers against the local fleet on loopback: dialects normalised, retries classified,
limits held, secrets kept out of every message."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from replaybench.cache import cache_key
from replaybench.config import Candidate
from replaybench.limits import Limiter, limiter_for
from replaybench.providers import provider_class
from replaybench.providers.base import _seconds, retry_after
from replaybench.providers.openai import split_think
from replaybench.replay.send import http_client
from replaybench.sim import workloads
from replaybench.sim.server import ThreadedFleet

FAKE_KEY = "sk-test-RECOGNISABLE-4f9c2a71d0e3b5"


def task_messages(kind: str, seed: int = 3) -> list[dict]:
    pv = workloads.WORKLOADS[kind].prompt_versions[-1]
    return workloads.generate(kind, pv, random.Random(seed)).messages


def ask(candidate: Candidate, messages: list[dict], params: dict | None = None,
        api_key: str | None = None):
    async def go():
        async with http_client(candidate) as client:
            provider = provider_class(candidate.provider)(candidate, api_key, client,
                                                          limiter_for(candidate))
            return await provider.complete(messages, params or {"max_tokens": 4096})
    return asyncio.run(go())


def cand(fleet, model: str, **over) -> Candidate:
    return Candidate(**{"name": model, "base_url": fleet.base_url, "model": model,
                        "retry": {"backoff_s": 0.01, "max_backoff_s": 0.05}, **over})


# --- dialects ------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_glm_reasoning_tokens_are_estimated_and_marked(fleet, stream):
    answer = ask(cand(fleet, "glm-5.2", stream=stream), task_messages("math"))
    assert answer.status == "ok" and answer.reasoning_text
    assert answer.reasoning_estimated and answer.reasoning_tokens > 0
    assert answer.output_tokens >= answer.reasoning_tokens
    assert (answer.ttft_ms is not None) == stream


@pytest.mark.parametrize("stream", [True, False])
def test_deepseek_cached_tokens_come_from_its_own_field(fleet, stream):
    messages = task_messages("sql")
    answers = [ask(cand(fleet, "deepseek-v4-pro", stream=stream), messages, {"seed": s,
                                                                             "max_tokens": 4096})
               for s in range(6)]
    assert all(a.status == "ok" and not a.reasoning_estimated for a in answers)
    assert any((a.cached_tokens or 0) > 0 for a in answers)  # its hit rate is 0.85


@pytest.mark.parametrize("stream", [True, False])
def test_minimax_inline_think_is_moved_out_of_the_answer(fleet, stream):
    messages = task_messages("extract")
    inline = ask(cand(fleet, "minimax-m3", stream=stream), messages)
    split = ask(cand(fleet, "minimax-m3", stream=stream, params={"reasoning_split": True}),
                messages, {"max_tokens": 4096, "reasoning_split": True})
    assert "<think>" not in inline.output_text and inline.reasoning_text
    assert inline.output_text == split.output_text
    assert inline.reasoning_text == split.reasoning_text


def test_the_output_cap_field_follows_what_the_endpoint_asks_for(fleet):
    # gpt-5 refuses max_tokens and names max_completion_tokens; GLM the other way round
    for model, wrong in (("gpt-5", "max_tokens"), ("glm-5.2", "max_completion_tokens")):
        answer = ask(cand(fleet, model, max_tokens_field=wrong), task_messages("triage"))
        assert answer.status == "ok", answer.error


def test_a_replay_of_production_asks_each_model_in_its_own_terms(fleet):
    """Through one `@logged` provider, at once: gpt-5 refuses max_tokens, GLM refuses
    max_completion_tokens; what one model asked for must not be applied to the other."""
    candidate = cand(fleet, "@logged", name="production-replay", max_concurrency=32)

    async def go():
        async with http_client(candidate) as client:
            provider = provider_class("openai")(candidate, None, client, limiter_for(candidate))
            asks = [provider.complete(task_messages("triage", seed),
                                      {"model": model, "max_tokens": 256})
                    for seed in range(20) for model in ("gpt-5", "glm-5.2")]
            return await asyncio.gather(*asks)

    answers = asyncio.run(go())
    assert [a.error for a in answers if a.status != "ok"] == []


@pytest.mark.parametrize("stream", [True, False])
def test_anthropic_messages_natively(fleet, stream):
    candidate = cand(fleet, "claude-sonnet-4.5", provider="anthropic", stream=stream)
    messages = task_messages("summary")
    answer = ask(candidate, messages)
    openai_style = ask(cand(fleet, "claude-sonnet-4.5", stream=stream), messages)
    assert answer.status == "ok" and answer.output_text == openai_style.output_text
    # Anthropic's input_tokens excludes cache reads: added back, input matches the chat endpoint
    assert answer.input_tokens == openai_style.input_tokens
    assert answer.cached_tokens == openai_style.cached_tokens
    assert answer.output_tokens == openai_style.output_tokens


def test_split_think_handles_unclosed_and_absent_blocks():
    assert split_think("<think>a</think>\nbilling") == ("billing", "a")
    assert split_think("billing") == ("billing", None)
    assert split_think("<think>cut off mid-thought") == ("", "cut off mid-thought")


# --- retries and error classes -------------------------------------------------------------

@pytest.mark.parametrize("fault, kind", [("server_error", "server_error"),
                                         ("unavailable", "server_error"),
                                         ("reset", "server_error"),
                                         ("truncated", "bad_response"),
                                         ("sse_cut", "bad_response")])
def test_persistent_faults_exhaust_the_attempts_with_their_class(fault, kind):
    with ThreadedFleet(time_scale=0, faults={"*": {fault: 1}}) as fleet:
        answer = ask(cand(fleet, "glm-5.2", stream=fault == "sse_cut",
                          retry={"max_attempts": 3, "backoff_s": 0.01}), task_messages("triage"))
        served = httpx.get(fleet.base_url.removesuffix("/v1") + "/_sim/stats").json()
    assert answer.status == "error" and answer.error_kind == kind
    assert answer.attempts == 3 and served["models"]["glm-5.2"]["requests"] == 3


def test_a_stall_past_the_timeout_is_a_timeout():
    with ThreadedFleet(time_scale=0, faults={"*": {"stall": 1, "stall_s": 5}}) as fleet:
        answer = ask(cand(fleet, "glm-5.2", timeout_s=0.3, retry={"max_attempts": 2,
                                                                   "backoff_s": 0.01}),
                     task_messages("triage"))
    assert answer.error_kind == "timeout" and answer.attempts == 2


def test_retries_recover_from_a_mix_of_faults():
    mix = {"server_error": 0.2, "unavailable": 0.1, "reset": 0.1, "truncated": 0.1, "sse_cut": 0.1}
    with ThreadedFleet(time_scale=0, faults={"*": mix}) as fleet:
        answers = [ask(cand(fleet, "glm-5.2", retry={"max_attempts": 10, "backoff_s": 0.005}),
                       task_messages("triage", seed)) for seed in range(15)]
    assert all(a.status == "ok" for a in answers)
    assert any(a.attempts > 1 for a in answers)


def test_rate_limited_waits_as_told_then_succeeds():
    with ThreadedFleet(time_scale=0, faults={"*": {"rate_limited": 0.5, "retry_after_s": 0.2,
                                                   "reset_headers": True}}) as fleet:
        answers = [ask(cand(fleet, "glm-5.2", retry={"max_attempts": 10}), task_messages("triage", s))
                   for s in range(8)]
    assert all(a.status == "ok" for a in answers)
    assert any(a.attempts > 1 for a in answers)


def test_other_4xx_fail_at_once_with_the_providers_message(fleet):
    answer = ask(cand(fleet, "no-such-model"), task_messages("triage"))
    assert answer.error_kind == "bad_request" and answer.attempts == 1
    assert "does not exist" in answer.error


def test_a_wrong_key_is_auth_and_never_appears_in_the_error():
    with ThreadedFleet(time_scale=0, api_key="the-right-key") as fleet:
        from replaybench.errors import register_secret

        register_secret(FAKE_KEY)
        for provider in ("openai", "anthropic"):
            answer = ask(cand(fleet, "glm-5.2", provider=provider), task_messages("triage"),
                         api_key=FAKE_KEY)
            assert answer.error_kind == "auth" and answer.attempts == 1
            assert FAKE_KEY not in answer.error


def test_retry_after_headers_in_every_form():
    h = httpx.Headers
    assert retry_after(h({"retry-after": "2"})) == 2
    assert retry_after(h({"retry-after-ms": "250"})) == 0.25
    assert retry_after(h({"x-ratelimit-reset-requests": "6m0s",
                          "x-ratelimit-reset-tokens": "20ms"})) == 360
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    assert 28 < retry_after(h({"anthropic-ratelimit-requests-reset": soon})) <= 30
    http_date = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 57 < retry_after(h({"retry-after": http_date})) <= 60
    assert retry_after(h({})) is None
    assert _seconds("1h2m3.5s") == 3723.5 and _seconds("soon") is None
    # nonsense is no wait at all; a wait without end is kept, and clamped by the retry loop
    assert _seconds("nan") is None and _seconds("-5") is None
    assert retry_after(h({"retry-after-ms": "-1"})) is None
    assert _seconds("inf") == _seconds("1e400") == float("inf")


# --- limits ------------------------------------------------------------------------------

def test_concurrency_is_held_across_limiters_sharing_the_slot_files(tmp_path):
    """Two limiters on one endpoint (as two processes would have) never exceed its slots."""
    with ThreadedFleet(time_scale=0, fixed_latency_ms=40) as fleet:
        candidate = cand(fleet, "glm-5.2", max_concurrency=3, stream=False)

        async def go():
            async with http_client(candidate) as client:
                providers = [provider_class("openai")(candidate, None, client,
                                                      Limiter(candidate, tmp_path))
                             for _ in range(2)]
                await asyncio.gather(*(providers[i % 2].complete(task_messages("triage", i), {})
                                       for i in range(24)))

        asyncio.run(go())
        served = httpx.get(fleet.base_url.removesuffix("/v1") + "/_sim/stats").json()
    assert served["models"]["glm-5.2"]["peak_in_flight"] == 3
    assert served["models"]["glm-5.2"]["completed"] == 24


def test_requests_per_minute_spaces_requests_out(tmp_path):
    with ThreadedFleet(time_scale=0) as fleet:
        candidate = cand(fleet, "glm-5.2", requests_per_minute=600, stream=False)  # 10 a second
        limiter = Limiter(candidate, tmp_path)

        async def go():
            async with http_client(candidate) as client:
                provider = provider_class("openai")(candidate, None, client, limiter)
                await asyncio.gather(*(provider.complete(task_messages("triage", i), {})
                                       for i in range(610)))
        start = time.monotonic()
        asyncio.run(go())
    # the bucket holds a minute's worth (600); the 10 beyond it wait their turn
    assert time.monotonic() - start >= 0.9


def test_tokens_per_minute_budget_is_settled_with_real_usage(tmp_path):
    candidate = Candidate(name="x", base_url="http://127.0.0.1:9/v1", model="m",
                          tokens_per_minute=1000)
    limiter = Limiter(candidate, tmp_path)
    assert limiter._update_bucket(1, 900) == 0          # fits
    assert limiter._update_bucket(1, 900) > 0           # would exceed the minute's budget
    limiter.settle(900, 100)                            # it used 100, not 900: 800 back
    assert limiter._update_bucket(1, 800) == 0


# --- the cache key -------------------------------------------------------------------------

def test_cache_key_ignores_what_cannot_change_an_answer():
    c = Candidate(name="c", base_url="http://h/v1", model="m")
    msgs = [{"role": "user", "content": "hi"}]
    key = cache_key(c, msgs, {"temperature": 0, "max_tokens": 10})
    assert key == cache_key(c.model_copy(update={"timeout_s": 5, "stream": False,
                                                 "max_concurrency": 2}),
                            msgs, {"max_completion_tokens": 10, "temperature": 0, "stream": True})
    assert key != cache_key(c, msgs, {"temperature": 0.7, "max_tokens": 10})
    assert key != cache_key(c, [{"role": "user", "content": "hi!"}], {"temperature": 0,
                                                                      "max_tokens": 10})
    assert key != cache_key(c.model_copy(update={"model": "m2"}), msgs,
                            {"temperature": 0, "max_tokens": 10})
