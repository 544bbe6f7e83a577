"""The local model fleet: an OpenAI-compatible (and Anthropic) HTTP server on loopback that
simulates models, with the differences and the failures of real providers.

    make_app(profiles=None, time_scale=1.0, seed=0, api_key=None, faults=None,
             fixed_latency_ms=None) -> aiohttp.web.Application
    run(host="127.0.0.1", port=8400, time_scale=1.0, ...)   blocking; prints the listening line
    Fleet(...)          context manager: the server in a child process (python -m ...server)
    ThreadedFleet(...)  context manager: the server on its own event loop in a background thread

Endpoints: POST /v1/chat/completions (JSON or SSE), POST /v1/messages (Anthropic Messages API,
JSON or SSE), GET /v1/models, GET /_sim/stats[?detail=1], POST /_sim/reset.
Every response carries `x-replaybench-simulated: true`. Timing is simulated by sleeping
`time_scale` x the profile's latency; `time_scale=0` answers at once (tests); `fixed_latency_ms`
makes every answer take exactly that long (benchmarks).

Each profile's `dialect` decides how a chat completion is rendered (profile.respond is the same):

    dialect    reasoning text                      usage                          refuses
    generic    message.reasoning_content           cached_tokens, reasoning_tokens  -
    openai     none (hidden)                       cached_tokens, reasoning_tokens  max_tokens
    glm        message.reasoning_content           cached_tokens only               max_completion_tokens
    deepseek   message.reasoning_content           prompt_cache_hit/miss_tokens,    -
                                                   reasoning_tokens
    minimax    inline "<think>..</think>\n" before  cached_tokens, reasoning_tokens  -
               content; with reasoning_split: true
               message.reasoning_details
    vllm       message.reasoning                   cached_tokens only               -
    anthropic  as generic on this endpoint

Faults (profile `faults`, overridden by make_app(faults={model or "*": spec})) are drawn per
attempt from sha256(seed, request key, attempt); see replaybench.sim.faults for the kinds:
429/500/503, stalls, resets, truncated bodies and cut streams, and what a hostile endpoint sends
(`garbage` JSON of the wrong shape, `huge` answers made while they are sent, `endless` streams
that stop only when the client hangs up or after `endless_s`, `absurd_retry_after` of a day).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from replaybench.judge import is_judge_request, split_judge_message
from replaybench.sim import anthropic, workloads
from replaybench.sim.faults import (
    ABSURD_RETRY_AFTER_S,
    ENDLESS_GAP_S,
    CompiledFaults,
    anthropic_rate_limit_headers,
    effective_faults,
    go_duration,
    openai_rate_limit_headers,
    request_key,
)
from replaybench.sim.profiles import Completion, Profile, load_profiles, resolve

SIMULATED_HEADER = "x-replaybench-simulated"
CONTENT_CHUNKS = 6  # content deltas per streamed answer (fewer for very short answers)
REASONING_CHUNKS = 3
SSE_CUT_AFTER = 2  # deltas sent before an sse_cut fault aborts the stream
SHUTDOWN_TIMEOUT_S = 1.0  # how long a stopping server waits for answers in flight
JSON_HEADERS = {"Content-Type": "application/json", SIMULATED_HEADER: "true"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               SIMULATED_HEADER: "true"}
_FAULT_STATUS = {"rate_limited": 429, "server_error": 500, "unavailable": 503,
                 "absurd_retry_after": 429}
_FAULT_MESSAGES = {
    "rate_limited": ("Rate limit reached for requests (simulated). Please try again later.",
                     "requests", "rate_limit_exceeded"),
    "absurd_retry_after": ("Rate limit reached for requests (simulated). Please try again in "
                           f"{go_duration(ABSURD_RETRY_AFTER_S)}.", "requests",
                           "rate_limit_exceeded"),
    "server_error": ("The server had an error while processing your request (simulated).",
                     "server_error", None),
    "unavailable": ("The engine is currently overloaded, please try again later (simulated).",
                    "server_error", "service_unavailable"),
}
HOSTILE_BODIES = ("garbage", "huge", "endless")  # faults acted out in a 200's body
_FILL = ("All work and no play makes the answer very long. " * 1400)[:64 * 1024]  # JSON-safe


class _ModelStats:
    __slots__ = ("completed", "completed_by_key", "faults", "faults_by_key", "in_flight",
                 "peak_in_flight", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0       # attempts being answered now; the peak shows a client's limits
        self.peak_in_flight = 0
        self.completed = 0
        self.faults: dict[str, int] = {}
        self.completed_by_key: dict[str, int] = {}
        # per request key that met a fault: the fault of each attempt (None: none), in order
        self.faults_by_key: dict[str, list[str | None]] = {}


class _State:
    """Everything a request needs, resolved once when the app is made."""

    def __init__(self, profiles: dict[str, Profile], time_scale: float, seed: int,
                 api_key: str | None, faults: dict[str, CompiledFaults],
                 fixed_latency_ms: float | None, answer_tokens: int | None = None) -> None:
        self.profiles = profiles
        self.time_scale = max(0.0, float(time_scale))
        self.seed = int(seed)
        self.api_key = api_key
        self.bearer = f"Bearer {api_key}" if api_key else None
        self.created = int(time.time())
        self.faults = faults
        self.fixed_s = None if fixed_latency_ms is None else max(0.0, fixed_latency_ms) / 1000
        self.answer_tokens = answer_tokens
        self.attempts: dict[str, int] = {}
        self.stats: dict[str, _ModelStats] = {}
        self.stopping: asyncio.Event | None = None

    def stat(self, name: str) -> _ModelStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = _ModelStats()
        return stats

    def timing(self, c: Completion) -> tuple[float, float]:
        """(seconds to the first delta, seconds to the whole answer)."""
        if self.fixed_s is not None:
            return self.fixed_s / 2, self.fixed_s
        return c.ttft_ms / 1000 * self.time_scale, c.latency_ms / 1000 * self.time_scale

    def admit(self, profile: Profile, key: str, stream: bool) -> tuple[_ModelStats, str | None]:
        """Count the attempt and draw its fault (None, or the kind to act out)."""
        stats = self.stat(profile.name)
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        request_stats.set(stats)
        faults = self.faults[profile.name]
        if not faults.thresholds:
            return stats, None
        attempt = self.attempts.get(key, 0) + 1
        self.attempts[key] = attempt
        kind = faults.draw(self.seed, key, attempt)
        if kind == "truncated" and stream:
            kind = "sse_cut"
        elif kind == "sse_cut" and not stream:
            kind = "truncated"
        if kind is not None:
            stats.faults[kind] = stats.faults.get(kind, 0) + 1
        if kind is not None or key in stats.faults_by_key:
            stats.faults_by_key.setdefault(key, [None] * (attempt - 1)).append(kind)
        return stats, kind

    async def stall(self, request: web.Request, seconds: float) -> bool:
        """Sleep `seconds` (less if the server stops); False if the answer should not follow."""
        if self.stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)
        else:
            await asyncio.sleep(seconds)
        transport = request.transport
        return not (self.stopping is not None and self.stopping.is_set()) and \
            transport is not None and not transport.is_closing()


STATE_KEY = web.AppKey("state", _State)


def _error(status: int, message: str, type_: str, code: str | None = None,
           param: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    return web.json_response({"error": error}, status=status,
                             headers={SIMULATED_HEADER: "true", **(headers or {})})


def _anthropic_error(status: int, message: str,
                     headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(anthropic.error_body(status, message), status=status,
                             headers={SIMULATED_HEADER: "true", **(headers or {})})


def _abort(request: web.Request) -> web.Response:
    """Drop the connection without a response (the returned object is never sent)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


@web.middleware
async def _simulated_header(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404/405 for unknown routes, in OpenAI's error shape
        response = _error(exc.status, exc.reason, "invalid_request_error", str(exc.status))
    if not response.prepared:
        response.headers[SIMULATED_HEADER] = "true"
    return response


request_stats: contextvars.ContextVar[_ModelStats | None] = contextvars.ContextVar(
    "request_stats", default=None)


@web.middleware
async def _in_flight(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count an admitted attempt as in flight until its handler is done (answered or aborted)."""
    token = request_stats.set(None)
    try:
        return await handler(request)
    finally:
        stats = request_stats.get()
        if stats is not None:
            stats.in_flight -= 1
        request_stats.reset(token)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if state.api_key and request.path.startswith("/v1/"):
        if request.path == "/v1/messages":
            if request.headers.get("x-api-key") != state.api_key:
                return _anthropic_error(401, "invalid x-api-key")
        elif request.headers.get("Authorization") != state.bearer:
            return _error(401, "Missing or invalid API key: send 'Authorization: Bearer <key>' "
                               "with the key the fleet was started with.",
                          "invalid_request_error", "invalid_api_key")
    return await handler(request)


def make_app(profiles: dict[str, Profile] | str | Path | None = None, time_scale: float = 1.0,
             seed: int = 0, api_key: str | None = None,
             faults: Mapping[str, Mapping[str, Any]] | None = None,
             fixed_latency_ms: float | None = None,
             answer_tokens: int | None = None) -> web.Application:
    """The fleet's aiohttp application (profiles: a dict, a YAML path, or None for the default).

    faults: {model or "*": fault spec fields} merged over each profile's own `faults`.
    fixed_latency_ms: every answer takes exactly this long, whatever the profile's timing.
    answer_tokens: every chat completion answers with this many tokens of filler, streamed a
    token a delta (benchmarks: the long answers of reasoning models)."""
    if not isinstance(profiles, dict):
        profiles = load_profiles(profiles)
    app = web.Application(middlewares=[_simulated_header, _in_flight, _auth])
    state = _State(profiles, time_scale, seed, api_key, effective_faults(profiles, faults),
                   fixed_latency_ms, answer_tokens)
    app[STATE_KEY] = state

    async def startup(_: web.Application) -> None:
        state.stopping = asyncio.Event()

    async def shutdown(_: web.Application) -> None:
        if state.stopping is not None:
            state.stopping.set()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/reset", reset_stats)
    return app


async def list_models(request: web.Request) -> web.Response:
    """OpenAI's model list: every profile."""
    state = request.app[STATE_KEY]
    data = [{"id": p.name, "object": "model", "created": state.created, "owned_by": p.provider}
            for p in state.profiles.values()]
    return web.json_response({"object": "list", "data": data})


async def stats(request: web.Request) -> web.Response:
    """Per model: attempts received, full answers delivered, faults by kind (and, with
    ?detail=1, completions per request key and, for each key that met a fault, the fault of each
    of its attempts, null for none); `completions`/`total` as before."""
    detail = request.query.get("detail") not in (None, "", "0", "false")
    models: dict[str, Any] = {}
    for name, s in request.app[STATE_KEY].stats.items():
        models[name] = {"requests": s.requests, "completed": s.completed, "faults": dict(s.faults),
                        "peak_in_flight": s.peak_in_flight}
        if detail:
            models[name]["completed_by_key"] = dict(s.completed_by_key)
            models[name]["faults_by_key"] = {k: list(v) for k, v in s.faults_by_key.items()}
    completions = {name: m["completed"] for name, m in models.items() if m["completed"]}
    return web.json_response({"models": models, "completions": completions,
                              "total": sum(completions.values())})


async def reset_stats(request: web.Request) -> web.Response:
    """Zero the stats and the attempt counters (fault draws start again from attempt 1)."""
    state = request.app[STATE_KEY]
    state.stats.clear()
    state.attempts.clear()
    return web.json_response({"reset": True})


def _completed(stats: _ModelStats, key: str) -> None:
    stats.completed += 1
    stats.completed_by_key[key] = stats.completed_by_key.get(key, 0) + 1


async def _read_json(request: web.Request) -> dict[str, Any] | str:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "Request body is not valid JSON."
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    return body


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# OpenAI chat completions, in the profile's dialect


def _reasoning_field(dialect: str, text: str, split: bool) -> dict[str, Any]:
    """Where a dialect puts reasoning text, in a message or a delta ({} for none)."""
    if not text or dialect == "openai":
        return {}
    if dialect == "vllm":
        return {"reasoning": text}
    if dialect == "minimax":  # inline unless split (the caller puts the inline form in content)
        return {"reasoning_details": [{"type": "reasoning.text", "text": text}]} if split else {}
    return {"reasoning_content": text}


def _usage(dialect: str, c: Completion) -> dict[str, Any]:
    if dialect == "glm" or dialect == "vllm":
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": c.cached_tokens}}
    if dialect == "deepseek":
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens,
                "prompt_cache_hit_tokens": c.cached_tokens,
                "prompt_cache_miss_tokens": c.prompt_tokens - c.cached_tokens,
                "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens}}
    return c.usage()


def _refused(dialect: str, body: dict[str, Any]) -> web.Response | None:
    if dialect == "openai" and body.get("max_tokens") is not None:
        return _error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                           "Use 'max_completion_tokens' instead.", "invalid_request_error",
                      "unsupported_parameter", "max_tokens")
    if dialect == "glm" and body.get("max_completion_tokens") is not None:
        return _error(400, "Unsupported parameter: 'max_completion_tokens' is not supported by "
                           "this model. Use 'max_tokens' instead.", "invalid_request_error",
                      "unsupported_parameter", "max_completion_tokens")
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: a simulated answer, as JSON or as server-sent events."""
    body = await _read_json(request)
    if isinstance(body, str):
        return _error(400, body, "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or \
            not all(isinstance(m, dict) and "role" in m for m in messages):
        return _error(400, "'messages' is required: a non-empty list of {role, content} objects.",
                      "invalid_request_error", "invalid_messages")
    model = body.get("model")
    state = request.app[STATE_KEY]
    profile = resolve(state.profiles, model) if isinstance(model, str) else None
    if profile is None:
        return _error(404, f"The model {model!r} does not exist in the simulated fleet; "
                           f"available: {', '.join(state.profiles)}.",
                      "invalid_request_error", "model_not_found")
    dialect = profile.dialect
    refused = _refused(dialect, body)
    if refused is not None:
        return refused
    if is_judge_request(messages):
        return _judge_response(messages, model)
    request_seed = _int_or_none(body.get("seed"))
    key = request_key(profile.name, messages, request_seed)
    stream = bool(body.get("stream"))
    stats, fault = state.admit(profile, key, stream)
    if fault is not None:
        faults = state.faults[profile.name]
        if fault in _FAULT_STATUS:
            message, type_, code = _FAULT_MESSAGES[fault]
            headers = None
            if _FAULT_STATUS[fault] == 429:
                wait = ABSURD_RETRY_AFTER_S if fault == "absurd_retry_after" else None
                headers = openai_rate_limit_headers(faults, wait)
            return _error(_FAULT_STATUS[fault], message, type_, code, headers=headers)
        if not await _survives(request, state, fault, faults):
            return _abort(request)
        if fault == "stall":
            fault = None

    seed = state.seed if request_seed is None else request_seed
    c = profile.respond(messages, seed)
    if state.answer_tokens:  # a long answer, a token (four characters) a delta
        c = replace(c, content="and " * state.answer_tokens,
                    completion_tokens=state.answer_tokens + c.reasoning_tokens)
    ident = "chatcmpl-" + hashlib.sha256(
        f"{profile.name}\x00{seed}\x00{c.content}".encode()).hexdigest()[:24]
    created = int(time.time())
    split = bool(body.get("reasoning_split"))
    first_s, total_s = state.timing(c)
    if fault in HOSTILE_BODIES:
        shape = _openai_shape(dialect, c, model, ident, created)
        return await _hostile(request, state, state.faults[profile.name], fault, key, stream,
                              shape)

    if stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head, deltas, tail = _chat_chunks(dialect, split, c, model, ident, created, include_usage,
                                          state.answer_tokens or CONTENT_CHUNKS)
        done = await _stream(request, head, deltas, tail, first_s, total_s, fault == "sse_cut")
        if done:
            _completed(stats, key)
        return done or _abort(request)

    content = c.content
    if dialect == "minimax" and not split and c.reasoning_content:
        content = f"<think>{c.reasoning_content}</think>\n{content}"
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               **_reasoning_field(dialect, c.reasoning_content, split)}
    payload = json.dumps({
        "id": ident, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(dialect, c), "system_fingerprint": "replaybench-sim"}).encode()
    return await _answer(request, state, stats, key, payload, total_s, fault == "truncated")


def _judge_response(messages: list[dict[str, Any]], model: str) -> web.Response:
    """The fleet as an LLM judge: a deterministic `{"score", "why"}` verdict on the answer in the
    judge request's user message (no latency, no faults; see `workloads.judge`)."""
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    sections = split_judge_message(user if isinstance(user, str) else "")
    score, why = workloads.judge(sections["question"], sections["answer"])
    content = json.dumps({"score": score, "why": why})
    payload = {
        "id": "chatcmpl-judge-" + hashlib.sha256(content.encode()).hexdigest()[:16],
        "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "system_fingerprint": "replaybench-sim"}
    return web.json_response(payload)


async def _survives(request: web.Request, state: _State, fault: str, faults: Any) -> bool:
    """Act out a transport fault: False when the connection is to be dropped (a reset, or a stall
    the client gave up on), True when the answer should still follow."""
    if fault == "reset":
        return False
    if fault == "stall":
        return await state.stall(request, faults.stall_s)
    return True


async def _answer(request: web.Request, state: _State, stats: _ModelStats, key: str,
                  payload: bytes, total_s: float, truncate: bool) -> web.Response:
    """A JSON answer after `total_s` (cut in half when `truncate`); counts a completion."""
    if total_s:
        await asyncio.sleep(total_s)
    if truncate:
        return web.Response(body=payload[:len(payload) // 2], headers=JSON_HEADERS)
    _completed(stats, key)
    return web.Response(body=payload, headers=JSON_HEADERS)


def _split(text: str, parts: int) -> list[str]:
    """`text` in up to `parts` pieces whose concatenation is exactly `text`."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


def _chunk_maker(model: str, ident: str, created: int
                 ) -> Callable[[dict[str, Any], str | None], bytes]:
    """chunk(delta, finish_reason=None): one chat.completion.chunk as an SSE event."""
    prefix = f'data: {{"id":"{ident}","object":"chat.completion.chunk","created":{created},' \
             f'"model":{json.dumps(model)},"choices":[{{"index":0,"delta":'

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (prefix + json.dumps(delta, separators=(",", ":")) +
                f',"finish_reason":{json.dumps(finish)}}}]}}\n\n').encode()

    return chunk


def _chat_chunks(dialect: str, split: bool, c: Completion, model: str, ident: str, created: int,
                 include_usage: bool, content_chunks: int = CONTENT_CHUNKS
                 ) -> tuple[list[bytes], list[bytes], list[bytes]]:
    chunk = _chunk_maker(model, ident, created)

    deltas: list[dict[str, Any]] = []
    pieces = _split(c.reasoning_content, REASONING_CHUNKS) if dialect != "openai" else []
    if dialect == "minimax" and not split and pieces:
        pieces[0] = "<think>" + pieces[0]
        pieces[-1] += "</think>\n"
        deltas += [{"content": piece} for piece in pieces]
    else:
        deltas += [_reasoning_field(dialect, piece, split) for piece in pieces]
    deltas += [{"content": piece} for piece in _split(c.content, content_chunks)]
    tail = [chunk({}, "stop")]
    if include_usage:
        usage = json.dumps({"id": ident, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": _usage(dialect, c)},
                           separators=(",", ":"))
        tail.append(f"data: {usage}\n\n".encode())
    tail.append(b"data: [DONE]\n\n")
    return [chunk({"role": "assistant", "content": ""})], [chunk(d) for d in deltas], tail


async def _stream(request: web.Request, head: list[bytes], deltas: list[bytes],
                  tail: list[bytes], first_s: float, total_s: float, cut: bool
                  ) -> web.StreamResponse | None:
    """Send an SSE answer: head now, the first delta at first_s, the rest evenly by total_s,
    then the tail. With `cut`, stop after a few deltas and return None (the caller aborts)."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(b"".join(head))
    if cut:
        deltas = deltas[:min(SSE_CUT_AFTER, max(0, len(deltas) - 1))]
    gap = (total_s - first_s) / max(1, len(deltas) - 1) if len(deltas) > 1 else 0.0
    clock = asyncio.get_running_loop().time
    start = clock()  # deadlines from one start: sleeps' overshoots must not add up over deltas
    for i, delta in enumerate(deltas):
        wait = start + first_s + i * gap - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        await response.write(delta)
    if cut:
        return None
    if (wait := start + total_s - clock()) > 0:
        await asyncio.sleep(wait)
    await response.write(b"".join(tail))
    await response.write_eof()
    return response


# ---------------------------------------------------------------------------------------------
# What a hostile endpoint sends: garbage, huge and endless answers


@dataclass(frozen=True)
class _Shape:
    """One endpoint's answer cut open around its text, for the faults that fill it otherwise."""

    stream_head: bytes                   # SSE up to the first text delta
    stream_delta: Callable[[str], bytes]  # one text delta as SSE
    stream_tail: bytes                   # SSE after the last text delta, the end marker included
    body_head: bytes                     # the JSON answer up to its text's opening quote
    body_tail: bytes                     # from its text's closing quote on
    garbage_bodies: tuple[bytes, ...]    # 200 bodies of the wrong shape
    garbage_events: tuple[bytes, ...]    # SSE events of the wrong shape


_MARK = "@@replaybench-fill@@"


def _cut(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """A JSON answer whose text is _MARK, as the bytes before and after that text."""
    head, tail = json.dumps(payload, separators=(",", ":")).encode().split(_MARK.encode())
    return head, tail


def _openai_shape(dialect: str, c: Completion, model: str, ident: str, created: int) -> _Shape:
    chunk = _chunk_maker(model, ident, created)
    head, tail = _cut({
        "id": ident, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _MARK},
                     "finish_reason": "stop"}],
        "usage": _usage(dialect, c), "system_fingerprint": "replaybench-sim"})
    return _Shape(
        stream_head=chunk({"role": "assistant", "content": ""}, None),
        stream_delta=lambda text: chunk({"content": text}, None),
        stream_tail=chunk({}, "stop") + b"data: [DONE]\n\n",
        body_head=head, body_tail=tail,
        garbage_bodies=(
            b'{"choices":[{"message":"str"}]}',
            b'{"id":"x","object":"chat.completion","choices":"none"}',
            b'[1,2]',
            b'{"choices":[{"index":0,"message":{"role":"assistant","content":{"text":"hi"}}}]}',
            b'{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":-3,"completion_tokens":"many"}}'),
        garbage_events=(
            b"data: [1,2]\n\n",
            b'data: {"choices":[{"delta":"str"}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":5}}]}\n\n',
            b'data: "text"\n\n'))


def _sse_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _anthropic_shape(c: Completion, model: str, ident: str) -> _Shape:
    head, _, tail = anthropic.stream_events(c, model, ident)
    body_head, body_tail = _cut(anthropic.message(replace(c, content=_MARK, reasoning_content=""),
                                                  model, ident))
    return _Shape(
        stream_head=b"".join(head) + _sse_event("content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        stream_delta=lambda text: _sse_event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}),
        stream_tail=_sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + b"".join(tail),
        body_head=body_head, body_tail=body_tail,
        garbage_bodies=(
            b'{"type":"message","role":"assistant","content":"str"}',
            b'{"type":"message","content":[{"type":"text","text":5}]}',
            b'[1,2]',
            b'{"type":"message","content":[],"usage":{"input_tokens":-1}}'),
        garbage_events=(
            b"event: content_block_delta\ndata: [1,2]\n\n",
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":"str"}\n\n',
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":5}}\n\n',
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":7}}\n\n'))


async def _hostile(request: web.Request, state: _State, faults: CompiledFaults, fault: str,
                   key: str, stream: bool, shape: _Shape) -> web.StreamResponse:
    """Act out `garbage`, `huge` or `endless` in a 200, never a completion. A huge answer is made
    while it is sent; it stops early, and an endless one at all, when the client hangs up or the
    server stops; an endless one is dropped after endless_s at the latest."""
    if fault == "garbage":  # a different wrong shape per request and attempt, reproducibly
        variant = int(key[:8], 16) + state.attempts.get(key, 0)
        if stream:
            event = shape.garbage_events[variant % len(shape.garbage_events)]
            return web.Response(body=shape.stream_head + event + shape.stream_tail,
                                headers=SSE_HEADERS)
        return web.Response(body=shape.garbage_bodies[variant % len(shape.garbage_bodies)],
                            headers=JSON_HEADERS)
    response = web.StreamResponse(headers=SSE_HEADERS if stream else JSON_HEADERS)
    await response.prepare(request)
    try:
        if fault == "huge":
            piece = shape.stream_delta(_FILL) if stream else _FILL.encode()
            await response.write(shape.stream_head if stream else shape.body_head)
            for _ in range(-(-faults.huge_bytes // len(piece))):
                if state.stopping is not None and state.stopping.is_set():
                    return _abort(request)
                await response.write(piece)
            await response.write(shape.stream_tail if stream else shape.body_tail)
            await response.write_eof()
            return response
        # endless: a delta (not streamed: a blank, which JSON allows before a value) per gap
        piece = shape.stream_delta("and so on. ") if stream else b" "
        await response.write(shape.stream_head if stream else piece)
        clock = asyncio.get_running_loop().time
        until = clock() + faults.endless_s
        while (left := until - clock()) > 0 and \
                await state.stall(request, min(ENDLESS_GAP_S, left)):
            await response.write(piece)
    except ConnectionError:  # the client hung up: what it was sent was all it wanted
        pass
    return _abort(request)


# ---------------------------------------------------------------------------------------------
# Anthropic Messages API


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages: the Anthropic Messages API, JSON or SSE with `event:` lines."""
    if not request.headers.get("anthropic-version"):
        return _anthropic_error(400, "anthropic-version: header is required")
    body = await _read_json(request)
    if isinstance(body, str):
        return _anthropic_error(400, body)
    state = request.app[STATE_KEY]
    model = body.get("model")
    profile = resolve(state.profiles, model) if isinstance(model, str) else None
    if profile is None:
        return _anthropic_error(404, f"model: {model!r} not found in the simulated fleet")
    max_tokens = _int_or_none(body.get("max_tokens"))
    if max_tokens is None or max_tokens < 1:
        return _anthropic_error(400, "max_tokens: Field required (a positive integer)")
    messages = anthropic.to_chat_messages(body)
    if isinstance(messages, str):
        return _anthropic_error(400, messages)
    key = request_key(profile.name, messages, None)
    stream = bool(body.get("stream"))
    stats, fault = state.admit(profile, key, stream)
    if fault is not None:
        faults = state.faults[profile.name]
        if fault == "rate_limited":
            return _anthropic_error(429, "Number of requests has exceeded your rate limit "
                                         "(simulated).", anthropic_rate_limit_headers(faults))
        if fault == "absurd_retry_after":
            return _anthropic_error(429, "Number of requests has exceeded your rate limit "
                                         "(simulated): try again tomorrow.",
                                    anthropic_rate_limit_headers(faults, ABSURD_RETRY_AFTER_S))
        if fault == "server_error":
            return _anthropic_error(500, "Internal server error (simulated).")
        if fault == "unavailable":
            return _anthropic_error(529, "Overloaded (simulated).")
        if not await _survives(request, state, fault, faults):
            return _abort(request)
        if fault == "stall":
            fault = None

    c = profile.respond(messages, state.seed)
    ident = anthropic.ident(profile.name, state.seed, c)
    first_s, total_s = state.timing(c)
    if fault in HOSTILE_BODIES:
        shape = _anthropic_shape(c, model, ident)
        return await _hostile(request, state, state.faults[profile.name], fault, key, stream,
                              shape)
    if stream:
        head, deltas, tail = anthropic.stream_events(c, model, ident)
        done = await _stream(request, head, deltas, tail, first_s, total_s, fault == "sse_cut")
        if done:
            _completed(stats, key)
        return done or _abort(request)
    payload = json.dumps(anthropic.message(c, model, ident)).encode()
    return await _answer(request, state, stats, key, payload, total_s, fault == "truncated")


# ---------------------------------------------------------------------------------------------
# running it


async def _serve(host: str, port: int, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


def run(host: str = "127.0.0.1", port: int = 8400, time_scale: float = 1.0, seed: int = 0,
        api_key: str | None = None, profiles: str | Path | None = None,
        faults: Mapping[str, Mapping[str, Any]] | None = None,
        fixed_latency_ms: float | None = None) -> None:
    """Serve the fleet until interrupted; prints `replaybench sim listening on URL` once bound."""
    app = make_app(profiles, time_scale, seed, api_key, faults, fixed_latency_ms)

    async def main() -> None:
        runner = await _serve(host, port, app)
        print(f"replaybench sim listening on http://{host}:{_bound_port(runner)}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class Fleet:
    """The fleet in a child process on a free loopback port; `.base_url` once entered."""

    def __init__(self, time_scale: float = 1.0, seed: int = 0, api_key: str | None = None,
                 profiles: str | Path | None = None, host: str = "127.0.0.1",
                 startup_timeout: float = 30.0,
                 faults: Mapping[str, Mapping[str, Any]] | None = None,
                 fixed_latency_ms: float | None = None) -> None:
        self.time_scale, self.seed, self.api_key = time_scale, seed, api_key
        self.faults, self.fixed_latency_ms = faults, fixed_latency_ms
        self.profiles, self.host, self.startup_timeout = profiles, host, startup_timeout
        self.base_url = ""
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Fleet:
        args = [sys.executable, "-m", "replaybench.sim.server", "--host", self.host,
                "--port", "0", "--time-scale", str(self.time_scale), "--seed", str(self.seed)]
        if self.profiles:
            args += ["--profiles", str(self.profiles)]
        if self.faults:
            args += ["--faults", json.dumps(self.faults)]
        if self.fixed_latency_ms is not None:
            args += ["--latency-ms", str(self.fixed_latency_ms)]
        env = dict(os.environ)
        if self.api_key:
            env["REPLAYBENCH_SIM_API_KEY"] = self.api_key  # not on the command line: ps shows it
            args += ["--api-key-env", "REPLAYBENCH_SIM_API_KEY"]
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        line = self._read_line()
        self.base_url = line.rsplit(" ", 1)[-1].strip()
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])
        return self

    @property
    def pid(self) -> int:
        """The child process's id (a benchmark reads its CPU time)."""
        assert self._process is not None, "the fleet is not running"
        return self._process.pid

    def _read_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        line = result[0] if result else ""
        if "listening on" not in line:
            self.__exit__(None, None, None)
            raise RuntimeError(f"The simulated fleet did not start within {self.startup_timeout}"
                               f" s (first output: {line!r}); run `python -m "
                               "replaybench.sim.server --port 0` to see its error.")
        return line

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None


class ThreadedApp:
    """An aiohttp app served on its own event loop in a background thread of this process, on a
    free port of `host` (the fleet in tests, and the tests' other servers)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1",
                 name: str = "replaybench-app") -> None:
        self.app = app
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=name)
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(_serve(self.host, 0, self.app), self._loop)
        self._runner = future.result(timeout=30)
        self.port = _bound_port(self._runner)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class ThreadedFleet(ThreadedApp):
    """The fleet on its own event loop in a background thread of this process (for tests)."""

    def __init__(self, time_scale: float = 1.0, seed: int = 0, api_key: str | None = None,
                 profiles: dict[str, Profile] | str | Path | None = None,
                 host: str = "127.0.0.1",
                 faults: Mapping[str, Mapping[str, Any]] | None = None,
                 fixed_latency_ms: float | None = None) -> None:
        super().__init__(make_app(profiles, time_scale, seed, api_key, faults, fixed_latency_ms),
                         host, name="replaybench-sim")
        self.base_url = ""

    def __enter__(self) -> ThreadedFleet:
        self.start()
        self.base_url = f"http://{self.host}:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m replaybench.sim.server --port 0 --time-scale 0.01`"""
    parser = argparse.ArgumentParser(prog="python -m replaybench.sim.server",
                                     description="Serve the simulated model fleet (OpenAI API).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400, help="0 picks a free port")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply simulated latency (0 = answer at once)")
    parser.add_argument("--seed", type=int, default=0, help="seed for requests without one")
    parser.add_argument("--profiles", default=None, help="profiles YAML (default: bundled)")
    parser.add_argument("--api-key-env", default=None,
                        help="require 'Authorization: Bearer $VAR' (name of the variable)")
    parser.add_argument("--faults", default=None, metavar="JSON",
                        help='fault injection, {"model" or "*": {"rate_limited": 0.1, ...}}; '
                             'kinds: rate_limited, server_error, unavailable, stall, reset, '
                             'truncated, sse_cut, garbage, huge, endless, absurd_retry_after '
                             '(see replaybench/sim/faults.py)')
    parser.add_argument("--latency-ms", type=float, default=None,
                        help="every answer takes exactly this long (overrides --time-scale)")
    args = parser.parse_args(argv)
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        parser.error(f"{args.api_key_env} is not set in the environment")
    faults = None
    if args.faults:
        try:
            faults = json.loads(args.faults)
        except json.JSONDecodeError as exc:
            parser.error(f"--faults is not valid JSON: {exc}")
        if not isinstance(faults, dict) or not all(isinstance(v, dict) for v in faults.values()):
            parser.error('--faults must map a model (or "*") to a spec object')
    try:
        run(args.host, args.port, args.time_scale, args.seed, api_key, args.profiles, faults,
            args.latency_ms)
    except ValueError as exc:  # a bad fault spec: before the server binds
        parser.error(str(exc))


if __name__ == "__main__":
    main()
