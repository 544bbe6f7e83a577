"""Serving the fleet (the app of replaybench.sim.app) on loopback, in three ways:

    run(host="127.0.0.1", port=8400, time_scale=1.0, ...)   blocking; prints the listening line
    ProcessFleet(...)   context manager: the fleet in a child process (python -m ...server)
    ThreadedFleet(...)  context manager: the fleet on its own event loop in a background thread
    ThreadedApp(app)    the same for any aiohttp app (the tests' other servers on loopback)

`python -m replaybench.sim.server --help` lists the options of the child process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from replaybench.sim.app import make_app
from replaybench.sim.profiles import Profile

SHUTDOWN_TIMEOUT_S = 1.0  # how long a stopping server waits for answers in flight


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


class ProcessFleet:
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

    def __enter__(self) -> Self:
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
    free port of `host`: a context manager, or start() and stop()."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1",
                 name: str = "replaybench-app") -> None:
        self.app = app
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=name)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """http://host:port, once started."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Serve the app; returns once it is bound."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(_serve(self.host, 0, self.app), self._loop)
        self._runner = future.result(timeout=30)
        self.port = _bound_port(self._runner)

    def stop(self) -> None:
        """Stop serving (answers in flight get SHUTDOWN_TIMEOUT_S), and end the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadedFleet(ThreadedApp):
    """The fleet on its own event loop in a background thread of this process (for tests)."""

    def __init__(self, time_scale: float = 1.0, seed: int = 0, api_key: str | None = None,
                 profiles: dict[str, Profile] | str | Path | None = None,
                 host: str = "127.0.0.1",
                 faults: Mapping[str, Mapping[str, Any]] | None = None,
                 fixed_latency_ms: float | None = None) -> None:
        super().__init__(make_app(profiles, time_scale, seed, api_key, faults, fixed_latency_ms),
                         host, name="replaybench-sim")

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, http://host:port/v1, once started."""
        return f"{self.url}/v1"


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
