"""The bundled demo production logs."""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter

from replaybench.sim import demo_logs, workloads

FIELDS = {"request_id", "ts", "endpoint", "model_id", "prompt_version", "request", "response",
          "latency_ms", "ttft_ms", "cost_usd", "status", "metadata"}


def test_generation_is_deterministic():
    first = list(itertools.islice(demo_logs.generate_rows(600, seed=3), 50))
    again = list(itertools.islice(demo_logs.generate_rows(600, seed=3), 50))
    other = list(itertools.islice(demo_logs.generate_rows(600, seed=4), 50))
    assert first == again
    assert first != other


def test_rows_have_the_documented_fields():
    rows = list(demo_logs.generate_rows(1200, seed=3))
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    for row in rows:
        assert set(row) >= FIELDS
        assert row["request_id"].startswith("req_") and len(row["request_id"]) == 30
        assert row["ts"].endswith("Z")
        assert set(row["request"]) == {"model", "messages", "temperature", "max_tokens"}
        assert isinstance(row["prompt_version"], str)
        assert "tenant" in row["metadata"]
        if row["status"] == "ok":
            usage = row["response"]["usage"]
            assert row["response"]["choices"][0]["finish_reason"] == "stop"
            assert usage["completion_tokens"] >= usage["completion_tokens_details"][
                "reasoning_tokens"]
            assert 0 <= usage["prompt_tokens_details"]["cached_tokens"] <= usage["prompt_tokens"]
            assert row["cost_usd"] > 0 and row["latency_ms"] >= row["ttft_ms"] > 0
        else:
            assert row["status"] == "error" and row["response"] is None and row["error"]
    assert len({r["prompt_version"] for r in rows}) >= 5
    assert len({r["endpoint"] for r in rows}) >= 3
    assert len({r["ts"][:10] for r in rows}) == 14
    assert "reference" not in {k for r in rows if r["prompt_version"] == "call-summary@v1"
                               for k in r}


def _read_committed():
    rows, malformed = [], []
    with gzip.open(demo_logs.DEFAULT_OUT, "rt", encoding="utf-8") as lines:
        for position, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                malformed.append((position, "truncated"))
                continue
            if "request_id" not in row:
                malformed.append((position, "no request_id"))
            elif row["response"] and row["response"]["usage"]["completion_tokens"] < 0:
                malformed.append((position, "negative tokens"))
            else:
                rows.append(row)
    return rows, malformed


def test_committed_file_is_big_realistic_and_has_three_bad_lines():
    rows, malformed = _read_committed()
    assert len(rows) >= 5000
    assert sorted(reason for _, reason in malformed) == [
        "negative tokens", "no request_id", "truncated"]
    per_day = Counter((r["ts"][:10], r["prompt_version"]) for r in rows)
    assert len({day for day, _ in per_day}) == 14
    assert min(per_day.values()) >= 50
    errors = sum(r["status"] == "error" for r in rows) / len(rows)
    assert 0.003 < errors < 0.03
    # Production quality follows the profiles: triage@v3 drifts in format, v4 does not.
    quality = {}
    for pv in ("triage@v3", "triage@v4"):
        ok = [r for r in rows if r["prompt_version"] == pv and r["status"] == "ok"]
        truth = [workloads.solve(r["request"]["messages"]) for r in ok]
        answers = [r["response"]["choices"][0]["message"]["content"] for r in ok]
        quality[pv] = sum(a == t for a, t in zip(answers, truth, strict=True)) / len(ok)
    assert quality["triage@v4"] > quality["triage@v3"] + 0.08


def test_committed_file_matches_the_generator(tmp_path):
    out = tmp_path / "logs.jsonl.gz"
    demo_logs.write(out)
    assert out.read_bytes() == demo_logs.DEFAULT_OUT.read_bytes()
