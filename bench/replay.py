"""Replay overhead: the pipeline's own replay step against a fixed-latency fleet, next to a bare
httpx loop. Prints figures; asserts nothing.

    .venv/bin/python bench/replay.py                 # N=2000, C=16 and 64, latency 100 ms
    .venv/bin/python bench/replay.py -n 500 -c 32 --latency-ms 50

For each concurrency C it runs, in this process, against `replaybench sim` in a child process:
- `pipeline`: `tasks.replay.replay_candidate` — the code the nightly flow runs, with its limits,
  retries, journal, response cache lookups and DuckDB writes — streamed (as configured by default,
  to measure TTFT) and not streamed;
- `bare httpx`: an `httpx.AsyncClient` (default transport, pool sized to C) and a semaphore.
Figures: wall time, the ideal N × latency / C, their ratio, and client CPU ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-bench-"))

from replaybench.config import prepare_environment  # noqa: E402

prepare_environment()

import httpx  # noqa: E402
import yaml  # noqa: E402

from replaybench import runs  # noqa: E402
from replaybench.config import load_settings  # noqa: E402
from replaybench.ingest.load import ingest_paths  # noqa: E402
from replaybench.sim.server import Fleet  # noqa: E402
from replaybench.warehouse import open_warehouse  # noqa: E402
from tasks.replay import replay_candidate  # noqa: E402
from tasks.sample import draw_sample  # noqa: E402

DAY = "2026-11-27"


def write_logs(path: Path, n: int) -> None:
    """n distinct small requests on one day, in the `openai` log format."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "request_id": f"bench-{i:06d}", "ts": f"{DAY}T12:00:00Z", "endpoint": "/bench",
                "model_id": "openai/gpt-5-mini", "prompt_version": "bench@v1",
                "request": {"model": "gpt-5-mini", "max_tokens": 64, "messages": [
                    {"role": "system", "content": "Classify the support ticket."},
                    {"role": "user", "content": f"Ticket {i}: I was charged twice this month."}]},
                "response": {"choices": [{"message": {"role": "assistant", "content": "billing"}}],
                             "usage": {"prompt_tokens": 20, "completion_tokens": 1}},
                "status": "ok"}) + "\n")


def settings_for(folder: Path, base_url: str, concurrency: int, stream: bool, n: int):
    config = {
        "timezone": "UTC", "warehouse": str(folder / "bench.duckdb"),
        "reports_dir": str(folder / "reports"), "prices": str(ROOT / "data" / "prices.yaml"),
        "suites": str(ROOT / "data" / "suites"), "sample": {"per_prompt_version": n, "seed": 1},
        "candidates": [{"name": "minimax-m3", "base_url": base_url, "model": "minimax-m3",
                        "max_concurrency": concurrency, "stream": stream}],
    }
    path = folder / f"bench-{concurrency}-{stream}.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path)


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of running the coroutine factory `fn`."""
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(fn())
    return time.perf_counter() - wall, time.process_time() - cpu


def pipeline(folder: Path, logs: Path, base_url: str, n: int, c: int, stream: bool):
    settings = settings_for(folder, base_url, c, stream, n)
    settings.warehouse.unlink(missing_ok=True)
    ingest_paths(settings.warehouse, [logs])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date.fromisoformat(DAY).replace(day=28), "bench")
        draw_sample(wh, settings, run)
    outcome = {}

    async def go():
        # the default path (use_cache on): the warehouse is new, so nothing is reused, but every
        # request goes through the cross-run checks (journals read, a lock per question)
        outcome["o"] = await replay_candidate(settings, run, settings.candidates[0])

    wall, cpu = measure(go)
    o = outcome["o"]
    if o.ok != n:
        print(f"  warning: {o.failed} of {n} failed", file=sys.stderr)
    return wall, cpu


def bare(base_url: str, n: int, c: int):
    async def go():
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(c)

            async def one(i: int):
                async with gate:
                    r = await client.post(f"{base_url}/chat/completions", json={
                        "model": "minimax-m3", "max_tokens": 64, "messages": [
                            {"role": "system", "content": "Classify the support ticket."},
                            {"role": "user", "content": f"Ticket {i}: I was charged twice."}]})
                    r.raise_for_status()
                    r.json()

            await asyncio.gather(*(one(i) for i in range(n)))

    return measure(go)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="requests (default 2000)")
    ap.add_argument("-c", type=int, action="append", help="concurrency (default: 16 and 64)")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="fixed server latency")
    args = ap.parse_args()
    n, latency = args.n, args.latency_ms
    with tempfile.TemporaryDirectory() as tmp, Fleet(fixed_latency_ms=latency) as fleet:
        folder = Path(tmp)
        logs = folder / "bench.jsonl"
        write_logs(logs, n)
        print(f"N={n} requests, fixed latency {latency:g} ms, fleet at {fleet.base_url}")
        print(f"{'C':>4}  {'client':<22} {'wall s':>8} {'ideal s':>8} {'ratio':>6} "
              f"{'CPU ms/req':>10} {'server CPU ms/req':>18}")
        server = fleet.pid
        for c in args.c or [16, 64]:
            ideal = n * latency / 1000 / c
            clients = [("pipeline (streamed)", pipeline, (folder, logs, fleet.base_url, n, c, True)),
                       ("pipeline (plain JSON)", pipeline, (folder, logs, fleet.base_url, n, c, False)),
                       ("bare httpx + semaphore", bare, (fleet.base_url, n, c))]
            for name, client, client_args in clients:
                before = process_cpu(server)
                wall, cpu = client(*client_args)
                served = process_cpu(server) - before
                print(f"{c:>4}  {name:<22} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>6.2f} "
                      f"{cpu * 1000 / n:>10.2f} {served * 1000 / n:>18.2f}")


if __name__ == "__main__":
    main()
