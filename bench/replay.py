"""Replay overhead: the pipeline's own replay step against a fixed-latency fleet, next to the best
bare Python clients, in one run. Prints figures; asserts nothing.

    .venv/bin/python bench/replay.py                  # N=2000, C=16, 64, 128, 256, 100 ms; long answers
    .venv/bin/python bench/replay.py -n 500 -c 32 --latency-ms 50 --no-long
    .venv/bin/python bench/replay.py --long-only --long-tokens 3000
    .venv/bin/python bench/replay.py --code /tmp/before   # another checkout's pipeline (before/after)

For each concurrency C, against `replaybench sim` in a child process (it shares the machine's
cores: its CPU per request is printed too):
- `pipeline`: the code the nightly flow runs (`replaybench.replay`: plan, send, load — with its limits,
  retries, journal, cross-run answer sharing, response cache and DuckDB writes), streamed (the
  default, to measure TTFT) and plain JSON;
- `bare aiohttp`: an `aiohttp.ClientSession` (connector limit C) and a semaphore, reading an SSE
  stream line by line (json.loads per chunk) or a JSON body: the cheapest Python client there is
  (run as in a script of its own: the heap this benchmark imported is frozen out of the garbage
  collector);
- `bare httpx` (default transport, pool sized to C), only at C <= 32: httpcore's pool collapses
  beyond (10x the ideal wall time at C=64).
Figures: wall time, the ideal N x latency / C, their ratio, client CPU ms per request (the whole
replay; `send` is the sending step alone, without planning and loading in DuckDB), the fleet's
CPU ms per request, and the pipeline's CPU as a multiple of the bare loop's in the same run. A
short pipeline run first, unmeasured, loads what a process's first replay imports once.

Long answers (reasoning models stream 1-3k tokens): the fleet answers every request with
`--long-tokens` tokens, a token a delta, over `--long-latency-ms`; printed as CPU µs per token
streamed, for the pipeline and the bare aiohttp SSE loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --code PATH measures the pipeline of another checkout (its tasks/ and replaybench/)
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))
os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-bench-"))

from replaybench.config import prepare_environment  # noqa: E402

prepare_environment()

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402

from replaybench import runs  # noqa: E402
from replaybench.config import load_settings  # noqa: E402
from replaybench.ingest.load import ingest_paths  # noqa: E402

if (CODE / "replaybench" / "replay").is_dir():
    from replaybench.replay import load_replay, plan_replay, send_plan  # noqa: E402
else:  # --code of a checkout from before replaybench/replay/
    from tasks.replay import load_replay, plan_replay, send_plan  # noqa: E402
if (CODE / "replaybench" / "sample.py").is_file():
    from replaybench.sample import draw_sample  # noqa: E402
    from replaybench.sim.server import ProcessFleet  # noqa: E402
else:  # --code of a checkout from before the steps moved into replaybench/
    from replaybench.sim.server import Fleet as ProcessFleet  # noqa: E402
    from tasks.sample import draw_sample  # noqa: E402
from replaybench.warehouse import open_warehouse  # noqa: E402

DAY = "2026-11-27"
MODEL = "minimax-m3"


def messages_for(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Classify the support ticket."},
            {"role": "user", "content": f"Ticket {i}: I was charged twice this month."}]


def write_logs(path: Path, n: int) -> None:
    """n distinct small requests on one day, in the `openai` log format."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "request_id": f"bench-{i:06d}", "ts": f"{DAY}T12:00:00Z", "endpoint": "/bench",
                "model_id": "openai/gpt-5-mini", "prompt_version": "bench@v1",
                "request": {"model": "gpt-5-mini", "max_tokens": 64, "messages": messages_for(i)},
                "response": {"choices": [{"message": {"role": "assistant", "content": "billing"}}],
                             "usage": {"prompt_tokens": 20, "completion_tokens": 1}},
                "status": "ok"}) + "\n")


def settings_for(folder: Path, base_url: str, concurrency: int, stream: bool, n: int):
    config = {
        "timezone": "UTC", "warehouse": str(folder / "bench.duckdb"),
        "reports_dir": str(folder / "reports"), "prices": str(ROOT / "data" / "prices.yaml"),
        "suites": str(ROOT / "data" / "suites"), "sample": {"per_prompt_version": n, "seed": 1},
        "candidates": [{"name": MODEL, "base_url": base_url, "model": MODEL,
                        "max_concurrency": concurrency, "stream": stream,
                        "trusted": True}],  # the fleet on loopback: no redaction step needed
    }
    path = folder / f"bench-{concurrency}-{stream}.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path)


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Figures:
    """Wall and CPU seconds of one client's run (`send_cpu`: the pipeline's sending step)."""

    def __init__(self, wall: float, cpu: float, send_cpu: float | None = None):
        self.wall, self.cpu, self.send_cpu = wall, cpu, send_cpu


def pipeline(folder: Path, logs: Path, base_url: str, n: int, c: int, stream: bool) -> Figures:
    """`replaybench.replay.replay_candidate`'s three steps, timed: plan and load in the warehouse,
    send between them (use_cache on: the warehouse is new, so nothing is reused, but every request
    goes through the cross-run checks: journals read, a lock per question)."""
    settings = settings_for(folder, base_url, c, stream, n)
    settings.warehouse.unlink(missing_ok=True)
    ingest_paths(settings.warehouse, [logs])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date.fromisoformat(DAY).replace(day=28), "bench")
        draw_sample(wh, settings, run)
    candidate = settings.candidates[0]
    sending: list[float] = []

    async def go():
        plan = await asyncio.to_thread(plan_replay, settings, run, candidate, True)
        cpu = time.process_time()
        sent = await send_plan(plan)
        sending.append(time.process_time() - cpu)
        outcome = await asyncio.to_thread(load_replay, settings, run, candidate, plan, [sent])
        if outcome.ok != n:
            print(f"  warning: {outcome.failed} of {n} failed", file=sys.stderr)

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(go())
    return Figures(time.perf_counter() - wall, time.process_time() - cpu, sending[0])


def bare_aiohttp(base_url: str, n: int, c: int, stream: bool, tokens: list[int] | None = None
                 ) -> Figures:
    """A ClientSession with a connector limited to C, a semaphore, JSON or SSE read by hand."""
    url = f"{base_url}/chat/completions"

    async def go():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
            gate = asyncio.Semaphore(c)

            async def one(i: int) -> None:
                body = {"model": MODEL, "max_tokens": 64, "messages": messages_for(i)}
                if stream:
                    body.update(stream=True, stream_options={"include_usage": True})
                async with gate, session.post(url, json=body) as response:
                    response.raise_for_status()
                    if not stream:
                        data = await response.json()
                        assert data["choices"][0]["message"]["content"] is not None
                        return
                    text, usage = [], None
                    async for line in response.content:
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            break
                        chunk = json.loads(payload)
                        for choice in chunk.get("choices") or ():
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                text.append(piece)
                        usage = chunk.get("usage") or usage
                    assert text and usage, "an incomplete stream"
                    if tokens is not None:
                        tokens.append(usage["completion_tokens"])

            await asyncio.gather(*(one(i) for i in range(n)))

    return bare_run(go)


def bare_run(go) -> Figures:
    """Run a bare loop as in a script of its own: the heap this benchmark imported (Prefect,
    DuckDB, polars: ~200,000 objects) is frozen out of the garbage collector, whose full passes
    over it would cost the loop ~0.3 s each."""
    gc.collect()
    gc.freeze()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(go())
        return Figures(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        gc.unfreeze()


def bare_httpx(base_url: str, n: int, c: int) -> Figures:
    async def go():
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(c)

            async def one(i: int):
                async with gate:
                    r = await client.post(f"{base_url}/chat/completions", json={
                        "model": MODEL, "max_tokens": 64, "messages": messages_for(i)})
                    r.raise_for_status()
                    r.json()

            await asyncio.gather(*(one(i) for i in range(n)))

    return bare_run(go)


class LongFleet:
    """The fleet in a child process (this file, `--serve-long`) answering every chat completion
    with `tokens` tokens, a token a delta, over `latency_ms`."""

    def __init__(self, tokens: int, latency_ms: float):
        self.tokens, self.latency_ms = tokens, latency_ms
        self.base_url, self.pid = "", 0

    def __enter__(self) -> LongFleet:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--serve-long", str(self.tokens), "--latency-ms",
             str(self.latency_ms)], stdout=subprocess.PIPE, text=True, env=env)
        line = self._process.stdout.readline()
        if "listening on" not in line:
            self._process.kill()
            raise RuntimeError(f"the long-answer fleet did not start: {line!r}")
        self.base_url, self.pid = line.split()[-1], self._process.pid
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._process.stdout.close()


def serve_long(tokens: int, latency_ms: float) -> None:
    from aiohttp import web

    from replaybench.sim.app import make_app

    async def main() -> None:
        app = make_app(fixed_latency_ms=latency_ms, answer_tokens=tokens)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"long-answer fleet listening on http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def row(c: int | str, name: str, f: Figures, ideal: float, n: int, served: float,
        vs: str = "") -> str:
    send = f"{f.send_cpu * 1000 / n:>7.2f}" if f.send_cpu is not None else f"{'':>7}"
    return (f"{c:>4}  {name:<24} {f.wall:>7.2f} {ideal:>7.2f} {f.wall / ideal:>6.2f} "
            f"{f.cpu * 1000 / n:>7.2f} {send} {served * 1000 / n:>7.2f}  {vs}")


def overhead(args: argparse.Namespace, folder: Path) -> None:
    n, latency = args.n, args.latency_ms
    logs = folder / "bench.jsonl"
    write_logs(logs, n)
    with ProcessFleet(fixed_latency_ms=latency) as fleet:
        print(f"N={n} requests, fixed latency {latency:g} ms, fleet at {fleet.base_url}")
        print(f"{'C':>4}  {'client':<24} {'wall s':>7} {'ideal':>7} {'ratio':>6} "
              f"{'CPU ms/req':>10} {'send':>4} {'server':>7}  pipeline CPU / bare loop's")
        # once, unmeasured: what the first replay of a process imports and opens (pyarrow's
        # compute functions, DuckDB's extensions; ~0.5 s of CPU) is not a cost per request
        warm = folder / "warm.jsonl"
        write_logs(warm, 50)
        pipeline(folder, warm, fleet.base_url, 50, 16, True)
        for c in args.c or [16, 64, 128, 256]:
            ideal = n * latency / 1000 / c
            clients = [
                ("pipeline (streamed)", lambda c=c: pipeline(folder, logs, fleet.base_url, n, c,
                                                             True)),
                ("bare aiohttp SSE", lambda c=c: bare_aiohttp(fleet.base_url, n, c, True)),
                ("pipeline (plain JSON)", lambda c=c: pipeline(folder, logs, fleet.base_url, n, c,
                                                               False)),
                ("bare aiohttp JSON", lambda c=c: bare_aiohttp(fleet.base_url, n, c, False)),
            ]
            if c <= 32:
                clients.append(("bare httpx + semaphore", lambda c=c: bare_httpx(fleet.base_url,
                                                                                  n, c)))
            results = {}
            for name, client in clients:
                before = process_cpu(fleet.pid)
                results[name] = f = client()
                served = process_cpu(fleet.pid) - before
                vs = ""
                bare = {"bare aiohttp SSE": "pipeline (streamed)",
                        "bare aiohttp JSON": "pipeline (plain JSON)"}.get(name)
                if bare:
                    p = results[bare]
                    vs = (f"{bare}: {p.cpu / f.cpu:.2f}x whole, {p.send_cpu / f.cpu:.2f}x send")
                print(row(c, name, f, ideal, n, served, vs), flush=True)


def long_answers(args: argparse.Namespace, folder: Path) -> None:
    n, c, tokens, latency = args.long_n, args.long_c, args.long_tokens, args.long_latency_ms
    logs = folder / "long.jsonl"
    write_logs(logs, n)
    with LongFleet(tokens, latency) as fleet:
        ideal = n * latency / 1000 / c
        print(f"\nLong answers: N={n}, C={c}, {tokens} tokens an answer (a token a delta) over "
              f"{latency:g} ms, fleet at {fleet.base_url}")
        print(f"{'C':>4}  {'client':<24} {'wall s':>7} {'ideal':>7} {'ratio':>6} "
              f"{'µs/token':>8} {'send':>6} {'server':>7}  pipeline CPU / bare loop's")
        results = {}
        for name in ("pipeline (streamed)", "bare aiohttp SSE"):
            streamed: list[int] = []
            before = process_cpu(fleet.pid)
            if name == "bare aiohttp SSE":
                f = bare_aiohttp(fleet.base_url, n, c, True, streamed)
            else:
                f = pipeline(folder, logs, fleet.base_url, n, c, True)
                streamed = [tokens] * n
            served = process_cpu(fleet.pid) - before
            results[name] = f
            total = sum(streamed)
            send = f"{f.send_cpu * 1e6 / total:>6.2f}" if f.send_cpu is not None else f"{'':>6}"
            vs = ""
            if name == "bare aiohttp SSE":
                p = results["pipeline (streamed)"]
                vs = f"{p.cpu / f.cpu:.2f}x whole, {p.send_cpu / f.cpu:.2f}x send"
            print(f"{c:>4}  {name:<24} {f.wall:>7.2f} {ideal:>7.2f} {f.wall / ideal:>6.2f} "
                  f"{f.cpu * 1e6 / total:>8.2f} {send} {served * 1e6 / total:>7.2f}  {vs}",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="requests (default 2000)")
    ap.add_argument("-c", type=int, action="append",
                    help="concurrency, repeatable (default: 16, 64, 128, 256)")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="fixed server latency")
    ap.add_argument("--no-long", action="store_true", help="skip the long-answer section")
    ap.add_argument("--long-only", action="store_true", help="only the long-answer section")
    ap.add_argument("--long-tokens", type=int, default=2000, help="tokens a long answer")
    ap.add_argument("--long-n", type=int, default=96, help="long answers asked")
    ap.add_argument("--long-c", type=int, default=16, help="concurrency for long answers")
    ap.add_argument("--long-latency-ms", type=float, default=2000.0,
                    help="how long a long answer takes to stream")
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout whose pipeline runs")
    ap.add_argument("--serve-long", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_long is not None:
        serve_long(args.serve_long, args.latency_ms)
        return
    if CODE != ROOT:
        print(f"pipeline code from {CODE}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.long_only:
            overhead(args, Path(tmp))
        if not args.no_long:
            long_answers(args, Path(tmp))


if __name__ == "__main__":
    main()
