"""The local model fleet: an OpenAI-compatible HTTP server on loopback that simulates models.

    make_app(profiles=None, time_scale=1.0, seed=0, api_key=None) -> aiohttp.web.Application
    run(host="127.0.0.1", port=8400, time_scale=1.0, ...)   blocking; prints the listening line
    Fleet(...)          context manager: the server in a child process (python -m ...server)
    ThreadedFleet(...)  context manager: the server on its own event loop in a background thread

Endpoints: POST /v1/chat/completions (JSON or SSE), GET /v1/models, GET /_sim/stats.
Every response carries `x-replaybench-simulated: true`. Timing is simulated by sleeping
`time_scale` x the profile's latency; `time_scale=0` answers at once (tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from replaybench.sim.profiles import Completion, Profile, load_profiles, resolve

SIMULATED_HEADER = "x-replaybench-simulated"
CONTENT_CHUNKS = 6  # content deltas per streamed answer (fewer for very short answers)
REASONING_CHUNKS = 3
PROFILES_KEY = web.AppKey("profiles", dict)
OPTIONS_KEY = web.AppKey("options", dict)
STATS_KEY = web.AppKey("stats", Counter)


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "code": code}},
                             status=status, headers={SIMULATED_HEADER: "true"})


@web.middleware
async def _simulated_header(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404/405 for unknown routes, in OpenAI's error shape
        response = _error(exc.status, exc.reason, "invalid_request_error", str(exc.status))
    if not response.prepared:
        response.headers[SIMULATED_HEADER] = "true"
    return response


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    key = request.app[OPTIONS_KEY]["api_key"]
    if key and request.path.startswith("/v1/") and \
            request.headers.get("Authorization") != f"Bearer {key}":
        return _error(401, "Missing or invalid API key: send 'Authorization: Bearer <key>' with "
                           "the key the fleet was started with.", "invalid_request_error",
                      "invalid_api_key")
    return await handler(request)


def make_app(profiles: dict[str, Profile] | str | Path | None = None, time_scale: float = 1.0,
             seed: int = 0, api_key: str | None = None) -> web.Application:
    """The fleet's aiohttp application (profiles: a dict, a YAML path, or None for the default)."""
    if not isinstance(profiles, dict):
        profiles = load_profiles(profiles)
    app = web.Application(middlewares=[_simulated_header, _auth])
    app[PROFILES_KEY] = profiles
    app[OPTIONS_KEY] = {"time_scale": max(0.0, float(time_scale)), "seed": int(seed),
                        "api_key": api_key, "created": int(time.time())}
    app[STATS_KEY] = Counter()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/_sim/stats", stats)
    return app


async def list_models(request: web.Request) -> web.Response:
    """OpenAI's model list: every profile."""
    created = request.app[OPTIONS_KEY]["created"]
    data = [{"id": p.name, "object": "model", "created": created, "owned_by": p.provider}
            for p in request.app[PROFILES_KEY].values()]
    return web.json_response({"object": "list", "data": data})


async def stats(request: web.Request) -> web.Response:
    """Completed completions per model (as named by the profile)."""
    counts = dict(request.app[STATS_KEY])
    return web.json_response({"completions": counts, "total": sum(counts.values())})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: a simulated answer, as JSON or as server-sent events."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "Request body is not valid JSON.", "invalid_request_error")
    if not isinstance(body, dict):
        return _error(400, "Request body must be a JSON object.", "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or \
            not all(isinstance(m, dict) and "role" in m for m in messages):
        return _error(400, "'messages' is required: a non-empty list of {role, content} objects.",
                      "invalid_request_error", "invalid_messages")
    model = body.get("model")
    profiles = request.app[PROFILES_KEY]
    profile = resolve(profiles, model) if isinstance(model, str) else None
    if profile is None:
        return _error(404, f"The model {model!r} does not exist in the simulated fleet; "
                           f"available: {', '.join(profiles)}.",
                      "invalid_request_error", "model_not_found")
    options = request.app[OPTIONS_KEY]
    seed = body.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else options["seed"]
    completion = profile.respond(messages, seed)
    scale = options["time_scale"]
    ident = "chatcmpl-" + hashlib.sha256(
        f"{profile.name}\x00{seed}\x00{completion.content}".encode()).hexdigest()[:24]
    created = int(time.time())

    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = await _stream(request, completion, model, ident, created, scale,
                                 include_usage)
    else:
        if scale:
            await asyncio.sleep(completion.latency_ms / 1000 * scale)
        message: dict[str, Any] = {"role": "assistant", "content": completion.content}
        if completion.reasoning_content:
            message["reasoning_content"] = completion.reasoning_content
        response = web.json_response({
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": completion.usage(), "system_fingerprint": "replaybench-sim"})
    request.app[STATS_KEY][profile.name] += 1
    return response


def _split(text: str, parts: int) -> list[str]:
    """`text` in up to `parts` pieces whose concatenation is exactly `text`."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


async def _stream(request: web.Request, completion: Completion, model: str, ident: str,
                  created: int, scale: float, include_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        SIMULATED_HEADER: "true"})
    await response.prepare(request)

    async def send(payload: dict[str, Any] | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        await response.write(f"data: {data}\n\n".encode())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    deltas = [{"reasoning_content": part}
              for part in _split(completion.reasoning_content, REASONING_CHUNKS)]
    deltas += [{"content": part} for part in _split(completion.content, CONTENT_CHUNKS)]
    generation_s = (completion.latency_ms - completion.ttft_ms) / 1000 * scale
    gap = generation_s / max(1, len(deltas) - 1)

    await send(chunk({"role": "assistant", "content": ""}))
    if scale:
        await asyncio.sleep(completion.ttft_ms / 1000 * scale)
    for i, delta in enumerate(deltas):
        if scale and i:
            await asyncio.sleep(gap)
        await send(chunk(delta))
    await send(chunk({}, "stop"))
    if include_usage:
        await send({"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [], "usage": completion.usage()})
    await send("[DONE]")
    await response.write_eof()
    return response


# ---------------------------------------------------------------------------------------------
# running it


async def _serve(host: str, port: int, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


def run(host: str = "127.0.0.1", port: int = 8400, time_scale: float = 1.0, seed: int = 0,
        api_key: str | None = None, profiles: str | Path | None = None) -> None:
    """Serve the fleet until interrupted; prints `replaybench sim listening on URL` once bound."""

    async def main() -> None:
        runner = await _serve(host, port, make_app(profiles, time_scale, seed, api_key))
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
                 startup_timeout: float = 30.0) -> None:
        self.time_scale, self.seed, self.api_key = time_scale, seed, api_key
        self.profiles, self.host, self.startup_timeout = profiles, host, startup_timeout
        self.base_url = ""
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Fleet:
        args = [sys.executable, "-m", "replaybench.sim.server", "--host", self.host,
                "--port", "0", "--time-scale", str(self.time_scale), "--seed", str(self.seed)]
        if self.profiles:
            args += ["--profiles", str(self.profiles)]
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


class ThreadedFleet:
    """The fleet on its own event loop in a background thread of this process (for tests)."""

    def __init__(self, time_scale: float = 1.0, seed: int = 0, api_key: str | None = None,
                 profiles: dict[str, Profile] | str | Path | None = None,
                 host: str = "127.0.0.1") -> None:
        self.app = make_app(profiles, time_scale, seed, api_key)
        self.host = host
        self.base_url = ""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="replaybench-sim")
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> ThreadedFleet:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(_serve(self.host, 0, self.app), self._loop)
        self._runner = future.result(timeout=30)
        self.port = _bound_port(self._runner)
        self.base_url = f"http://{self.host}:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


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
    args = parser.parse_args(argv)
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        parser.error(f"{args.api_key_env} is not set in the environment")
    run(args.host, args.port, args.time_scale, args.seed, api_key, args.profiles)


if __name__ == "__main__":
    main()
