"""The fleet's aiohttp application: routes, per-model state and stats, faults acted out.

    make_app(profiles=None, time_scale=1.0, seed=0, api_key=None, faults=None,
             fixed_latency_ms=None) -> aiohttp.web.Application

Endpoints: POST /v1/chat/completions (JSON or SSE), POST /v1/messages (Anthropic Messages API,
JSON or SSE), GET /v1/models, GET /_sim/stats[?detail=1], POST /_sim/reset.
Every response carries `x-replaybench-simulated: true`. Timing is simulated by sleeping
`time_scale` x the profile's latency; `time_scale=0` answers at once (tests); `fixed_latency_ms`
makes every answer take exactly that long (benchmarks). How an answer looks on the wire is the
business of replaybench.sim.dialects (the profile's `dialect` on the OpenAI endpoint).

Faults (profile `faults`, overridden by make_app(faults={model or "*": spec})) are drawn per
attempt from sha256(seed, request key, attempt); see replaybench.sim.faults for the kinds:
429/500/503, stalls, resets, truncated bodies and cut streams, and what a hostile endpoint sends
(`garbage` JSON of the wrong shape, `huge` answers made while they are sent, `endless` streams
that stop only when the client hangs up or after `endless_s`, `absurd_retry_after` of a day).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from replaybench.judge import is_judge_request, split_judge_message
from replaybench.sim import workloads
from replaybench.sim.dialects import FaultError, Shape, anthropic, openai
from replaybench.sim.faults import ENDLESS_GAP_S, CompiledFaults, effective_faults, request_key
from replaybench.sim.profiles import Completion, Profile, load_profiles, resolve

SIMULATED_HEADER = "x-replaybench-simulated"
SSE_CUT_AFTER = 2  # deltas sent before an sse_cut fault aborts the stream
JSON_HEADERS = {"Content-Type": "application/json", SIMULATED_HEADER: "true"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               SIMULATED_HEADER: "true"}
HOSTILE_BODIES = ("garbage", "huge", "endless")  # faults acted out in a 200's body
_FILL = ("All work and no play makes the answer very long. " * 1400)[:64 * 1024]  # JSON-safe
SSE = tuple[list[bytes], list[bytes], list[bytes]]  # (head, deltas, tail) of a streamed answer


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


def _json_error(status: int, body: dict[str, Any],
                headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status,
                             headers={SIMULATED_HEADER: "true", **(headers or {})})


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    """An error in OpenAI's shape."""
    return _json_error(status, openai.error_body(message, type_, code))


def _anthropic_error(status: int, message: str) -> web.Response:
    """An error in Anthropic's shape."""
    return _json_error(status, anthropic.error_body(status, message))


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
# the two chat endpoints


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
    refused = openai.refusal(dialect, body)
    if refused is not None:
        return _json_error(400, refused)
    if is_judge_request(messages):
        return _judge_response(messages, model)
    request_seed = _int_or_none(body.get("seed"))
    key = request_key(profile.name, messages, request_seed)
    stream = bool(body.get("stream"))
    stats, early, fault = await _admit(request, state, profile, key, stream, openai.fault_error)
    if early is not None:
        return early

    seed = state.seed if request_seed is None else request_seed
    c = profile.respond(messages, seed)
    if state.answer_tokens:  # a long answer, a token (four characters) a delta
        c = replace(c, content="and " * state.answer_tokens,
                    completion_tokens=state.answer_tokens + c.reasoning_tokens)
    ident = openai.ident(profile.name, seed, c)
    created = int(time.time())
    split = bool(body.get("reasoning_split"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return await _deliver(
        request, state, profile, stats, key, fault, stream, c,
        shape=lambda: openai.shape(dialect, c, model, ident, created),
        events=lambda: openai.chunks(dialect, split, c, model, ident, created, include_usage,
                                     state.answer_tokens or openai.CONTENT_CHUNKS),
        body=lambda: openai.completion(dialect, split, c, model, ident, created))


def _judge_response(messages: list[dict[str, Any]], model: str) -> web.Response:
    """The fleet as an LLM judge: a deterministic `{"score", "why"}` verdict on the answer in the
    judge request's user message (no latency, no faults; see `workloads.judge`)."""
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    sections = split_judge_message(user if isinstance(user, str) else "")
    score, why = workloads.judge(sections["question"], sections["answer"])
    content = json.dumps({"score": score, "why": why})
    return web.json_response(openai.judge_completion(content, model, int(time.time())))


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
    stats, early, fault = await _admit(request, state, profile, key, stream, anthropic.fault_error)
    if early is not None:
        return early

    c = profile.respond(messages, state.seed)
    ident = anthropic.ident(profile.name, state.seed, c)
    return await _deliver(
        request, state, profile, stats, key, fault, stream, c,
        shape=lambda: anthropic.shape(c, model, ident),
        events=lambda: anthropic.stream_events(c, model, ident),
        body=lambda: json.dumps(anthropic.message(c, model, ident)).encode())


# ---------------------------------------------------------------------------------------------
# acting faults out, and sending an answer over (simulated) time


async def _admit(request: web.Request, state: _State, profile: Profile, key: str, stream: bool,
                 error_of: Callable[[str, CompiledFaults], FaultError | None]
                 ) -> tuple[_ModelStats, web.StreamResponse | None, str | None]:
    """Count the attempt and act out what its fault does before the answer: (the model's stats;
    the response to send instead of the answer, or None; the fault left for the answer, or None).
    `error_of` is the endpoint's dialect: how it answers the faults that are an error status."""
    stats, fault = state.admit(profile, key, stream)
    if fault is None:
        return stats, None, None
    faults = state.faults[profile.name]
    error = error_of(fault, faults)
    if error is not None:
        return stats, _json_error(*error), None
    if fault == "reset":
        return stats, _abort(request), None
    if fault == "stall":  # the answer follows, unless the client gave up (or the server stops)
        return stats, None if await state.stall(request, faults.stall_s) else _abort(request), None
    return stats, None, fault


async def _deliver(request: web.Request, state: _State, profile: Profile, stats: _ModelStats,
                   key: str, fault: str | None, stream: bool, c: Completion, *,
                   shape: Callable[[], Shape], events: Callable[[], SSE],
                   body: Callable[[], bytes]) -> web.StreamResponse:
    """Send the answer `c` in the endpoint's shape: streamed or whole, or as a fault acts it out
    (hostile bodies, a cut stream, a truncated body); counts a completion when it is whole."""
    first_s, total_s = state.timing(c)
    if fault in HOSTILE_BODIES:
        return await _hostile(request, state, state.faults[profile.name], fault, key, stream,
                              shape())
    if stream:
        head, deltas, tail = events()
        done = await _stream(request, head, deltas, tail, first_s, total_s, fault == "sse_cut")
        if done:
            _completed(stats, key)
        return done or _abort(request)
    return await _answer(request, stats, key, body(), total_s, fault == "truncated")


async def _answer(request: web.Request, stats: _ModelStats, key: str, payload: bytes,
                  total_s: float, truncate: bool) -> web.Response:
    """A JSON answer after `total_s` (cut in half when `truncate`); counts a completion."""
    if total_s:
        await asyncio.sleep(total_s)
    if truncate:
        return web.Response(body=payload[:len(payload) // 2], headers=JSON_HEADERS)
    _completed(stats, key)
    return web.Response(body=payload, headers=JSON_HEADERS)


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



async def _hostile(request: web.Request, state: _State, faults: CompiledFaults, fault: str,
                   key: str, stream: bool, shape: Shape) -> web.StreamResponse:
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

