"""Ingest speed and memory: `replaybench ingest` of generated log files, each next to DuckDB's own
`read_json` of the same file into a table (the reference). Prints figures; asserts nothing.

    .venv/bin/python bench/ingest.py                       # 1,000,000 rows, and a quarter of that
    .venv/bin/python bench/ingest.py --rows 100000         # a quick run
    .venv/bin/python bench/ingest.py --formats openai,otel

Formats (each file holds `rows` LLM calls, realistic in shape and size):
    openai      JSONL, one request/response a line (~600 bytes): DuckDB's fast path (target ≤ 2×)
    openai.zst  the same lines zstd-compressed, several frames (as an appending writer leaves
                them): the fast path too (target ≤ 2×)
    otel        OTLP/JSON trace exports, one export a line with 10 traces of an HTTP server span
                and a GenAI client span (an SDK batch): the record path (target ≤ 3×)
    langfuse    Langfuse observations (GENERATIONs) of the public API, one a line: its SQL reader
                (target ≤ 3×)
    litellm     LiteLLM StandardLoggingPayloads, one a line (~1.6 kB: a whole OpenAI response, the
                proxy's metadata): its SQL reader (target ≤ 3×)

Each measurement runs in a child process of its own, so its peak memory (max RSS) is its own, and
the seconds run from the file named to the warehouse closed. Running a quarter-size file too
shows whether memory grows with the file.
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
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]

TICKETS = ["I was charged twice for order {n}", "My parcel {n} has not arrived yet",
           "How do I reset my password? Account {n}", "Cancel my subscription {n} please",
           "The app crashes when I open invoice {n}"]
LABELS = ["billing", "shipping", "account", "cancellation", "technical"]
SYSTEM = "Classify the ticket: billing, technical, account, shipping or cancellation."
T0 = 1_795_000_000  # 2026-11-18, epoch seconds
SPANS_PER_EXPORT = 10  # otel: GenAI spans (traces) per exported line
FRAME_BYTES = 4 * 2**20  # openai.zst: uncompressed bytes per zstd frame


def _call(i: int, rng: random.Random) -> dict:
    """The facts of one logged call, shared by every format's generator."""
    k = rng.randrange(len(TICKETS))
    start = T0 + i * 0.05 + rng.random() / 100
    latency = rng.randrange(300, 2000) / 1000
    return {"i": i, "start": start, "end": start + latency, "ttft": rng.randrange(100, 300) / 1000,
            "user": TICKETS[k].format(n=rng.randrange(10**7)), "label": LABELS[k],
            "prompt_tokens": rng.randrange(60, 90), "pv": f"triage@v{3 + i % 2}"}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def openai_lines(rows: int, rng: random.Random):
    for i in range(rows):
        c = _call(i, rng)
        yield json.dumps({
            "request_id": f"req_{i:010d}", "ts": _iso(c["start"]), "endpoint": "/support/triage",
            "model_id": "openai/gpt-5-mini", "prompt_version": c["pv"],
            "request": {"model": "gpt-5-mini", "temperature": 0, "max_tokens": 16, "messages": [
                {"role": "system", "content": SYSTEM}, {"role": "user", "content": c["user"]}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": c["label"]},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": c["prompt_tokens"], "completion_tokens": 2,
                                   "prompt_tokens_details": {"cached_tokens": 64},
                                   "completion_tokens_details": {"reasoning_tokens": 0}}},
            "latency_ms": round((c["end"] - c["start"]) * 1000), "ttft_ms": round(c["ttft"] * 1000),
            "cost_usd": 0.00002, "status": "ok", "metadata": {"tenant": "acme"}})


def _attr(key: str, value) -> dict:
    kind = ("boolValue" if isinstance(value, bool) else "intValue" if isinstance(value, int)
            else "doubleValue" if isinstance(value, float) else "stringValue")
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def otel_lines(rows: int, rng: random.Random):
    """OTLP/JSON as the Python SDK's exporter writes it (gen_ai semconv 1.37, openai-v2)."""
    for first in range(0, rows, SPANS_PER_EXPORT):
        spans = []
        for i in range(first, min(first + SPANS_PER_EXPORT, rows)):
            c = _call(i, rng)
            trace = f"{i:032x}"
            ns = int(c["start"] * 1e9)
            spans.append({"traceId": trace, "spanId": f"{2 * i:016x}", "name": "POST /triage", "kind": 2,
                          "startTimeUnixNano": str(ns - 5_000_000),
                          "endTimeUnixNano": str(int(c["end"] * 1e9) + 5_000_000),
                          "attributes": [_attr("http.request.method", "POST"), _attr("http.route", "/triage"),
                                         _attr("http.response.status_code", 200)], "status": {}})
            spans.append({
                "traceId": trace, "spanId": f"{2 * i + 1:016x}", "parentSpanId": f"{2 * i:016x}",
                "name": "chat gpt-5-mini", "kind": 3, "startTimeUnixNano": str(ns),
                "endTimeUnixNano": str(int(c["end"] * 1e9)),
                "attributes": [
                    _attr("gen_ai.operation.name", "chat"), _attr("gen_ai.provider.name", "openai"),
                    _attr("gen_ai.request.model", "gpt-5-mini"), _attr("gen_ai.request.temperature", 0.0),
                    _attr("gen_ai.request.max_tokens", 16), _attr("gen_ai.response.id", f"chatcmpl-{i:010d}"),
                    _attr("gen_ai.response.model", "gpt-5-mini-2026-08-07"),
                    {"key": "gen_ai.response.finish_reasons",
                     "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
                    _attr("gen_ai.usage.input_tokens", c["prompt_tokens"]),
                    _attr("gen_ai.usage.output_tokens", 2),
                    _attr("gen_ai.usage.cache_read.input_tokens", 64),
                    _attr("gen_ai.system_instructions",
                          json.dumps([{"type": "text", "content": SYSTEM}])),
                    _attr("gen_ai.input.messages", json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": c["user"]}]}])),
                    _attr("gen_ai.output.messages", json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": c["label"]}],
                          "finish_reason": "stop"}])),
                    _attr("prompt_version", c["pv"])],
                "status": {"code": 1}})
        yield json.dumps({"resourceSpans": [{
            "resource": {"attributes": [_attr("service.name", "support-bot"),
                                        _attr("deployment.environment", "prod")]},
            "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"},
                            "spans": spans}]}]})


def langfuse_lines(rows: int, rng: random.Random):
    """GENERATION observations as the public API (and blob-storage export) gives them."""
    for i in range(rows):
        c = _call(i, rng)
        yield json.dumps({
            "id": f"gen-{i:010d}", "traceId": f"trace-{i:010d}", "type": "GENERATION", "name": "triage-llm",
            "startTime": _iso(c["start"]), "endTime": _iso(c["end"]),
            "completionStartTime": _iso(c["start"] + c["ttft"]), "model": "gpt-5-mini",
            "modelId": "clx0model01", "modelParameters": {"temperature": 0, "max_tokens": "16"},
            "input": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": c["user"]}],
            "output": {"role": "assistant", "content": c["label"]},
            "usageDetails": {"input": c["prompt_tokens"] - 32, "input_cached_tokens": 32, "output": 2,
                             "total": c["prompt_tokens"] + 2},
            "costDetails": {"input": 1.2e-05, "output": 8e-06, "total": 2e-05},
            "level": "DEFAULT", "statusMessage": None, "version": None, "parentObservationId": None,
            "promptId": "prm-11", "promptName": "triage", "promptVersion": 3 + i % 2,
            "metadata": {"tenant": "acme"}, "environment": "production"})


def litellm_lines(rows: int, rng: random.Random):
    """LiteLLM's StandardLoggingPayload, as its custom loggers and bucket callbacks write it."""
    for i in range(rows):
        c = _call(i, rng)
        yield json.dumps({
            "id": f"chatcmpl-call-{i:010d}", "trace_id": f"{i:032x}", "call_type": "acompletion",
            "stream": False, "response_cost": 0.00002, "status": "success",
            "total_tokens": c["prompt_tokens"] + 2, "prompt_tokens": c["prompt_tokens"],
            "completion_tokens": 2,
            "startTime": c["start"], "endTime": c["end"], "completionStartTime": c["end"],
            "response_time": c["end"] - c["start"], "model": "gpt-5-mini", "model_id": "6f1b0c7e9a",
            "model_group": "triage-model", "custom_llm_provider": "openai",
            "api_base": "https://api.openai.com/v1",
            "metadata": {"user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf0981",
                         "user_api_key_alias": "support-bot", "user_api_key_team_id": "team-7",
                         "spend_logs_metadata": None,
                         "requester_metadata": {"prompt_version": c["pv"], "tenant": "acme"}},
            "cache_hit": None, "request_tags": ["support"], "end_user": "",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": c["user"]}],
            "response": {"id": f"chatcmpl-{i:010d}", "object": "chat.completion", "model": "gpt-5-mini",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": c["label"]}}],
                         "usage": {"prompt_tokens": c["prompt_tokens"], "completion_tokens": 2,
                                   "prompt_tokens_details": {"cached_tokens": 64},
                                   "completion_tokens_details": {"reasoning_tokens": 0}}},
            "error_str": None, "model_parameters": {"temperature": 0, "max_tokens": 16},
            "hidden_params": {"model_id": "6f1b0c7e9a", "api_base": "https://api.openai.com/v1"}})


def _zstd_frames(out: IO[bytes]):
    """A writer of zstd frames of FRAME_BYTES each: a file several appends left behind."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    buffer: list[bytes] = []
    size = 0

    def write(data: bytes | None) -> None:
        nonlocal size
        if data:
            buffer.append(data)
            size += len(data)
        if size >= FRAME_BYTES or (data is None and size):
            out.write(compressor.compress(b"".join(buffer)))
            buffer.clear()
            size = 0

    return write


# name: (suffix, format given to ingest, lines generator, target × read_json)
FORMATS: dict[str, tuple[str, str, Callable, float]] = {
    "openai": (".jsonl", "openai", openai_lines, 2.0),
    "openai.zst": (".jsonl.zst", "openai", openai_lines, 2.0),
    "otel": (".jsonl", "otel", otel_lines, 3.0),
    "langfuse": (".jsonl", "langfuse", langfuse_lines, 3.0),
    "litellm": (".jsonl", "litellm", litellm_lines, 3.0),
}


def write_logs(path: Path, name: str, rows: int, seed: int = 1) -> None:
    """`rows` LLM calls in the format `name`, one JSON line each (an export per line for otel)."""
    lines = FORMATS[name][2](rows, random.Random(seed))
    with path.open("wb") as fh:
        if path.name.endswith(".zst"):
            write = _zstd_frames(fh)
            for line in lines:
                write(line.encode() + b"\n")
            write(None)
        else:
            for line in lines:
                fh.write(line.encode() + b"\n")


# The first progress phase of a process asks whether it runs inside a Prefect flow, which imports
# Prefect (about 2 s): a cost of the process, not of the file, so it is paid before the clock starts.
REPLAYBENCH = """
import sys, time
from pathlib import Path
from replaybench.ingest import ingest_paths
import prefect.context
start = time.perf_counter()
result = ingest_paths(Path(sys.argv[1]), [Path(sys.argv[2])], sys.argv[3])
import resource
print(time.perf_counter() - start, result.ingested, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

READ_JSON = """
import sys, time, duckdb
start = time.perf_counter()
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE logs AS SELECT * FROM read_json(?)", [sys.argv[2]])
n = con.execute("SELECT count(*) FROM logs").fetchone()[0]
con.close()  # as ingest closes the warehouse: what is stored is on disk
import resource
print(time.perf_counter() - start, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(script: str, warehouse: Path, logs: Path, fmt: str = "") -> tuple[float, int, float]:
    """(seconds, rows, peak RSS in MB) of one run in a fresh child process."""
    warehouse.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", script, str(warehouse), str(logs), fmt], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=True)
    seconds, rows, peak_kb = out.stdout.split()[-3:]
    return float(seconds), int(rows), int(peak_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="LLM calls in the larger file")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, of: " + ", ".join(FORMATS))
    args = ap.parse_args()
    names = args.formats.split(",")
    if unknown := set(names) - set(FORMATS):
        ap.error(f"unknown formats: {', '.join(sorted(unknown))}")
    sizes = [args.rows // 4, args.rows]
    print(f"{os.cpu_count()} CPUs · duckdb {_version('duckdb')} · Python {sys.version.split()[0]} · "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows both readers)")
    print(f"{'format':<11} {'rows':>10} {'file MB':>8}  {'reader':<19} {'seconds':>8} {'rows/s':>10} "
          f"{'peak RSS MB':>11} {'× read_json':>11} {'target':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            suffix, fmt, _, target = FORMATS[name]
            for rows in sizes:
                logs = folder / f"{name.replace('.', '-')}-{rows}{suffix}"
                start = time.perf_counter()
                write_logs(logs, name, rows)
                size = logs.stat().st_size / 1e6
                print(f"  (generated {rows:,} {name} rows in {time.perf_counter() - start:.1f} s)",
                      flush=True)
                ref_s, ref_n, ref_mem = measure(READ_JSON, folder / "ref.duckdb", logs)
                our_s, our_n, our_mem = measure(REPLAYBENCH, folder / "rb.duckdb", logs, fmt)
                assert our_n == rows, (name, our_n, rows)
                lead = f"{name:<11} {rows:>10,} {size:>8.0f}  "
                print(f"{lead}{'duckdb read_json':<19} {ref_s:>8.2f} {rows / ref_s:>10,.0f} "
                      f"{ref_mem:>11.0f} {1:>11.2f}" + (f"   ({ref_n:,} lines)" if ref_n != rows else ""))
                ratio = our_s / ref_s
                print(f"{lead}{'replaybench ingest':<19} {our_s:>8.2f} {rows / our_s:>10,.0f} "
                      f"{our_mem:>11.0f} {ratio:>11.2f} {'≤ ' + format(target, '.0f') + '×':>7} "
                      f"{'met' if ratio <= target else 'MISSED'}", flush=True)
                logs.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
