"""The local model fleet, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import pkgutil
import random
import time

import httpx
import pytest

from replaybench.sim import workloads
from replaybench.sim.faults import request_key
from replaybench.sim.profiles import load_profiles
from replaybench.sim.server import ProcessFleet, ThreadedFleet
from replaybench.sim.tokens import count_message_tokens, count_tokens
from replaybench.sim.workloads.base import register

CANDIDATES = ("glm-5.2", "deepseek-v4-pro", "minimax-m3")
PRODUCTION = ("gpt-5-mini", "gpt-5", "claude-haiku-4.5", "claude-sonnet-4.5")


@pytest.fixture(scope="module")
def fleet():
    with ThreadedFleet(time_scale=0) as running:
        yield running


@pytest.fixture(scope="module")
def client(fleet):
    with httpx.Client(base_url=fleet.base_url, timeout=10) as http:
        yield http


def _task(kind: str = "math", seed: int = 1) -> workloads.Task:
    pv = workloads.WORKLOADS[kind].prompt_versions[-1]
    return workloads.generate(kind, pv, random.Random(seed))


def _stats(fleet) -> dict[str, int]:
    return httpx.get(fleet.base_url.removesuffix("/v1") + "/_sim/stats").json()["completions"]


def test_tokens_are_deterministic_approximations():
    assert count_tokens("") == 0
    assert count_tokens("a") == 1
    assert count_tokens("abcdefgh") == 2
    messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "hi"}]
    assert count_message_tokens(messages) > count_tokens("x" * 40) + count_tokens("hi")


@pytest.mark.parametrize("kind", list(workloads.WORKLOADS))
def test_solver_recovers_the_truth_of_every_workload(kind):
    rng = random.Random(42)
    for pv in workloads.WORKLOADS[kind].prompt_versions:
        for _ in range(200):
            task = workloads.generate(kind, pv, rng)
            assert workloads.identify(task.messages) == (kind, pv)
            answer = workloads.solve(task.messages)
            assert workloads.core_value(kind, answer) == task.truth
            wrong = workloads.wrong(task.messages, rng)
            assert wrong != answer
            if kind == "summary":
                assert 40 <= len(answer.split()) <= 120
                assert len(wrong.split()) > 120 or task.truth not in wrong
            else:
                assert workloads.core_value(kind, wrong) != task.truth


def test_every_workload_module_registers_its_workload():
    modules = {m.name for m in pkgutil.iter_modules(workloads.__path__)} - {"base"}
    assert set(workloads.WORKLOADS) == modules  # a workload module is named after its kind
    with pytest.raises(ValueError, match="two workloads"):
        register(workloads.WORKLOADS["math"])


def test_profiles_cover_candidates_and_production():
    profiles = load_profiles()
    assert set(CANDIDATES + PRODUCTION) <= set(profiles)
    assert profiles["minimax-m3"].price.input == 0.30
    assert not any(p.faults.active for p in profiles.values())
    assert {p.name: p.dialect for p in profiles.values()} == {
        "glm-5.2": "glm", "deepseek-v4-pro": "deepseek", "minimax-m3": "minimax",
        "gpt-5-mini": "openai", "gpt-5": "openai", "claude-haiku-4.5": "anthropic",
        "claude-sonnet-4.5": "anthropic"}


def test_models_lists_every_profile(client):
    response = client.get("/models")
    assert response.status_code == 200
    assert response.headers["x-replaybench-simulated"] == "true"
    body = response.json()
    assert body["object"] == "list"
    assert {m["id"] for m in body["data"]} >= set(CANDIDATES + PRODUCTION)


def test_completion_is_deterministic_and_seeded(client):
    task = _task("math")
    request = {"model": "glm-5.2", "messages": task.messages, "temperature": 0}
    first, second = client.post("/chat/completions", json=request), client.post(
        "/chat/completions", json=request)
    assert first.status_code == 200
    assert first.headers["x-replaybench-simulated"] == "true"
    a, b = first.json(), second.json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["usage"] == b["usage"]
    assert a["choices"][0]["finish_reason"] == "stop"
    usage = a["usage"]
    assert usage["prompt_tokens"] == count_message_tokens(task.messages)
    reasoning_tokens = load_profiles()["glm-5.2"].respond(task.messages).reasoning_tokens
    assert reasoning_tokens > 0 and "completion_tokens_details" not in usage  # GLM reports none
    assert usage["completion_tokens"] == count_tokens(a["choices"][0]["message"]["content"]) + \
        reasoning_tokens
    assert usage["prompt_tokens_details"]["cached_tokens"] % 64 == 0
    assert a["choices"][0]["message"]["reasoning_content"]
    # A provider prefix selects the same profile; other seeds give other draws.
    prefixed = client.post("/chat/completions", json={**request, "model": "zai/glm-5.2"}).json()
    assert prefixed["usage"] == a["usage"]
    seeded = [client.post("/chat/completions", json={**request, "seed": s}).json()["usage"]
              for s in range(1, 6)]
    assert any(u != a["usage"] for u in seeded)


def test_unknown_prompt_gets_a_generic_answer(client):
    messages = [{"role": "user", "content": "Say hello"}]
    body = client.post("/chat/completions",
                       json={"model": "openai/gpt-5-mini", "messages": messages}).json()
    assert "simulated" in body["choices"][0]["message"]["content"]


def test_streaming_matches_the_plain_answer(client):
    task = _task("sql", seed=3)
    request = {"model": "deepseek-v4-pro", "messages": task.messages}
    plain = client.post("/chat/completions", json=request).json()
    with client.stream("POST", "/chat/completions", json={
            **request, "stream": True, "stream_options": {"include_usage": True}}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-replaybench-simulated"] == "true"
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    content = "".join(d.get("content") or "" for d in deltas)
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert sum(1 for d in deltas if d.get("content")) >= 2
    assert content == plain["choices"][0]["message"]["content"]
    assert reasoning == plain["choices"][0]["message"]["reasoning_content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_errors_have_openai_shape(client):
    task = _task("triage")
    unknown = client.post("/chat/completions", json={"model": "gpt-9", "messages": task.messages})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert unknown.headers["x-replaybench-simulated"] == "true"
    bad_json = client.post("/chat/completions", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "message" in bad_json.json()["error"]
    no_messages = client.post("/chat/completions", json={"model": "glm-5.2"})
    assert no_messages.status_code == 400


def test_api_key_is_required_when_configured():
    task = _task("extract")
    with ThreadedFleet(time_scale=0, api_key="sim-key") as fleet:
        request = {"model": "minimax-m3", "messages": task.messages}
        missing = httpx.post(fleet.base_url + "/chat/completions", json=request)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        ok = httpx.post(fleet.base_url + "/chat/completions", json=request,
                        headers={"Authorization": "Bearer sim-key"})
        assert ok.status_code == 200


def test_stats_count_completed_completions():
    task = _task("summary")
    with ThreadedFleet(time_scale=0) as fleet, httpx.Client(base_url=fleet.base_url) as http:
        for _ in range(3):
            http.post("/chat/completions", json={"model": "glm-5.2", "messages": task.messages})
        with http.stream("POST", "/chat/completions", json={
                "model": "openai/gpt-5", "messages": task.messages, "stream": True}) as response:
            response.read()
        http.post("/chat/completions", json={"model": "nope", "messages": task.messages})
        assert _stats(fleet) == {"glm-5.2": 3, "gpt-5": 1}
        system, *rest = task.messages
        http.post("/messages", headers={"anthropic-version": "2023-06-01"}, json={
            "model": "claude-sonnet-4.5", "system": system["content"], "messages": rest,
            "max_tokens": 500})
        root = fleet.base_url.removesuffix("/v1")
        stats = httpx.get(root + "/_sim/stats").json()
        assert stats["total"] == 5
        assert stats["models"]["glm-5.2"] == {"requests": 3, "completed": 3, "faults": {},
                                              "peak_in_flight": 1}
        assert stats["models"]["claude-sonnet-4.5"]["completed"] == 1
        detail = httpx.get(root + "/_sim/stats?detail=1").json()["models"]["glm-5.2"]
        assert detail["completed_by_key"] == {request_key("glm-5.2", task.messages): 3}
        assert httpx.post(root + "/_sim/reset").json() == {"reset": True}
        assert httpx.get(root + "/_sim/stats").json() == {"models": {}, "completions": {},
                                                         "total": 0}


def test_time_scale_sleeps_for_the_simulated_latency():
    task = _task("math")
    expected = load_profiles()["glm-5.2"].respond(task.messages).latency_ms / 1000 * 0.01
    with ThreadedFleet(time_scale=0.01) as fleet:
        started = time.perf_counter()
        response = httpx.post(fleet.base_url + "/chat/completions",
                              json={"model": "glm-5.2", "messages": task.messages})
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= expected * 0.99  # a lower bound only: no time limit in a test


def test_glm_beats_minimax_on_math(client):
    rng = random.Random(7)
    tasks = [workloads.generate("math", "tutor-math@v1", rng) for _ in range(300)]
    rates = {}
    for model in ("glm-5.2", "minimax-m3"):
        correct = 0
        for task in tasks:
            body = client.post("/chat/completions",
                               json={"model": model, "messages": task.messages}).json()
            content = body["choices"][0]["message"]["content"]
            correct += workloads.core_value("math", content) == task.truth
        rates[model] = correct / len(tasks)
    assert rates["glm-5.2"] > rates["minimax-m3"] + 0.15


def test_subprocess_fleet_serves_and_terminates():
    task = _task("triage")
    with ProcessFleet(time_scale=0, api_key="k") as fleet:
        assert fleet.base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer k"}
        models = httpx.get(fleet.base_url + "/models", headers=headers)
        assert models.status_code == 200
        body = httpx.post(fleet.base_url + "/chat/completions", headers=headers,
                          json={"model": "openai/gpt-5-mini", "messages": task.messages}).json()
        assert body["choices"][0]["message"]["content"]
        process = fleet._process
    assert process is None or process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(fleet.base_url + "/models", timeout=2)


# ---- provider dialects -------------------------------------------------------------------------


def _post(client, model: str, messages, **extra) -> httpx.Response:
    return client.post("/chat/completions", json={"model": model, "messages": messages, **extra})


def _stream_deltas(client, model: str, messages, **extra) -> tuple[list[dict], list[dict]]:
    """(deltas, chunks) of a streamed answer that ends with [DONE]."""
    with client.stream("POST", "/chat/completions", json={
            "model": model, "messages": messages, "stream": True,
            "stream_options": {"include_usage": True}, **extra}) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]], chunks


def _strip_think(text: str) -> str:
    if text.startswith("<think>"):
        return text[text.index("</think>\n") + len("</think>\n"):]
    return text


def test_every_dialect_carries_the_same_content(client):
    profiles = load_profiles()
    task = _task("extract", seed=8)
    for name in CANDIDATES + PRODUCTION:
        expected = profiles[name].respond(task.messages)
        body = _post(client, name, task.messages).json()
        content = body["choices"][0]["message"]["content"]
        assert _strip_think(content) == expected.content, name
        assert body["usage"]["prompt_tokens"] == expected.prompt_tokens
        assert body["usage"]["completion_tokens"] == expected.completion_tokens
        deltas, _ = _stream_deltas(client, name, task.messages)
        assert _strip_think("".join(d.get("content") or "" for d in deltas)) == expected.content


def test_glm_dialect(client):
    task = _task("math", seed=4)
    expected = load_profiles()["glm-5.2"].respond(task.messages)
    body = _post(client, "glm-5.2", task.messages, max_tokens=4000).json()
    message, usage = body["choices"][0]["message"], body["usage"]
    assert message["reasoning_content"] == expected.reasoning_content
    assert "completion_tokens_details" not in usage
    assert usage["prompt_tokens_details"] == {"cached_tokens": expected.cached_tokens}
    deltas, chunks = _stream_deltas(client, "glm-5.2", task.messages)
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == expected.reasoning_content
    assert "completion_tokens_details" not in chunks[-1]["usage"]
    refused = _post(client, "glm-5.2", task.messages, max_completion_tokens=4000)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "max_completion_tokens"
    assert "max_tokens" in error["message"].replace("max_completion_tokens", "")


def test_deepseek_dialect(client):
    profile = load_profiles()["deepseek-v4-pro"]
    rng = random.Random(1)
    tasks = [workloads.generate("sql", "text-to-sql@v2", rng) for _ in range(10)]
    cached_seen = 0
    for task in tasks:
        expected = profile.respond(task.messages)
        body = _post(client, "deepseek-v4-pro", task.messages).json()
        usage = body["usage"]
        assert "prompt_tokens_details" not in usage
        assert usage["prompt_cache_hit_tokens"] == expected.cached_tokens
        assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == \
            usage["prompt_tokens"]
        assert usage["completion_tokens_details"] == {"reasoning_tokens": expected.reasoning_tokens}
        assert body["choices"][0]["message"]["reasoning_content"] == expected.reasoning_content
        cached_seen += usage["prompt_cache_hit_tokens"] > 0
    assert cached_seen


def test_minimax_dialect_inline_think_and_reasoning_split(client):
    task = _task("triage", seed=9)
    expected = load_profiles()["minimax-m3"].respond(task.messages)
    assert expected.reasoning_content
    message = _post(client, "minimax-m3", task.messages).json()["choices"][0]["message"]
    assert message["content"] == f"<think>{expected.reasoning_content}</think>\n{expected.content}"
    assert "reasoning_content" not in message and "reasoning_details" not in message
    deltas, _ = _stream_deltas(client, "minimax-m3", task.messages)
    pieces = [d["content"] for d in deltas if d.get("content")]
    assert pieces[0].startswith("<think>") and "</think>" not in pieces[0]  # across chunks
    assert "".join(pieces) == message["content"]

    body = _post(client, "minimax-m3", task.messages, reasoning_split=True).json()
    message = body["choices"][0]["message"]
    assert message["content"] == expected.content
    assert message["reasoning_details"] == [{"type": "reasoning.text",
                                             "text": expected.reasoning_content}]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == \
        expected.reasoning_tokens
    deltas, _ = _stream_deltas(client, "minimax-m3", task.messages, reasoning_split=True)
    assert "".join(d.get("content") or "" for d in deltas) == expected.content
    assert "".join(part["text"] for d in deltas for part in d.get("reasoning_details", [])) == \
        expected.reasoning_content


@pytest.mark.parametrize("model", ["gpt-5", "openai/gpt-5-mini"])
def test_openai_dialect_hides_reasoning_and_refuses_max_tokens(client, model):
    task = _task("sql", seed=2)
    body = _post(client, model, task.messages, max_completion_tokens=2000).json()
    message, usage = body["choices"][0]["message"], body["usage"]
    assert set(message) == {"role", "content"}
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert "cached_tokens" in usage["prompt_tokens_details"]
    deltas, _ = _stream_deltas(client, model, task.messages)
    assert all(set(d) <= {"role", "content"} for d in deltas)
    refused = _post(client, model, task.messages, max_tokens=512)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.")
    assert refused.json()["error"]["param"] == "max_tokens"


def test_vllm_dialect():
    profiles = load_profiles()
    qwen = profiles["glm-5.2"].model_copy(update={"name": "qwen3-vllm", "dialect": "vllm"})
    task = _task("math", seed=6)
    with ThreadedFleet(time_scale=0, profiles={"qwen3-vllm": qwen}) as fleet, \
            httpx.Client(base_url=fleet.base_url) as http:
        body = _post(http, "qwen3-vllm", task.messages).json()
        message = body["choices"][0]["message"]
        assert message["reasoning"] and "reasoning_content" not in message
        deltas, _ = _stream_deltas(http, "qwen3-vllm", task.messages)
        assert "".join(d.get("reasoning") or "" for d in deltas) == message["reasoning"]


# ---- Anthropic Messages API --------------------------------------------------------------------

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def _anthropic_body(task, model: str = "claude-haiku-4.5", **extra) -> dict:
    system, *rest = task.messages
    return {"model": model, "system": system["content"], "max_tokens": 1024,
            "messages": [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                         for m in rest], **extra}


def test_anthropic_messages_plain(client):
    profiles = load_profiles()
    rng = random.Random(3)
    tasks = [workloads.generate("extract", "invoice-extract@v2", rng) for _ in range(8)]
    cached_seen = 0
    for task in tasks:
        expected = profiles["claude-haiku-4.5"].respond(task.messages)
        response = client.post("/messages", headers=ANTHROPIC, json=_anthropic_body(task))
        assert response.status_code == 200
        body = response.json()
        assert body["id"].startswith("msg_") and body["type"] == "message"
        assert body["role"] == "assistant" and body["stop_reason"] == "end_turn"
        assert body["content"] == [{"type": "text", "text": expected.content}]
        assert body["usage"] == {
            "input_tokens": expected.prompt_tokens - expected.cached_tokens,
            "cache_read_input_tokens": expected.cached_tokens, "cache_creation_input_tokens": 0,
            "output_tokens": expected.completion_tokens}
        cached_seen += expected.cached_tokens > 0
    assert cached_seen
    # The same chat on the OpenAI endpoint gets the same answer.
    chat = _post(client, "claude-haiku-4.5", tasks[0].messages).json()
    assert chat["choices"][0]["message"]["content"] == \
        profiles["claude-haiku-4.5"].respond(tasks[0].messages).content
    # A thinking model answers with a thinking block first.
    thinking = client.post("/messages", headers=ANTHROPIC,
                           json=_anthropic_body(tasks[0], "glm-5.2")).json()
    expected = profiles["glm-5.2"].respond(tasks[0].messages)
    assert [b["type"] for b in thinking["content"]] == ["thinking", "text"]
    assert thinking["content"][0]["thinking"] == expected.reasoning_content
    assert thinking["content"][0]["signature"]
    assert thinking["usage"]["output_tokens"] == expected.completion_tokens


def _sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
            assert data["type"] == name
            events.append((name, data))
    return events


def test_anthropic_messages_streamed(client):
    task = _task("math", seed=12)
    expected = load_profiles()["glm-5.2"].respond(task.messages)
    with client.stream("POST", "/messages", headers=ANTHROPIC,
                       json=_anthropic_body(task, "glm-5.2", stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response)
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    blocks = [d for n, d in events if n == "content_block_start"]
    assert [b["content_block"]["type"] for b in blocks] == ["thinking", "text"]
    order = [n for n in names if n.startswith("content_block")]
    assert order[0] == "content_block_start" and order[-1] == "content_block_stop"
    assert order.count("content_block_start") == order.count("content_block_stop") == 2
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == expected.prompt_tokens - expected.cached_tokens
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == expected.reasoning_content
    assert "".join(d.get("text", "") for d in deltas) == expected.content
    assert any(d["type"] == "signature_delta" for d in deltas)
    final = next(d for n, d in events if n == "message_delta")
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == expected.completion_tokens


def test_anthropic_errors(client):
    task = _task("triage")
    body = _anthropic_body(task)
    no_max = client.post("/messages", headers=ANTHROPIC,
                         json={k: v for k, v in body.items() if k != "max_tokens"})
    assert no_max.status_code == 400
    assert no_max.json()["type"] == "error"
    assert no_max.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in no_max.json()["error"]["message"]
    assert client.post("/messages", json=body).status_code == 400  # no anthropic-version
    unknown = client.post("/messages", headers=ANTHROPIC, json={**body, "model": "claude-9"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    with ThreadedFleet(time_scale=0, api_key="sk-ant-sim") as fleet:
        url = fleet.base_url + "/messages"
        wrong = httpx.post(url, json=body, headers={**ANTHROPIC, "x-api-key": "nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["type"] == "authentication_error"
        right = httpx.post(url, json=body, headers={**ANTHROPIC, "x-api-key": "sk-ant-sim"})
        assert right.status_code == 200
