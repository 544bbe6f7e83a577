"""Fault injection, stats and fixed latency of the local model fleet, over real HTTP on loopback."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from replaybench.sim import workloads
from replaybench.sim.app import STATE_KEY, make_app
from replaybench.sim.faults import go_duration, request_key
from replaybench.sim.profiles import load_profiles
from replaybench.sim.server import ProcessFleet, ThreadedFleet

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def _messages(kind: str = "triage", seed: int = 5) -> list[dict]:
    pv = workloads.WORKLOADS[kind].prompt_versions[-1]
    return workloads.generate(kind, pv, random.Random(seed)).messages


def _root(fleet) -> str:
    return fleet.base_url.removesuffix("/v1")


def _stats(fleet, detail: bool = False) -> dict:
    return httpx.get(_root(fleet) + "/_sim/stats" + ("?detail=1" if detail else "")).json()


def _chat(fleet, model: str = "glm-5.2", timeout: float = 5, **extra) -> httpx.Response:
    body = {"model": model, "messages": _messages(), **extra}
    return httpx.post(fleet.base_url + "/chat/completions", json=body, timeout=timeout)


def test_rate_limited_sends_retry_after():
    with ThreadedFleet(time_scale=0, faults={"glm-5.2": {"rate_limited": 1, "retry_after_s": 2}}
                       ) as fleet:
        response = _chat(fleet)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        assert "x-ratelimit-reset-requests" not in response.headers
        error = response.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["message"]
        assert _chat(fleet, "deepseek-v4-pro").status_code == 200  # other models unaffected
        stats = _stats(fleet)["models"]
        assert stats["glm-5.2"] == {"requests": 1, "completed": 0, "faults": {"rate_limited": 1},
                                 "peak_in_flight": 1}
        assert stats["deepseek-v4-pro"]["completed"] == 1


def test_rate_limited_with_reset_headers_instead():
    spec = {"rate_limited": 1, "retry_after_s": 360, "reset_headers": True}
    with ThreadedFleet(time_scale=0, faults={"*": spec}) as fleet:
        response = _chat(fleet, "openai/gpt-5-mini")
        assert response.status_code == 429
        assert "retry-after" not in response.headers
        assert response.headers["x-ratelimit-reset-requests"] == "6m0s"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert [go_duration(s) for s in (0.02, 1, 1.5, 60, 360, 3723)] == \
        ["20ms", "1s", "1.5s", "1m0s", "6m0s", "1h2m3s"]


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_errors(kind, status):
    with ThreadedFleet(time_scale=0, faults={"minimax-m3": {kind: 1}}) as fleet:
        response = _chat(fleet, "minimax-m3")
        assert response.status_code == status
        assert response.headers["x-replaybench-simulated"] == "true"
        assert response.json()["error"]["message"]
        assert _stats(fleet)["models"]["minimax-m3"]["faults"] == {kind: 1}


def test_stall_outlasts_the_client_timeout_and_shutdown_is_prompt():
    with ThreadedFleet(time_scale=0, faults={"glm-5.2": {"stall": 1, "stall_s": 2}}) as fleet:
        with pytest.raises(httpx.TimeoutException):
            _chat(fleet, timeout=0.5)
        with pytest.raises(httpx.TimeoutException):
            _chat(fleet, timeout=0.5, stream=True)
        stats = _stats(fleet)["models"]["glm-5.2"]
        assert stats["faults"] == {"stall": 2} and stats["completed"] == 0
        # A stall in progress while the server stops must not hold the stop up.
        with pytest.raises(httpx.TimeoutException):
            _chat(fleet, timeout=0.05)
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 1.9


def test_stalled_answer_still_arrives_for_a_patient_client():
    with ThreadedFleet(time_scale=0, faults={"glm-5.2": {"stall": 1, "stall_s": 0.2}}) as fleet:
        response = _chat(fleet, timeout=5)
        assert response.status_code == 200 and response.json()["choices"]
        assert _stats(fleet)["models"]["glm-5.2"]["completed"] == 1


def test_reset_drops_the_connection():
    with ThreadedFleet(time_scale=0, faults={"*": {"reset": 1}}) as fleet:
        with pytest.raises(httpx.TransportError):
            _chat(fleet)
        with pytest.raises(httpx.TransportError):
            httpx.post(fleet.base_url + "/messages", headers=ANTHROPIC_HEADERS, json={
                "model": "claude-haiku-4.5", "max_tokens": 100, "messages": _messages()[1:]})
        assert _stats(fleet)["total"] == 0


def test_truncated_is_a_200_with_unparsable_json():
    with ThreadedFleet(time_scale=0, faults={"deepseek-v4-pro": {"truncated": 1}}) as fleet:
        response = _chat(fleet, "deepseek-v4-pro")
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content) > 0
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
        stats = _stats(fleet)["models"]["deepseek-v4-pro"]
        assert stats["completed"] == 0 and stats["faults"] == {"truncated": 1}


def test_sse_cut_ends_the_stream_before_done():
    with ThreadedFleet(time_scale=0, faults={"glm-5.2": {"sse_cut": 1}}) as fleet:
        lines: list[str] = []
        with httpx.stream("POST", fleet.base_url + "/chat/completions", json={
                "model": "glm-5.2", "messages": _messages(), "stream": True}) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.TransportError):  # noqa: PT012 - the error comes mid-stream
                for line in response.iter_lines():
                    if line:
                        lines.append(line)
        assert lines and "data: [DONE]" not in lines
        assert all(json.loads(line.removeprefix("data: ")) for line in lines)
        stats = _stats(fleet)["models"]["glm-5.2"]
        assert stats["completed"] == 0 and stats["faults"] == {"sse_cut": 1}


def _sse(response: httpx.Response) -> list[bytes]:
    """The `data:` payloads of a whole SSE body."""
    return [line[5:].strip() for line in response.content.split(b"\n") if line.startswith(b"data:")]


def _anthropic(fleet, stream: bool = False, timeout: float = 5) -> httpx.Response:
    return httpx.post(fleet.base_url + "/messages", headers=ANTHROPIC_HEADERS, timeout=timeout,
                      json={"model": "claude-haiku-4.5", "max_tokens": 100,
                            "messages": _messages()[1:], "stream": stream})


def _wrong_shape(value) -> bool:
    """True when `value` is not a chat completion (or chunk) as the OpenAI API sends one."""
    if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
        return True
    for choice in value["choices"]:
        part = choice.get("message", choice.get("delta")) if isinstance(choice, dict) else None
        if not isinstance(part, dict) or not isinstance(part.get("content"), str | None):
            return True
    return _bad_usage(value)


def _wrong_anthropic_shape(value) -> bool:
    """True when `value` is not a message (or stream event) as the Messages API sends one."""
    if not isinstance(value, dict):
        return True
    if value.get("type") == "message":
        blocks = value.get("content")
        return not isinstance(blocks, list) or _bad_usage(value) or any(
            not isinstance(b, dict) or not isinstance(b.get("text", ""), str) for b in blocks)
    delta = value.get("delta", {})
    return not isinstance(delta, dict) or any(
        not isinstance(delta.get(f, ""), str | None) for f in ("text", "stop_reason"))


def _bad_usage(value: dict) -> bool:
    usage = value.get("usage") or {}
    return any(not isinstance(v, int) or v < 0 for v in usage.values() if not isinstance(v, dict))


def test_garbage_is_a_200_of_the_wrong_shape():
    with ThreadedFleet(time_scale=0, faults={"*": {"garbage": 1}}) as fleet:
        bodies = [_chat(fleet, messages=_messages("triage", i)) for i in range(8)]
        assert {r.status_code for r in bodies} == {200}
        assert all(_wrong_shape(r.json()) for r in bodies)
        assert len({r.content for r in bodies}) > 1  # several wrong shapes, not one
        streamed = _chat(fleet, stream=True)
        assert streamed.status_code == 200
        payloads = _sse(streamed)
        assert payloads[-1] == b"[DONE]"  # well framed: only a chunk in the middle is wrong
        assert not _wrong_shape(json.loads(payloads[0]))
        assert any(_wrong_shape(json.loads(p)) for p in payloads[1:-1])

        anthropic = _anthropic(fleet)
        assert anthropic.status_code == 200 and _wrong_anthropic_shape(anthropic.json())
        events = _sse(_anthropic(fleet, stream=True))
        assert json.loads(events[-1]) == {"type": "message_stop"}
        assert any(_wrong_anthropic_shape(json.loads(e)) for e in events)
        stats = _stats(fleet)["models"]
        assert stats["glm-5.2"]["completed"] == 0 and stats["glm-5.2"]["faults"] == {"garbage": 9}
        assert stats["claude-haiku-4.5"]["faults"] == {"garbage": 2}


@pytest.mark.parametrize("stream", [False, True])
def test_a_huge_answer_is_whole_and_valid_for_a_client_that_reads_it_all(stream):
    with ThreadedFleet(time_scale=0, faults={"*": {"huge": 1, "huge_bytes": 300_000}}) as fleet:
        response = _chat(fleet, stream=stream)
        assert response.status_code == 200 and "content-length" not in response.headers
        if stream:
            payloads = _sse(response)
            assert payloads[-1] == b"[DONE]"
            text = "".join(json.loads(p)["choices"][0]["delta"].get("content") or ""
                           for p in payloads[:-1])
        else:
            text = response.json()["choices"][0]["message"]["content"]
        assert 300_000 <= len(text) < 400_000
        anthropic = _anthropic(fleet, stream=stream)
        assert anthropic.status_code == 200 and len(anthropic.content) > 300_000
        if not stream:
            assert len(anthropic.json()["content"][0]["text"]) >= 300_000
        assert _stats(fleet)["models"]["glm-5.2"] == {
            "requests": 1, "completed": 0, "faults": {"huge": 1}, "peak_in_flight": 1}


@pytest.mark.parametrize("stream", [False, True])
def test_a_huge_answer_stops_when_the_client_hangs_up(stream):
    with ThreadedFleet(time_scale=0, faults={"*": {"huge": 1}}) as fleet:  # 20 MiB by default
        body = {"model": "glm-5.2", "messages": _messages(), "stream": stream}
        read = 0
        with httpx.stream("POST", fleet.base_url + "/chat/completions", json=body) as response:
            for chunk in response.iter_raw():
                read += len(chunk)
                if read > 1024 * 1024:
                    break  # hang up
        assert read > 1024 * 1024
        assert _settles(fleet, 0)  # the server notices and stops, without a completion
        assert _stats(fleet)["models"]["glm-5.2"]["completed"] == 0


def _settles(fleet, in_flight: int) -> bool:
    """Whether the fleet has `in_flight` attempts in progress within a few seconds."""
    for _ in range(200):
        if sum(s.in_flight for s in fleet.app[STATE_KEY].stats.values()) == in_flight:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("stream", [False, True])
def test_an_endless_answer_trickles_until_the_server_gives_up(stream):
    with ThreadedFleet(time_scale=0, faults={"*": {"endless": 1, "endless_s": 0.7}}) as fleet:
        body = {"model": "glm-5.2", "messages": _messages(), "stream": stream}
        arrivals: list[float] = []
        started = time.perf_counter()
        with httpx.stream("POST", fleet.base_url + "/chat/completions", json=body,
                          timeout=5) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):  # noqa: PT012 - it comes mid-body
                for _ in response.iter_raw():
                    arrivals.append(time.perf_counter() - started)
        assert len(arrivals) >= 3  # it keeps sending
        assert 0.6 <= time.perf_counter() - started < 3  # and is dropped after endless_s
        stats = _stats(fleet)["models"]["glm-5.2"]
        assert stats["completed"] == 0 and stats["faults"] == {"endless": 1}


def test_an_endless_stream_stops_when_the_client_hangs_up_or_the_server_stops():
    with ThreadedFleet(time_scale=0, faults={"*": {"endless": 1}}) as fleet:  # 30 s by default
        body = {"model": "glm-5.2", "messages": _messages(), "stream": True}
        with httpx.stream("POST", fleet.base_url + "/chat/completions", json=body) as response:
            lines = [line for _, line in zip(range(6), response.iter_lines(), strict=False)]
        assert all(json.loads(line.removeprefix("data: ")) for line in lines if line)
        assert _settles(fleet, 0)  # the next delta finds the client gone
        # streams to clients that never hang up end when the server stops
        ended: list[Exception] = []

        def patient(ask) -> None:
            try:
                ask(fleet, stream=True, timeout=60)  # a read timeout: each delta resets it
            except httpx.TransportError as exc:
                ended.append(exc)

        readers = [threading.Thread(target=patient, args=(ask,)) for ask in (_chat, _anthropic)]
        for reader in readers:
            reader.start()
        assert _settles(fleet, 2)
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 5
    for reader in readers:
        reader.join(5)
    assert len(ended) == 2


@pytest.mark.parametrize("reset_headers", [False, True])
def test_absurd_retry_after_asks_for_a_day(reset_headers):
    spec = {"absurd_retry_after": 1, "retry_after_s": 2, "reset_headers": reset_headers}
    with ThreadedFleet(time_scale=0, faults={"*": spec}) as fleet:
        response = _chat(fleet)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        if reset_headers:
            assert response.headers["x-ratelimit-reset-requests"] == "24h0m0s"
        else:
            assert response.headers["retry-after"] == "86400"
        limited = _anthropic(fleet)
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "rate_limit_error"
        reset = datetime.fromisoformat(limited.headers["anthropic-ratelimit-requests-reset"])
        assert 86000 < (reset - datetime.now(UTC)).total_seconds() <= 86401
        assert _stats(fleet)["models"]["glm-5.2"]["faults"] == {"absurd_retry_after": 1}


def test_the_hostile_kinds_are_drawn_after_the_others_and_recorded_per_key():
    """Adding the new kinds moved no old fault: a mix of old kinds meets what it met before."""
    old = {"rate_limited": 0.2, "server_error": 0.1, "truncated": 0.1}
    body = {"model": "glm-5.2", "messages": _messages("math", 3)}

    def sequence(faults) -> tuple[list[str], dict]:
        with ThreadedFleet(time_scale=0, faults={"*": faults}) as fleet, \
                httpx.Client(base_url=fleet.base_url, timeout=5) as http:
            outcomes = [_attempt(http, body) for _ in range(30)]
            return outcomes, _stats(fleet, detail=True)["models"]["glm-5.2"]

    before, _ = sequence(old)
    after, stats = sequence({**old, "garbage": 0.1, "absurd_retry_after": 0.1})
    assert [b for b, a in zip(before, after, strict=True) if b != "ok"] == \
        [a for b, a in zip(before, after, strict=True) if b != "ok"]
    assert "ok" in after and set(after) - set(before)  # and the new kinds showed up
    key = request_key("glm-5.2", body["messages"])
    drawn = stats["faults_by_key"][key]
    assert len(drawn) == 30 and sum(k is not None for k in drawn) == sum(stats["faults"].values())
    assert {k for k in drawn if k} == set(stats["faults"])


def _attempt(http: httpx.Client, body: dict) -> str:
    """One attempt: 'ok' or what went wrong."""
    try:
        response = http.post("/chat/completions", json=body)
    except httpx.TransportError:
        return "transport"
    if response.status_code != 200:
        return str(response.status_code)
    try:
        answer = response.json()
    except json.JSONDecodeError:
        return "truncated"
    return "garbage" if _wrong_shape(answer) else "ok"


HALF = {"rate_limited": 0.2, "server_error": 0.1, "reset": 0.1, "truncated": 0.1}


def test_retrying_succeeds_and_is_completed_exactly_once():
    messages = _messages("extract", seed=11)
    body = {"model": "zai/glm-5.2", "messages": messages, "seed": 3}
    with ThreadedFleet(time_scale=0, faults={"*": HALF}) as fleet, \
            httpx.Client(base_url=fleet.base_url, timeout=5) as http:
        outcomes = []
        while not outcomes or outcomes[-1] != "ok":
            outcomes.append(_attempt(http, body))
            assert len(outcomes) < 40
        stats = _stats(fleet, detail=True)["models"]["glm-5.2"]
        key = request_key("glm-5.2", messages, 3)
        assert stats["completed_by_key"] == {key: 1}
        assert stats["completed"] == 1 and stats["requests"] == len(outcomes)
        assert sum(stats["faults"].values()) == len(outcomes) - 1
        # Over many requests, about half the attempts fail.
        for i in range(60):
            _attempt(http, {"model": "deepseek-v4-pro", "messages": _messages("triage", i)})
        faults = sum(_stats(fleet)["models"]["deepseek-v4-pro"]["faults"].values())
        assert 15 <= faults <= 45


def test_fault_sequences_are_reproducible_per_seed():
    body = {"model": "minimax-m3", "messages": _messages("math", 2)}

    def sequence(fleet) -> list[str]:
        with httpx.Client(base_url=fleet.base_url, timeout=5) as http:
            return [_attempt(http, body) for _ in range(16)]

    with ThreadedFleet(time_scale=0, seed=1, faults={"*": HALF}) as fleet:
        first = sequence(fleet)
        assert httpx.post(_root(fleet) + "/_sim/reset").status_code == 200
        assert _stats(fleet)["models"] == {}
        assert sequence(fleet) == first  # attempt counters reset too
    with ThreadedFleet(time_scale=0, seed=1, faults={"*": HALF}) as fleet:
        assert sequence(fleet) == first
    with ThreadedFleet(time_scale=0, seed=2, faults={"*": HALF}) as fleet:
        assert sequence(fleet) != first
    assert "ok" in first and set(first) - {"ok"}


def test_anthropic_endpoint_faults():
    body = {"model": "claude-sonnet-4.5", "max_tokens": 256, "messages": _messages()[1:]}
    spec = {"rate_limited": 1, "retry_after_s": 5}
    with ThreadedFleet(time_scale=0, faults={"claude-sonnet-4.5": spec,
                                             "claude-haiku-4.5": {"unavailable": 1}}) as fleet:
        url = fleet.base_url + "/messages"
        limited = httpx.post(url, headers=ANTHROPIC_HEADERS, json=body)
        assert limited.status_code == 429
        assert limited.json() == {"type": "error", "error": {
            "type": "rate_limit_error", "message": limited.json()["error"]["message"]}}
        assert limited.headers["retry-after"] == "5"
        reset = datetime.fromisoformat(limited.headers["anthropic-ratelimit-requests-reset"])
        assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 6
        overloaded = httpx.post(url, headers=ANTHROPIC_HEADERS,
                                json={**body, "model": "claude-haiku-4.5"})
        assert overloaded.status_code == 529
        assert overloaded.json()["error"]["type"] == "overloaded_error"
        stats = _stats(fleet)["models"]
        assert stats["claude-sonnet-4.5"]["faults"] == {"rate_limited": 1}
        assert stats["claude-haiku-4.5"]["faults"] == {"unavailable": 1}


def test_faults_from_the_profiles_file(tmp_path):
    text = (load_profiles.__globals__["DEFAULT_PROFILES_PATH"]).read_text()
    text = text.replace("    dialect: deepseek\n",
                        "    dialect: deepseek\n    faults: {server_error: 1.0}\n")
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    assert load_profiles(path)["deepseek-v4-pro"].faults.active
    with ThreadedFleet(time_scale=0, profiles=str(path)) as fleet:
        assert _chat(fleet, "deepseek-v4-pro").status_code == 500
        assert _chat(fleet, "glm-5.2").status_code == 200
    # An override can switch a file's fault off again.
    with ThreadedFleet(time_scale=0, profiles=str(path),
                       faults={"deepseek-v4-pro": {"server_error": 0}}) as fleet:
        assert _chat(fleet, "deepseek-v4-pro").status_code == 200


def test_bad_fault_specs_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        make_app(faults={"gpt-9": {"reset": 1}})
    with pytest.raises(ValueError, match="add up to 1.3"):
        make_app(faults={"*": {"reset": 0.7, "stall": 0.6}})
    with pytest.raises(ValueError, match="add up to 1.1"):  # the hostile kinds count too
        make_app(faults={"glm-5.2": {"reset": 0.5, "garbage": 0.3, "endless": 0.3}})
    with pytest.raises(ValueError, match="huge: Input should be less than or equal to 1"):
        make_app(faults={"*": {"huge": 2}})
    # an unknown kind: one line that names it and lists the known ones
    with pytest.raises(ValueError, match=r"faults for '\*': unknown 'rate_limitd'; kinds: .*"
                                         r"garbage, huge, endless, absurd_retry_after") as refused:
        make_app(faults={"*": {"rate_limitd": 0.1}})
    assert "\n" not in str(refused.value)


def test_subprocess_fleet_takes_faults_and_fixed_latency():
    with ProcessFleet(time_scale=0, faults={"*": {"unavailable": 1}}, fixed_latency_ms=50) as fleet:
        assert _chat(fleet).status_code == 503
    with ProcessFleet(time_scale=0, fixed_latency_ms=60) as fleet:
        started = time.perf_counter()
        assert _chat(fleet).status_code == 200
        assert time.perf_counter() - started >= 0.06


def test_fixed_latency_overrides_profile_timing():
    with ThreadedFleet(time_scale=50, fixed_latency_ms=80) as fleet:
        started = time.perf_counter()
        assert _chat(fleet, "deepseek-v4-pro").status_code == 200
        plain = time.perf_counter() - started
        assert plain >= 0.08
        started = time.perf_counter()
        arrivals = []
        with httpx.stream("POST", fleet.base_url + "/chat/completions", json={
                "model": "deepseek-v4-pro", "messages": _messages(), "stream": True}) as response:
            for line in response.iter_lines():
                if line:
                    arrivals.append((time.perf_counter() - started, line))
        assert arrivals[-1][1] == "data: [DONE]"
        assert '"role":"assistant"' in arrivals[0][1]
        assert arrivals[1][0] >= 0.04  # the first delta at N/2
        assert arrivals[-1][0] >= 0.08  # the whole answer by N
