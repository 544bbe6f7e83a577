"""The bundled demo production logs: 14 days of traffic behind five endpoints, `openai` format.

    python -m replaybench.sim.demo_logs [--out data/demo/production_logs.jsonl.gz] [--rows N]

Deterministic: a fixed seed, rows in timestamp order, gzip with mtime 0, so the bytes are identical
on every run. The production answers come from `Profile.respond` with the production model's
profile, exactly as the fleet would answer, so production quality per prompt_version is realistic
(triage@v3 drifts in format, triage@v4 does not). Three deliberately malformed lines sit at fixed
positions: a real export has some, and ingest must reject them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from replaybench.sim import workloads
from replaybench.sim.profiles import Profile, load_profiles

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "demo" / "production_logs.jsonl.gz"
DEFAULT_ROWS = 9000
DEFAULT_SEED = 20261114
FIRST_DAY = date(2026, 11, 14)
DAYS = 14
SHARES = {"triage": 0.40, "extract": 0.18, "summary": 0.16, "math": 0.14, "sql": 0.12}
WEEKEND_FACTOR = 0.75
# Requests per UTC hour: European working hours (06-17 UTC) carry most of the traffic.
HOUR_WEIGHTS = (2, 1, 1, 1, 2, 4, 8, 12, 14, 15, 15, 14, 13, 14, 15, 14, 12, 10, 8, 7, 6, 5, 4, 3)
TRIAGE_V4_SHARE = (0.20, 0.70)  # the v3 -> v4 rollout, first day to last day
ERROR_RATE = 0.01
PRODUCTION_ERRORS = (
    (0.45, "upstream timeout after 30s", 30000),
    (0.30, "429 Too Many Requests: rate limit reached for requests", 180),
    (0.15, "500 Internal Server Error: the server had an error while processing your request", 900),
    (0.10, "503 Service Unavailable: the engine is currently overloaded", 420),
)
MALFORMED_FRACTIONS = (1 / 9, 4 / 9, 7 / 9)  # of the row count: lines 1000, 4000, 7000 at 9,000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _request_id(ts: datetime, rng: random.Random) -> str:
    """`req_` + a 26-character ULID: 10 characters of milliseconds, 16 random."""
    ms = int(ts.timestamp() * 1000)
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    return "req_" + head + "".join(rng.choice(_CROCKFORD) for _ in range(16))


def _plan(n: int, rng: random.Random) -> list[tuple[datetime, str, str]]:
    """(timestamp, kind, prompt_version) for every row, in timestamp order."""
    days = [FIRST_DAY + timedelta(days=i) for i in range(DAYS)]
    weights = [WEEKEND_FACTOR if d.weekday() >= 5 else 1.0 for d in days]
    floor = max(1, n // 150)  # every prompt_version keeps a usable sample on every day
    slots: list[tuple[datetime, str, str]] = []
    for i, (day, weight) in enumerate(zip(days, weights, strict=True)):
        day_total = n * weight / sum(weights)
        v4 = TRIAGE_V4_SHARE[0] + (TRIAGE_V4_SHARE[1] - TRIAGE_V4_SHARE[0]) * i / (DAYS - 1)
        counts: dict[tuple[str, str], float] = {}
        for kind, share in SHARES.items():
            if kind == "triage":
                counts[(kind, "triage@v3")] = day_total * share * (1 - v4)
                counts[(kind, "triage@v4")] = day_total * share * v4
            else:
                counts[(kind, workloads.WORKLOADS[kind].prompt_versions[0])] = day_total * share
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for (kind, pv), count in counts.items():
            for _ in range(max(floor, round(count))):
                hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
                ts = midnight + timedelta(hours=hour, seconds=rng.randrange(3600))
                slots.append((ts, kind, pv))
    slots.sort()
    return slots


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(ts: datetime, kind: str, pv: str, rng: random.Random,
         profiles: dict[str, Profile]) -> dict[str, Any]:
    workload = workloads.WORKLOADS[kind]
    task = workloads.generate(kind, pv, rng)
    model = workload.production_model.split("/", 1)[1]
    metadata = {k: v for k, v in task.metadata.items() if k != "resolution"}
    row: dict[str, Any] = {
        "request_id": _request_id(ts, rng), "ts": _iso(ts), "endpoint": workload.endpoint,
        "model_id": workload.production_model, "prompt_version": pv,
        "request": {"model": model, "messages": task.messages,
                    "temperature": workload.temperature, "max_tokens": workload.max_tokens},
    }
    if rng.random() < ERROR_RATE:
        _, message, latency = rng.choices(PRODUCTION_ERRORS, [e[0] for e in PRODUCTION_ERRORS])[0]
        row |= {"response": None, "latency_ms": latency + rng.randrange(50), "ttft_ms": None,
                "cost_usd": 0.0, "status": "error", "error": message}
    else:
        c = profiles[model].respond(task.messages)
        row |= {
            "response": {
                "choices": [{"message": {"role": "assistant", "content": c.content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": c.prompt_tokens,
                          "completion_tokens": c.completion_tokens,
                          "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
                          "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens}},
            },
            "latency_ms": c.latency_ms, "ttft_ms": c.ttft_ms, "cost_usd": round(c.cost_usd, 8),
            "status": "ok"}
    if task.reference is not None:
        row["reference"] = task.reference
    row["metadata"] = metadata
    return row


def generate_rows(n: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED,
                  profiles: dict[str, Profile] | None = None) -> Iterator[dict[str, Any]]:
    """About `n` well-formed log rows over the 14 demo days, in timestamp order."""
    profiles = profiles or load_profiles()
    rng = random.Random(seed)
    for ts, kind, pv in _plan(n, rng):
        yield _row(ts, kind, pv, rng, profiles)


def malformed_lines(rows: list[dict[str, Any]], seed: int = DEFAULT_SEED) -> list[str]:
    """Three broken lines derived from `rows`: truncated JSON, no request_id, negative tokens."""
    rng = random.Random(seed ^ 0x5EED)
    ok = [r for r in rows if r["status"] == "ok"]
    truncated = json.dumps(ok[0], ensure_ascii=False, separators=(",", ":"))
    no_id = {k: v for k, v in ok[len(ok) // 2].items() if k != "request_id"}
    negative = json.loads(json.dumps(ok[-1]))
    negative["request_id"] = _request_id(datetime.fromisoformat(negative["ts"]), rng)
    negative["response"]["usage"]["completion_tokens"] = -12
    return [truncated[: len(truncated) // 2],
            json.dumps(no_id, ensure_ascii=False, separators=(",", ":")),
            json.dumps(negative, ensure_ascii=False, separators=(",", ":"))]


def write(out: str | Path = DEFAULT_OUT, n: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> int:
    """Write the demo log file (gzip when the name ends in .gz); returns the number of lines."""
    rows = list(generate_rows(n, seed))
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows]
    for fraction, bad in zip(MALFORMED_FRACTIONS, malformed_lines(rows, seed), strict=True):
        lines.insert(int(len(rows) * fraction), bad)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                  compresslevel=9, mtime=0) as gz:
            gz.write(data)
    else:
        out.write_bytes(data)
    return len(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m replaybench.sim.demo_logs",
                                     description="Write the deterministic demo production logs.")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="approximate row count")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    count = write(args.out, args.rows, args.seed)
    size = Path(args.out).stat().st_size
    print(f"wrote {count} lines ({count - 3} rows + 3 malformed) to {args.out} ({size:,} bytes)")


if __name__ == "__main__":
    main()
