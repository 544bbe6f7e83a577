"""The local model fleet, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest

from replaybench.sim import workloads
from replaybench.sim.profiles import load_profiles
from replaybench.sim.server import Fleet, ThreadedFleet
from replaybench.sim.tokens import count_message_tokens, count_tokens

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


def test_profiles_cover_candidates_and_production():
    profiles = load_profiles()
    assert set(CANDIDATES + PRODUCTION) <= set(profiles)
    assert profiles["minimax-m3"].price.input == 0.30
    assert all(p.faults == {} for p in profiles.values())


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
    assert usage["completion_tokens"] == count_tokens(a["choices"][0]["message"]["content"]) + \
        usage["completion_tokens_details"]["reasoning_tokens"]
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
    with Fleet(time_scale=0, api_key="k") as fleet:
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
