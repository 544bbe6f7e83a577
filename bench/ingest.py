"""Ingest speed and memory: `replaybench ingest` of a generated `openai` JSONL file, next to DuckDB's
own `read_json` of the same file into a table. Prints figures; asserts nothing.

    .venv/bin/python bench/ingest.py                # 1,000,000 rows, and a quarter of that
    .venv/bin/python bench/ingest.py --rows 200000

Each measurement runs in a child process of its own, so its peak memory (max RSS) is its own.
Running a quarter-size file too shows whether memory grows with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TICKETS = ["I was charged twice for order {n}", "My parcel {n} has not arrived yet",
           "How do I reset my password? Account {n}", "Cancel my subscription {n} please",
           "The app crashes when I open invoice {n}"]
LABELS = ["billing", "shipping", "account", "cancellation", "technical"]


def write_logs(path: Path, rows: int, seed: int = 1) -> None:
    """`rows` realistic triage requests in the `openai` log format (~600 bytes a line)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(rows):
            k = rng.randrange(len(TICKETS))
            fh.write(json.dumps({
                "request_id": f"req_{i:010d}", "ts": f"2026-11-{14 + i % 14:02d}T{i % 24:02d}:"
                f"{i % 60:02d}:{rng.randrange(60):02d}Z", "endpoint": "/support/triage",
                "model_id": "openai/gpt-5-mini", "prompt_version": f"triage@v{3 + i % 2}",
                "request": {"model": "gpt-5-mini", "temperature": 0, "max_tokens": 16, "messages": [
                    {"role": "system", "content": "Classify the ticket: billing, technical, account, "
                                                  "shipping or cancellation."},
                    {"role": "user", "content": TICKETS[k].format(n=rng.randrange(10**7))}]},
                "response": {"choices": [{"message": {"role": "assistant", "content": LABELS[k]},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": rng.randrange(60, 90), "completion_tokens": 2,
                                       "prompt_tokens_details": {"cached_tokens": 64},
                                       "completion_tokens_details": {"reasoning_tokens": 0}}},
                "latency_ms": rng.randrange(300, 2000), "ttft_ms": rng.randrange(100, 300),
                "cost_usd": 0.00002, "status": "ok", "metadata": {"tenant": "acme"}}) + "\n")


REPLAYBENCH = """
import sys, time
from pathlib import Path
from replaybench.ingest import ingest_paths
start = time.perf_counter()
result = ingest_paths(Path(sys.argv[1]), [Path(sys.argv[2])], "openai")
import resource
print(time.perf_counter() - start, result.ingested, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

READ_JSON = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
start = time.perf_counter()
con.execute("CREATE TABLE logs AS SELECT * FROM read_json(?)", [sys.argv[2]])
n = con.execute("SELECT count(*) FROM logs").fetchone()[0]
import resource
print(time.perf_counter() - start, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(script: str, warehouse: Path, logs: Path) -> tuple[float, int, float]:
    """(seconds, rows, peak RSS in MB) of one run in a fresh child process."""
    warehouse.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", script, str(warehouse), str(logs)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=True)
    seconds, rows, peak_kb = out.stdout.split()[-3:]
    return float(seconds), int(rows), int(peak_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    sizes = [args.rows // 4, args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'rows':>10} {'file MB':>8}  {'reader':<22} {'seconds':>8} {'rows/s':>10} "
              f"{'peak RSS MB':>11} {'× read_json':>11}")
        for rows in sizes:
            logs = folder / f"logs-{rows}.jsonl"
            start = time.perf_counter()
            write_logs(logs, rows)
            size = logs.stat().st_size / 1e6
            print(f"  (generated {rows:,} rows in {time.perf_counter() - start:.1f} s)")
            ref_s, ref_n, ref_mem = measure(READ_JSON, folder / "ref.duckdb", logs)
            our_s, our_n, our_mem = measure(REPLAYBENCH, folder / "rb.duckdb", logs)
            assert our_n == ref_n == rows, (our_n, ref_n, rows)
            print(f"{rows:>10,} {size:>8.0f}  {'duckdb read_json':<22} {ref_s:>8.2f} "
                  f"{rows / ref_s:>10,.0f} {ref_mem:>11.0f} {1:>11.2f}")
            print(f"{rows:>10,} {size:>8.0f}  {'replaybench ingest':<22} {our_s:>8.2f} "
                  f"{rows / our_s:>10,.0f} {our_mem:>11.0f} {our_s / ref_s:>11.2f}")
            logs.unlink()


if __name__ == "__main__":
    main()
