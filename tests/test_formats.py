"""The production log formats, each through the real ingest into a real DuckDB file: exact column
values per format, auto-detection, file variants (JSON array, Parquet, CSV, gzip), the prompt_version
fallbacks, partial OTLP exports, the bad input every format must reject with a reason, and the
registry itself (its order, and the docs that list it)."""

import copy
import csv
import functools
import gzip
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaybench.config import Ingest
from replaybench.ingest import formats as logformats
from replaybench.ingest import ingest_paths
from replaybench.ingest.formats import LOG_SCHEMA, IngestOptions, Reject, detect, join_records, parse
from replaybench.ingest.formats.otel import join_events
from replaybench.ingest.load import ingest_file
from replaybench.ingest.readers import Unreadable, read_records
from replaybench.warehouse import open_warehouse
from tests.test_ingest_fuzz import mutated

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "formats"
OTEL = FIXTURES / "otel_traces.jsonl"
PHOENIX = FIXTURES / "phoenix_spans.json"
LANGFUSE = FIXTURES / "langfuse_observations.json"
LITELLM = FIXTURES / "litellm_payloads.jsonl"
HELICONE = FIXTURES / "helicone_export.jsonl"
LANGFUSE_EXPORT = FIXTURES / "langfuse_export.jsonl"
LITELLM_SPEND = FIXTURES / "litellm_spend_logs.json"
OTEL_EVENTS = FIXTURES / "otel_events.jsonl"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "log-formats.md"

# fixture, format, records read, rows ingested (a Langfuse SPAN, OTel/Phoenix non-LLM spans and a
# LiteLLM embedding call are skipped)
CASES = [
    (OTEL, "otel", 2, 3),
    (PHOENIX, "openinference", 3, 2),
    (LANGFUSE, "langfuse", 4, 3),
    (LITELLM, "litellm", 3, 3),
    (HELICONE, "helicone", 3, 3),
    (LANGFUSE_EXPORT, "langfuse_export", 4, 3),
    (LITELLM_SPEND, "litellm_spend", 4, 3),
]


def load(tmp_path: Path, path: Path, fmt: str = "auto", **settings):
    result = ingest_paths(tmp_path / "w.duckdb", [path], fmt, Ingest(**settings) if settings else None)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        rows = {r["request_id"]: r for r in wh.frame("SELECT * FROM logs").to_dicts()}
        rejects = wh.frame("SELECT * FROM rejects ORDER BY position").to_dicts()
    return result, rows, rejects


def records(path: Path) -> list[dict]:
    return [r for _, r in read_records(path)]


def write_jsonl(path: Path, recs: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def tokens(r: dict) -> tuple:
    return r["input_tokens"], r["output_tokens"], r["cached_tokens"], r["reasoning_tokens"]


# --- each format, exact values ---------------------------------------------------------------

@pytest.mark.parametrize("path, fmt, read, ingested", CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("given", ["named", "auto"])
def test_each_fixture_ingests_named_or_detected(tmp_path, path, fmt, read, ingested, given):
    result, rows, _ = load(tmp_path, path, fmt if given == "named" else "auto")
    assert (result.read, result.ingested, result.rejected) == (read, ingested, 0)
    assert {r["source_format"] for r in rows.values()} == {fmt}


def test_otel_genai_spans_current_and_deprecated_conventions(tmp_path):
    _, rows, _ = load(tmp_path, OTEL, "otel")
    r = rows["chatcmpl-CX1a2b3c4d"]  # gen_ai.response.id
    assert r["ts"].isoformat() == "2026-11-20T14:03:11+00:00" and r["latency_ms"] == 812.0
    assert (r["model_id"], r["prompt_version"], r["status"]) == ("gpt-5-mini", "triage@v4", "ok")
    assert tokens(r) == (412, 40, 256, 37)
    assert json.loads(r["messages"]) == [{"role": "system", "content": "Classify the ticket."},
                                         {"role": "user", "content": "I was charged twice"}]
    assert r["output_text"] == "billing"
    assert json.loads(r["params"]) == {"temperature": 0.0, "max_tokens": 512}
    meta = json.loads(r["metadata"])
    assert meta["provider"] == "openai" and meta["service_name"] == "support-bot"

    old = rows["0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331"]  # no response id: traceId:spanId
    assert old["status"] == "error" and old["error"] == "Error code: 429 - rate limit reached"
    assert tokens(old) == (30, 0, None, None)  # gen_ai.usage.prompt_tokens / completion_tokens
    assert [m["role"] for m in json.loads(old["messages"])] == ["system", "user"]  # gen_ai.prompt.N.*
    assert old["prompt_version"].startswith("sys:")

    events = rows["4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7"]  # gen_ai.user.message / choice
    assert json.loads(events["messages"]) == [{"role": "user", "content": "Is 7 prime?"}]
    assert events["output_text"] == "Yes" and events["latency_ms"] == 640.0


def test_openinference_phoenix_spans(tmp_path):
    _, rows, _ = load(tmp_path, PHOENIX, "openinference")
    r = rows["6a2c0f1d9e8b7a6c5d4e3f2a1b0c9d8e:1a2b3c4d5e6f7a8b"]
    assert r["ts"].isoformat() == "2026-11-20T14:05:00.250000+00:00" and r["latency_ms"] == 1230.0
    assert (r["model_id"], r["prompt_version"], r["status"]) == ("gpt-4o-2024-08-06", "router@v7", "ok")
    assert tokens(r) == (1200, 96, 1024, 64)
    assert json.loads(r["messages"])[1] == {"role": "user", "content": "My invoice is wrong"}  # contents.M
    assert r["output_text"] == "billing" and r["cost_usd"] == pytest.approx(0.00231)
    assert json.loads(r["params"]) == {"temperature": 0.1, "max_tokens": 256}
    assert json.loads(r["metadata"])["tenant"] == "acme"
    failed = rows["7b3d1e2f0a9c8b7d6e5f4a3b2c1d0e9f:2b3c4d5e6f7a8b9c"]
    assert failed["status"] == "error" and "timed out" in failed["error"]
    assert failed["prompt_version"] == "summary@v2"  # from the span's metadata attribute


def test_openinference_in_an_otlp_export_is_detected_and_read():
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "ChatCompletion",
            "startTimeUnixNano": "1795701791000000000", "endTimeUnixNano": "1795701791500000000",
            "attributes": [
                {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                {"key": "llm.model_name", "value": {"stringValue": "gpt-4o"}},
                {"key": "llm.input_messages.0.message.role", "value": {"stringValue": "user"}},
                {"key": "llm.input_messages.0.message.content", "value": {"stringValue": "hi"}},
                {"key": "llm.token_count.prompt", "value": {"intValue": "5"}}],
            "status": {}}
    record = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
    assert detect(record) == "openinference"
    (row,) = parse(record)
    assert row["request_id"] == f"{'ab' * 16}:{'cd' * 8}" and row["input_tokens"] == 5
    assert row["latency_ms"] == 500.0


def test_langfuse_generations(tmp_path):
    _, rows, _ = load(tmp_path, LANGFUSE, "langfuse")
    assert "span-1" not in rows  # a SPAN observation is not a model call
    r = rows["gen-7f3a9c1e"]
    assert r["ts"].isoformat() == "2026-11-20T14:10:00+00:00"
    assert (r["latency_ms"], r["ttft_ms"]) == (1250.0, 300.0)  # endTime, completionStartTime
    # usageDetails.input excludes input_cached_tokens: OTel input = 150 + 256; output = 12 + 20
    assert tokens(r) == (406, 32, 256, 20)
    assert (r["prompt_version"], r["model_id"], r["output_text"]) == ("triage@v4", "gpt-4o-mini", "billing")
    assert r["cost_usd"] == pytest.approx(0.0000609)
    assert json.loads(r["params"]) == {"temperature": 0, "max_tokens": 512}
    failed = rows["gen-8d4b0e2f"]
    assert (failed["status"], failed["error"]) == ("error", "overloaded_error: Overloaded")
    assert json.loads(failed["messages"]) == [{"role": "user",
                                               "content": "Summarise: the parcel arrived broken."}]
    assert tokens(rows["gen-9e5c1f30"]) == (9, 2, None, None)  # the older usage object


def test_litellm_standard_logging_payload(tmp_path):
    _, rows, _ = load(tmp_path, LITELLM, "litellm")
    r = rows["chatcmpl-call-0001"]
    assert r["ts"].isoformat() == "2026-11-20T14:20:00+00:00"
    assert r["latency_ms"] == pytest.approx(812.0) and r["ttft_ms"] == pytest.approx(230.0)
    assert tokens(r) == (412, 40, 256, 37)
    assert (r["model_id"], r["prompt_version"], r["output_text"]) == ("gpt-5-mini", "triage@v4", "billing")
    assert r["cost_usd"] == pytest.approx(0.00042) and r["status"] == "ok"
    assert json.loads(r["params"]) == {"temperature": 0, "max_tokens": 512}
    meta = json.loads(r["metadata"])
    assert meta["user_api_key_alias"] == "support-bot" and meta["model_group"] == "triage-model"
    assert "88dc28d0" not in r["metadata"] and "user_api_key_hash" not in meta  # never a hashed key
    failed = rows["chatcmpl-call-0002"]
    assert failed["status"] == "error" and failed["error"].startswith("litellm.RateLimitError")
    assert failed["ttft_ms"] is None and failed["output_text"] is None


def test_helicone_request_export(tmp_path):
    _, rows, _ = load(tmp_path, HELICONE, "helicone")
    r = rows["8c2f3a10-0001-4bd8-9e1a-5d6f7e8a9b01"]
    assert r["ts"].isoformat() == "2026-11-20T14:30:00+00:00"
    assert (r["latency_ms"], r["ttft_ms"]) == (812.0, 240.0)
    assert tokens(r) == (2048, 1, 1920, 0)
    assert (r["prompt_version"], r["output_text"], r["model_id"]) == ("math@v3", "4", "gpt-4o-mini")
    assert r["cost_usd"] == pytest.approx(0.0000288)
    anthropic = rows["8c2f3a10-0002-4bd8-9e1a-5d6f7e8a9b02"]
    assert tokens(anthropic) == (2012, 8, 2000, None)  # Anthropic input + cache reads
    assert json.loads(anthropic["messages"])[0] == {"role": "system", "content": "You write release notes."}
    assert anthropic["prompt_version"] == "release-notes@2" and anthropic["latency_ms"] == 2100.0
    limited = rows["8c2f3a10-0003-4bd8-9e1a-5d6f7e8a9b03"]
    assert (limited["status"], limited["error"]) == ("error", "Rate limit reached for gpt-4o")


def test_helicone_token_columns_without_a_response_body(tmp_path):
    rec = records(HELICONE)[0]
    del rec["response_body"]
    _, rows, _ = load(tmp_path, write_jsonl(tmp_path / "h.jsonl", [rec]), "helicone")
    (r,) = rows.values()
    assert tokens(r) == (2048, 1, 1920, None)  # prompt_tokens + prompt_cache_read_tokens


# --- file variants -------------------------------------------------------------------------

def _flat(rec: dict) -> dict:
    """A record as an export table row: nested values as JSON text, except the messages."""
    return {k: v if k == "messages" or not isinstance(v, dict | list) else json.dumps(v)
            for k, v in rec.items()}


def test_a_parquet_log_is_read_a_batch_at_a_time_not_the_whole_file(tmp_path):
    """Ingest holds a batch of a Parquet log, not the file: pyarrow's default (pre-buffering)
    read every row group at the first batch."""
    n = 20_000
    path = tmp_path / "logs.parquet"
    pq.write_table(pa.table({"request_id": [f"r{i}" for i in range(n)],
                             "output": [os.urandom(500).hex() for _ in range(n)]}),
                   path, row_group_size=500)
    before = pa.total_allocated_bytes()

    records = read_records(path)
    position, first = next(records)
    held = pa.total_allocated_bytes() - before

    assert held < path.stat().st_size / 4, (held, path.stat().st_size)
    assert (position, first["request_id"]) == (1, "r0") and 1 + sum(1 for _ in records) == n


def test_json_array_parquet_csv_and_gzip_give_the_same_rows(tmp_path):
    recs = records(LITELLM)
    variants = tmp_path / "variants"
    variants.mkdir()
    (variants / "a.json").write_text(json.dumps(recs))
    (variants / "b.json").write_text(json.dumps({"data": recs, "meta": {"page": 1}}))
    with gzip.open(variants / "c.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in recs)
    pq.write_table(pa.Table.from_pylist([_flat(r) for r in recs]), variants / "d.parquet")
    for name, opener in (("e.csv", open), ("f.csv.gz", gzip.open)):
        columns = sorted({k for r in recs for k in r})
        with opener(variants / name, "wt", newline="") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, dict | list) else v
                              for k, v in r.items()} for r in recs)

    def stored(path: Path, fmt: str) -> list[dict]:
        db = tmp_path / f"{path.name}-{fmt}.duckdb"
        result = ingest_paths(db, [path], fmt)
        assert (result.read, result.ingested, result.rejected) == (3, 3, 0), path.name
        with open_warehouse(db) as wh:
            return wh.frame("SELECT * EXCLUDE (source, ingested_at) FROM logs ORDER BY request_id").to_dicts()

    expected = stored(LITELLM, "litellm")
    for path in sorted(variants.iterdir()):
        assert stored(path, "auto") == expected, path.name


def test_csv_cells_become_values_and_positions_are_data_rows(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('id,n,x,obj,empty\n007,42,1.5,"{""a"": [1]}",\nabc,-3,1e5,"[1,2]",\n\n"bad",1\n')
    got = list(read_records(path))
    assert got[0] == (1, {"id": "007", "n": 42, "x": 1.5, "obj": {"a": [1]}})
    assert got[1] == (2, {"id": "abc", "n": -3, "x": "1e5", "obj": [1, 2]})
    assert got[2][0] == 3 and isinstance(got[2][1], Unreadable) and "cells" in got[2][1].reason


def test_an_invalid_utf8_csv_row_is_unreadable_and_the_next_is_read(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n\xff\xfe,3\n4,5\n")
    got = list(read_records(path))
    assert got[0] == (1, {"a": 1, "b": 2}) and got[2] == (3, {"a": 4, "b": 5})
    assert isinstance(got[1][1], Unreadable) and "invalid UTF-8" in got[1][1].reason


# --- prompt_version: format field, then metadata[prompt_version_key], then derived ---------

def test_prompt_version_fallbacks(tmp_path):
    gen = records(LANGFUSE)[0]
    field = gen | {"id": "g1"}  # promptName@vN
    by_key = gen | {"id": "g2", "promptName": None, "promptVersion": None,
                    "metadata": {"pv": "triage@v9", "prompt_version": "ignored"}}
    derived = gen | {"id": "g3", "promptName": None, "promptVersion": None, "metadata": {}}
    _, rows, _ = load(tmp_path, write_jsonl(tmp_path / "l.jsonl", [field, by_key, derived]),
                      "langfuse", prompt_version_key="pv")
    assert rows["g1"]["prompt_version"] == "triage@v4"
    assert rows["g2"]["prompt_version"] == "triage@v9"
    assert rows["g3"]["prompt_version"].startswith("sys:")
    assert json.loads(rows["g3"]["metadata"])["prompt_version_derived"] is True
    assert "prompt_version_derived" not in json.loads(rows["g1"]["metadata"])


def test_otel_prompt_version_from_a_resource_attribute(tmp_path):
    (export, _) = records(OTEL)
    rs = export["resourceSpans"][0]
    span = rs["scopeSpans"][0]["spans"][1]
    span["attributes"] = [a for a in span["attributes"] if a["key"] != "prompt_version"]
    rs["resource"]["attributes"].append({"key": "pv", "value": {"stringValue": "triage@v5"}})
    _, rows, _ = load(tmp_path, write_jsonl(tmp_path / "o.jsonl", [export]), "otel", prompt_version_key="pv")
    assert rows["chatcmpl-CX1a2b3c4d"]["prompt_version"] == "triage@v5"


# --- partial OTLP exports and bad input ----------------------------------------------------

def test_an_otlp_export_keeps_its_good_span_and_rejects_the_broken_one(tmp_path):
    (export, _) = records(OTEL)
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    broken = copy.deepcopy(spans[1])
    broken["spanId"] = "eee19b7ec3c1b176"
    broken["attributes"] = [a for a in broken["attributes"]
                            if a["key"] not in ("gen_ai.response.id", "gen_ai.usage.output_tokens")]
    broken["attributes"].append({"key": "gen_ai.usage.output_tokens", "value": {"intValue": "-4"}})
    spans.append(broken)
    result, rows, rejects = load(tmp_path, write_jsonl(tmp_path / "o.jsonl", [export]), "auto")
    assert (result.read, result.ingested, result.rejected) == (1, 1, 1)
    assert list(rows) == ["chatcmpl-CX1a2b3c4d"]
    assert rejects[0]["position"] == 1
    assert "gen_ai.usage.output_tokens is negative" in rejects[0]["reason"]
    assert "eee19b7ec3c1b176" in rejects[0]["reason"]


def _first_record(path, **over):
    """The fixture's first record with fields changed by `over` (a value of ... drops the field)."""
    rec = records(path)[0] | over
    return {k: v for k, v in rec.items() if v is not ...}


_litellm = functools.partial(_first_record, LITELLM)
_langfuse = functools.partial(_first_record, LANGFUSE)
_helicone = functools.partial(_first_record, HELICONE)
_export = functools.partial(_first_record, LANGFUSE_EXPORT)
_spend = functools.partial(_first_record, LITELLM_SPEND)


def _otel_span(span=None, drop=(), add=()):
    """The fixture's first OTLP export, its GenAI span changed."""
    (export, _) = records(OTEL)
    target = export["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    target.update(span or {})
    target["attributes"] = [a for a in target["attributes"] if a["key"] not in drop] + list(add)
    return export


BAD = [
    ("litellm", _litellm, {"id": ...}, "missing id"),
    ("litellm", _litellm, {"messages": []}, "missing messages"),
    ("litellm", _litellm, {"startTime": "yesterday-ish"}, "unparsable timestamp"),
    ("litellm", _litellm, {"prompt_tokens": -5}, "prompt_tokens is negative"),
    ("litellm", _litellm, {"endTime": 1.0}, "endTime is before the start time"),
    ("langfuse", _langfuse, {"id": ""}, "missing id"),
    ("langfuse", _langfuse, {"input": None}, "missing input messages"),
    ("langfuse", _langfuse, {"startTime": "20/11/2026"}, "unparsable timestamp"),
    ("langfuse", _langfuse, {"usageDetails": {"input": "many"}}, "usageDetails.input is not a number"),
    ("helicone", _helicone, {"request_id": None}, "missing request_id"),
    ("helicone", _helicone, {"request_body": {"model": "gpt-4o"}}, "missing request_body.messages"),
    ("helicone", _helicone, {"delay_ms": "slow"}, "delay_ms is not a number"),
    ("helicone", _helicone, {"time_to_first_token": -1}, "time_to_first_token is negative"),
    ("otel", None, {"drop": ["gen_ai.input.messages", "gen_ai.system_instructions"]}, "missing messages"),
    ("langfuse_export", _export, {"id": ""}, "missing id"),
    ("langfuse_export", _export, {"input": ""}, "missing input messages"),
    ("langfuse_export", _export, {"start_time": "20/11/2026"}, "unparsable timestamp"),
    ("langfuse_export", _export, {"usage_details": {"input": "many"}}, "usage_details.input is not a number"),
    ("litellm_spend", _spend, {"request_id": ""}, "missing request_id"),
    ("litellm_spend", _spend, {"startTime": "yesterday-ish"}, "unparsable timestamp"),
    ("litellm_spend", _spend, {"spend": "lots"}, "spend is not a number"),
    ("litellm_spend", _spend, {"endTime": "2026-11-20T14:19:00Z"}, "endTime is before the start time"),
    ("litellm_spend", _spend, {"proxy_server_request": {}}, "store_prompts_in_spend_logs"),
    ("otel", None, {"span": {"startTimeUnixNano": "soon"}}, "unparsable timestamp"),
    ("otel", None, {"drop": ["gen_ai.response.id"], "span": {"traceId": ""}}, "missing request id"),
    ("otel", None, {"drop": ["gen_ai.usage.input_tokens"],
                    "add": [{"key": "gen_ai.usage.input_tokens", "value": {"stringValue": "lots"}}]},
     "gen_ai.usage.input_tokens is not a number"),
]


@pytest.mark.parametrize("fmt, make, change, reason", BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_bad_records_are_rejected_with_a_reason_and_the_load_goes_on(tmp_path, fmt, make, change, reason):
    if fmt == "otel":
        good = [_otel_span(), records(OTEL)[1]]
        bad = _otel_span(**change)
    else:
        id_field = "request_id" if fmt in ("helicone", "litellm_spend") else "id"
        good = [make(), make(**{id_field: "another-id"})]
        bad = make(**change)
    result, rows, rejects = load(tmp_path, write_jsonl(tmp_path / "x.jsonl", [good[0], bad, good[1]]), fmt)
    assert result.rejected == 1 and result.ingested >= 2
    assert rejects[0]["position"] == 2 and reason in rejects[0]["reason"], rejects[0]["reason"]


@pytest.mark.parametrize("path", [c[0] for c in CASES], ids=[c[1] for c in CASES])
def test_a_field_over_max_field_chars_rejects(tmp_path, path):
    result, rows, rejects = load(tmp_path, path, "auto", max_field_chars=60)
    assert result.rejected >= 1 and all("over the size limit" in r["reason"] for r in rejects)


@pytest.mark.parametrize("record, looks_like", [
    ({"resourceLogs": []}, "OTLP logs export"),
    ({"resourceMetrics": []}, "OTLP metrics export"),
    ({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}, "model response without its request"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, "chat request"),
    ({"foo": 1, "bar": 2}, "keys: foo, bar"),
    ({"id": "sc-1", "trace_id": "t-1", "observation_id": "gen-1", "name": "accuracy", "value": 1,
      "data_type": "NUMERIC", "source": "EVAL"}, "Langfuse score"),
])
def test_an_unrecognised_record_says_what_it_looks_like(tmp_path, record, looks_like):
    good = records(LITELLM)[0]
    result, _, rejects = load(tmp_path, write_jsonl(tmp_path / "x.jsonl", [good, record]), "auto")
    assert (result.ingested, result.rejected) == (1, 1)
    assert rejects[0]["reason"].startswith("unrecognised record: ") and looks_like in rejects[0]["reason"]


def test_detection_rule_on_each_fixture():
    for path, fmt, *_ in CASES:
        assert {detect(r) for r in records(path)} == {fmt}, path.name
    with pytest.raises(Reject, match="unrecognised record"):
        detect({"hello": "world"})


def test_options_come_from_the_ingest_settings():
    opts = IngestOptions.from_settings(Ingest(prompt_version_key="pv", max_field_chars=10))
    assert opts == IngestOptions(prompt_version_key="pv", max_field_chars=10)
    assert set(logformats.FORMATS) == {"openai", "otel", "openinference", "langfuse", "litellm", "helicone",
                                       "langfuse_export", "litellm_spend"}


def test_a_phoenix_spans_dataframe_row_is_read(tmp_path):
    row = {"context.span_id": "3c4d5e6f7a8b9c0d", "context.trace_id": "8c4e2f3a1b0d9c8e7f6a5b4c3d2e1f0a",
           "name": "ChatCompletion", "span_kind": "LLM", "status_code": "OK",
           "start_time": "2026-11-20T14:07:00+00:00", "end_time": "2026-11-20T14:07:00.900000+00:00",
           "attributes.llm.model_name": "gpt-4o-mini",
           "attributes.llm.input_messages": json.dumps([{"message.role": "user", "message.content": "hi"}]),
           "attributes.llm.output_messages": json.dumps([{"message.role": "assistant",
                                                          "message.content": "hello"}]),
           "attributes.llm.token_count.prompt": 7, "attributes.llm.token_count.completion": 2}
    path = tmp_path / "spans.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    result, rows, _ = load(tmp_path, path, "auto")
    (r,) = rows.values()
    assert (result.ingested, r["source_format"], r["output_text"]) == (1, "openinference", "hello")
    assert json.loads(r["messages"]) == [{"role": "user", "content": "hi"}]
    assert (r["input_tokens"], r["output_tokens"], r["latency_ms"]) == (7, 2, 900.0)


# --- exports of the wrong shape: a reject with a reason, never a crash ----------------------

def _otel_export(change) -> dict:
    """The fixture's first OTLP export, changed in place by `change(export)`."""
    (export, _) = records(OTEL)
    change(export)
    return export


def _set(path: str, value):
    """A change that sets the field at `path` (dots and list indexes) to `value`."""
    def change(export):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target = export
        for p in parents:
            target = target[p]
        target[last] = value
    return change


SPAN = "resourceSpans.0.scopeSpans.0.spans.1"
BROKEN_EXPORTS = [
    (_set("resourceSpans.0.resource", "oops"), "resourceSpans[0].resource is not an object"),
    (_set(f"{SPAN}.startTimeUnixNano", "1" * 30), "unparsable timestamp (startTimeUnixNano)"),
    (_set(f"{SPAN}.endTimeUnixNano", "9" * 30), "unparsable timestamp (endTimeUnixNano)"),
    (_set(f"{SPAN}.startTimeUnixNano", 1e999), "unparsable timestamp (startTimeUnixNano)"),
    (_set("resourceSpans.0.scopeSpans", "oops"), "resourceSpans[0].scopeSpans is not a list"),
    (_set("resourceSpans.0.scopeSpans.0.spans", {"a": 1}), "is not an object with a list of spans"),
    (_set("resourceSpans.0.scopeSpans.0.spans.0", "oops"), "spans[0] is not an object"),
    (_set("resourceSpans", "oops"), "resourceSpans is not a list"),
]


@pytest.mark.parametrize("change, reason", BROKEN_EXPORTS, ids=[r for _, r in BROKEN_EXPORTS])
@pytest.mark.parametrize("fmt", ["auto", "otel"])
def test_a_broken_otlp_export_is_a_reject_with_a_reason(tmp_path, change, reason, fmt):
    (_, good) = records(OTEL)
    path = write_jsonl(tmp_path / "o.jsonl", [good, _otel_export(change), good | {"traceId": "t2"}])
    result, _, rejects = load(tmp_path, path, fmt)
    assert result.read == 3 and result.ingested >= 2 and result.rejected >= 1
    assert {r["position"] for r in rejects} == {2}
    assert any(reason in r["reason"] for r in rejects), rejects


@pytest.mark.parametrize("span_change", [
    {"attributes": [{"key": ["not", "text"], "value": {"stringValue": "x"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "m"}}]},
    {"events": 5},
    {"attributes": [{"key": "gen_ai.input.messages", "value": {"arrayValue": "oops"}},
                    {"key": "gen_ai.request.model", "value": {"kvlistValue": 7}}]},
    {"attributes": [{"key": "gen_ai.output.messages", "value": {"stringValue": '["text"]'}},
                    {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": 5}]}])}}]},
])
def test_odd_otlp_attributes_do_not_crash(tmp_path, span_change):
    export = _otel_span(span_change)
    result, _, rejects = load(tmp_path, write_jsonl(tmp_path / "o.jsonl", [export]), "otel")
    assert result.read == 1 and result.ingested + result.rejected == 1
    assert all(r["reason"] and not r["reason"].startswith("parser error") for r in rejects)


def test_a_json_file_whose_choices_hold_a_string_is_a_reject(tmp_path):
    good = {"request_id": "a", "ts": "2026-11-20T14:03:11Z",
            "request": {"messages": [{"role": "user", "content": "hi"}]},
            "response": {"choices": [{"message": {"content": "hello"}}]}}
    bad = good | {"request_id": "b", "response": {"choices": ["str"]}}
    path = tmp_path / "a.json"
    path.write_text(json.dumps([good, bad]))
    result, rows, rejects = load(tmp_path, path)
    assert (result.read, result.ingested, result.rejected) == (2, 1, 1)
    assert [(r["position"], r["reason"]) for r in rejects] == [(2, "response.choices[0] is not an object")]


@pytest.mark.parametrize("fmt, make, change", [
    ("litellm", _litellm, {"response": {"choices": ["str"], "usage": "x"}}),
    ("litellm", _litellm, {"response": {"choices": [{"message": "x"}]}}),
    ("litellm", _litellm, {"prompt_tokens": 2**31, "completion_tokens": 1e999}),
    ("litellm", _litellm, {"metadata": {"k": "\ud800"}}),
    ("helicone", _helicone, {"response_body": {"usage": {"prompt_tokens_details": "x",
                                                         "prompt_tokens": 1}}}),
    ("helicone", _helicone, {"prompt_tokens": 2**31 - 1, "prompt_cache_read_tokens": 5}),
    ("langfuse", _langfuse, {"usageDetails": {"input": 2**31 - 1, "input_cached_tokens": 1}}),
    ("langfuse", _langfuse, {"output": {"choices": [5]}}),
    ("langfuse", _langfuse, {"startTime": 1e300}),
])
def test_odd_values_in_other_formats_are_stored_or_rejected_never_a_crash(tmp_path, fmt, make, change):
    path = tmp_path / "x.json"  # a JSON document: the record path, lone surrogates included
    path.write_text(json.dumps([make(**change)]))
    result, rows, rejects = load(tmp_path, path, fmt)
    assert result.read == 1 and result.ingested + result.rejected == 1
    assert all(r["reason"] and not r["reason"].startswith("parser error") for r in rejects)


# --- Langfuse blob-storage export ------------------------------------------------------------

def test_langfuse_blob_storage_export(tmp_path):
    _, rows, _ = load(tmp_path, LANGFUSE_EXPORT, "langfuse_export")
    assert "span-5a1c7e1f" not in rows  # a SPAN is not a model call
    r = rows["gen-5a1c7e20"]
    assert r["ts"].isoformat() == "2026-11-20T14:10:00+00:00"
    assert (r["latency_ms"], r["ttft_ms"]) == (1250.0, 300.0)  # end_time, completion_start_time
    # usage_details.input excludes input_cached_tokens: OTel input = 150 + 256; output = 12 + 20
    assert tokens(r) == (406, 32, 256, 20)
    assert (r["prompt_version"], r["model_id"], r["output_text"]) == ("triage@v4", "gpt-4o-mini", "billing")
    assert r["cost_usd"] == pytest.approx(6.09e-05)
    assert json.loads(r["messages"]) == [{"role": "system", "content": "Classify the ticket."},
                                         {"role": "user", "content": "Refund please"}]
    assert json.loads(r["params"]) == {"temperature": 0, "max_tokens": 512}
    meta = json.loads(r["metadata"])
    assert (meta["tenant"], meta["trace_name"], meta["tags"], meta["user_id"]) == \
        ("acme", "support-ticket", ["support"], "u-12")
    failed = rows["gen-6b2d8f31"]
    assert (failed["status"], failed["error"]) == ("error", "overloaded_error: Overloaded")
    assert (failed["prompt_version"], failed["output_text"], failed["ttft_ms"]) == ("summary@v2", None, None)
    assert json.loads(failed["messages"]) == [{"role": "user",
                                               "content": "Summarise: the parcel arrived broken."}]
    greeter = rows["gen-7c3e9042"]
    assert (greeter["prompt_version"], greeter["ttft_ms"]) == ("greeter@v2", 450.0)
    assert greeter["cost_usd"] == pytest.approx(3.3e-06)  # total_cost, without cost_details


def _langfuse_parquet(recs: list[dict], path: Path) -> Path:
    """The rows as Langfuse writes its Parquet export: timestamps, maps for usage, cost and metadata,
    lists for tags, and no per-unit price columns."""
    text, stamp, strings = pa.string(), pa.timestamp("us"), pa.list_(pa.string())
    types = {"start_time": stamp, "end_time": stamp, "completion_start_time": stamp, "created_at": stamp,
             "updated_at": stamp, "metadata": pa.map_(text, text), "tool_definitions": pa.map_(text, text),
             "usage_details": pa.map_(text, pa.uint64()), "cost_details": pa.map_(text, pa.float64()),
             "prompt_version": pa.uint16(), "total_cost": pa.float64(), "latency": pa.float64(),
             "time_to_first_token": pa.float64(), "tool_calls": strings, "tool_call_names": strings,
             "tags": strings, "bookmarked": pa.bool_(), "public": pa.bool_()}
    columns = [k for k in recs[0] if not k.endswith("_price")]

    def value(key: str, v):
        if v is not None and types.get(key) == stamp:
            return datetime.fromisoformat(v)
        return list(v.items()) if isinstance(v, dict) else v

    schema = pa.schema([(k, types.get(k, text)) for k in columns])
    table = pa.Table.from_pylist([{k: value(k, r.get(k)) for k in columns} for r in recs], schema)
    pq.write_table(table, path)
    return path


def _langfuse_csv(recs: list[dict], path: Path) -> Path:
    """The rows as Langfuse writes its CSV export: objects and arrays as JSON text, null as an
    empty cell, booleans as true/false."""
    def cell(v):
        if isinstance(v, bool):
            return str(v).lower()
        return "" if v is None else json.dumps(v) if isinstance(v, dict | list) else v

    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(recs[0]))
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in r.items()} for r in recs)
    return path


def _stored_4_3_0(tmp_path: Path, path: Path) -> list[dict]:
    """The rows `path` stores, read as auto: four records, three rows, no reject."""
    db = tmp_path / f"{path.name}.duckdb"
    result = ingest_paths(db, [path], "auto")
    assert (result.read, result.ingested, result.rejected) == (4, 3, 0), path.name
    with open_warehouse(db) as wh:
        return wh.frame("SELECT * EXCLUDE (source, ingested_at) FROM logs ORDER BY request_id").to_dicts()


def test_langfuse_export_as_parquet_csv_and_jsonl_gives_the_same_rows(tmp_path):
    recs = records(LANGFUSE_EXPORT)

    stored = functools.partial(_stored_4_3_0, tmp_path)

    expected = stored(LANGFUSE_EXPORT)
    assert stored(_langfuse_parquet(recs, tmp_path / "observations_v2.parquet")) == expected
    assert stored(_langfuse_csv(recs, tmp_path / "observations_v2.csv")) == expected


NO_FIRST_TOKEN_TIME = {"completion_start_time": ...}  # the `time` field group not exported


@pytest.mark.parametrize("change, unit, ttft", [
    ({}, "auto", 300.0),  # seconds (integrations from 2026-04-01): latency 1.25 = end - start
    ({"latency": 1250, "time_to_first_token": 300}, "auto", 300.0),  # milliseconds (older integrations)
    ({"end_time": None, "latency": None}, "s", 300.0),
    ({"end_time": None, "latency": None, "time_to_first_token": 300}, "ms", 300.0),
    ({"latency": 1250, "time_to_first_token": 300}, "ms", 300.0),
], ids=["auto-s", "auto-ms", "set-s", "set-ms", "set-ms-agrees"])
def test_langfuse_export_durations_in_seconds_or_milliseconds(tmp_path, change, unit, ttft):
    path = write_jsonl(tmp_path / "x.jsonl", [_export(**NO_FIRST_TOKEN_TIME, **change)])
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        result = ingest_file(wh, path, "auto", IngestOptions(langfuse_latency_unit=unit))
        (r,) = wh.frame("SELECT * FROM logs").to_dicts()
    assert result.ingested == 1 and r["ttft_ms"] == pytest.approx(ttft)


def test_a_langfuse_export_duration_of_unknown_unit_is_rejected_not_guessed(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [_export(**NO_FIRST_TOKEN_TIME, end_time=None, latency=None)])
    result, _, rejects = load(tmp_path, path, "auto")
    assert result.rejected == 1
    assert rejects[0]["reason"].startswith("time_to_first_token has no unit to go by")
    assert "ingest.langfuse_latency_unit" in rejects[0]["reason"]


def test_the_langfuse_latency_unit_option():
    with pytest.raises(ValueError, match="langfuse_latency_unit"):
        IngestOptions(langfuse_latency_unit="minutes")
    configured = SimpleNamespace(prompt_version_key="pv", max_field_chars=10, langfuse_latency_unit="ms")
    assert IngestOptions.from_settings(configured).langfuse_latency_unit == "ms"
    assert IngestOptions.from_settings(Ingest()).langfuse_latency_unit == "auto"


# --- LiteLLM proxy spend logs ----------------------------------------------------------------

KEY_HASH = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"


def test_litellm_proxy_spend_logs(tmp_path):
    result, rows, _ = load(tmp_path, LITELLM_SPEND, "auto")
    assert (result.read, result.ingested, result.rejected) == (4, 3, 0)  # the embedding call is skipped
    r = rows["chatcmpl-CX9f8e7d6c"]
    assert r["source_format"] == "litellm_spend" and r["ts"].isoformat() == "2026-11-20T14:20:00+00:00"
    assert r["latency_ms"] == pytest.approx(812.0) and r["ttft_ms"] == pytest.approx(230.0)  # streamed
    assert tokens(r) == (412, 40, 256, 37)  # details from metadata.additional_usage_values
    assert (r["model_id"], r["prompt_version"], r["output_text"]) == ("gpt-5-mini", "triage@v4", "billing")
    assert r["cost_usd"] == pytest.approx(0.00042) and r["status"] == "ok"
    assert json.loads(r["messages"]) == [{"role": "system", "content": "Classify the ticket."},
                                         {"role": "user", "content": "I was charged twice"}]
    assert json.loads(r["params"]) == {"temperature": 0, "max_tokens": 512}
    meta = json.loads(r["metadata"])
    assert (meta["model_group"], meta["user_api_key_alias"], meta["request_tags"]) == \
        ("triage-model", "support-bot", ["support"])
    assert KEY_HASH[:12] not in r["metadata"] and "api_key" not in meta  # never a hashed key
    failed = rows["9b0f1e2d-3c4b-4a59-8e7d-6c5b4a392817"]
    assert (failed["status"], failed["output_text"], failed["ttft_ms"]) == ("error", None, None)
    assert failed["error"].startswith("litellm.RateLimitError")
    assert failed["prompt_version"] == "triage@v4"  # from the request body's metadata
    old = rows["chatcmpl-Old4a5b6c7d"]  # an older proxy: the messages in their own column
    assert tokens(old) == (2048, 1, 1920, None) and old["ttft_ms"] is None
    assert (old["prompt_version"], old["output_text"]) == ("math@v3", "4")


def _postgres_csv(recs: list[dict], path: Path) -> Path:
    """The rows as `\\copy "LiteLLM_SpendLogs" TO … CSV HEADER` writes them: timestamps without a
    zone (UTC), JSON columns as JSON text, NULL as an empty cell."""
    def cell(key: str, v):
        if v is None:
            return ""
        if isinstance(v, dict | list):
            return json.dumps(v)
        if key in ("startTime", "endTime", "completionStartTime"):
            moment = datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
            return moment.isoformat(sep=" ", timespec="milliseconds").rstrip("0").rstrip(".")
        return v

    columns = sorted({k for r in recs for k in r})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows({k: cell(k, r.get(k)) for k in columns} for r in recs)
    return path


def test_spend_logs_as_a_postgres_csv_or_a_v2_page_give_the_same_rows(tmp_path):
    recs = records(LITELLM_SPEND)
    page = tmp_path / "spend-logs-v2.json"
    page.write_text(json.dumps({"data": recs, "total": 4, "page": 1, "page_size": 50, "total_pages": 1}))

    stored = functools.partial(_stored_4_3_0, tmp_path)

    expected = stored(LITELLM_SPEND)
    assert stored(page) == expected
    assert stored(_postgres_csv(recs, tmp_path / "LiteLLM_SpendLogs.csv")) == expected


def test_a_spend_log_cut_by_the_proxy_is_rejected(tmp_path):
    rec = _spend()
    rec["proxy_server_request"]["messages"][1]["content"] = \
        "I was ... (litellm_truncated skipped 30000 chars) ... twice"
    result, _, rejects = load(tmp_path, write_jsonl(tmp_path / "x.jsonl", [rec]), "auto")
    assert result.rejected == 1 and "MAX_STRING_LENGTH_PROMPT_IN_DB" in rejects[0]["reason"]


@pytest.mark.parametrize("path, named, other", [
    (LITELLM_SPEND, "litellm", "litellm_spend"),  # once rejected as "missing id", and no more said
    (LANGFUSE_EXPORT, "langfuse", "langfuse_export"),
])
def test_a_record_read_as_the_wrong_format_says_which_format_it_looks_like(tmp_path, path, named, other):
    result, _, rejects = load(tmp_path, path, named)
    assert result.ingested == 0 and rejects
    assert all(f"looks like {other}" in r["reason"] for r in rejects), rejects


# --- OpenTelemetry GenAI content in log events -----------------------------------------------

def _parsed(items) -> tuple[dict[str, dict], list[str], list[int]]:
    """The rows (by request id), reject reasons and positions of (position, record) pairs, each
    record parsed as the record path parses it."""
    rows, rejects, positions = {}, [], []
    for position, record in items:
        positions.append(position)
        try:
            parsed = parse(record, "auto")
        except Reject as exc:
            parsed = [exc]
        for item in parsed:
            if isinstance(item, Reject):
                rejects.append(str(item))
            else:
                rows[item["request_id"]] = item
    return rows, rejects, positions


SPAN_B = "8b2c3d4e5f60718293a4b5c6d7e8f90a:2b3c4d5e6f708192"
EVENT_C = "9c3d4e5f60718293a4b5c6d7e8f90a1b:3c4d5e6f708192a3"


def test_otel_content_in_log_events_is_joined_to_its_span():
    rows, rejects, positions = _parsed(join_records(read_records(OTEL_EVENTS)))
    assert sorted(positions) == [1, 2, 3, 4] and rejects == []
    a = rows["chatcmpl-EV1a2b3c"]  # the details event came before its span
    assert a["ts"] == datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)
    assert (a["latency_ms"], a["ttft_ms"]) == (812.0, 230.0)  # the span's times, its time to first chunk
    assert tokens(a) == (412, 40, 256, 37)
    assert (a["model_id"], a["prompt_version"]) == ("gpt-5-mini", "triage@v4")
    assert json.loads(a["messages"]) == [{"role": "system", "content": "Classify the ticket."},
                                         {"role": "user", "content": "I was charged twice"}]
    assert a["output_text"] == "billing"
    assert json.loads(a["params"]) == {"temperature": 0.0, "max_tokens": 512}
    b = rows[SPAN_B]  # the older per-message events came after theirs
    assert json.loads(b["messages"]) == [{"role": "system", "content": "Answer yes or no."},
                                         {"role": "user", "content": "Is 7 prime?"}]
    assert (b["output_text"], b["latency_ms"], b["model_id"]) == ("Yes", 640.0, "gpt-4o-mini")
    assert tokens(b) == (30, 5, None, None)
    c = rows[EVENT_C]  # a details event whose span is not in the file: a row of its own, no duration
    assert (c["status"], c["error"], c["latency_ms"]) == ("error", "RateLimitError", None)
    assert c["model_id"] == "gpt-5-mini"
    assert c["ts"] == datetime(2026, 11, 20, 14, 5, 11, 250000, tzinfo=UTC)
    assert json.loads(c["metadata"])["from_log_event"] is True


def test_the_join_does_not_depend_on_the_order_of_spans_and_events():
    forward, _, _ = _parsed(join_records(read_records(OTEL_EVENTS)))
    backward, rejects, _ = _parsed(join_records(reversed(list(read_records(OTEL_EVENTS)))))
    assert rejects == [] and backward == forward


def test_without_the_join_a_span_whose_content_is_in_log_events_is_a_reject():
    rows, rejects, _ = _parsed(read_records(OTEL_EVENTS))
    assert len(rejects) == 2 and all(r.startswith("missing messages") and "log events" in r for r in rejects)
    assert tokens(rows["chatcmpl-EV1a2b3c"]) == (None, None, None, None)  # the event alone has no usage
    assert rows[SPAN_B]["model_id"] is None  # the older events, grouped by span, have no model


def test_the_join_holds_at_most_its_window_of_records():
    logs_a, spans, logs_b, logs_c = records(OTEL_EVENTS)
    # window 1: the events of span A go on unmatched when the record of C comes in
    items = list(enumerate([logs_a, logs_c, spans, logs_b], 1))
    rows, rejects, positions = _parsed(join_events(items, window=1))
    assert sorted(positions) == [1, 2, 3, 4]
    assert len(rejects) == 1 and rejects[0].startswith("missing messages")  # span A
    assert set(rows) == {"chatcmpl-EV1a2b3c", SPAN_B, EVENT_C}
    assert json.loads(rows["chatcmpl-EV1a2b3c"]["metadata"])["from_log_event"] is True
    assert rows[SPAN_B]["output_text"] == "Yes" and rows[SPAN_B]["latency_ms"] == 640.0


def test_a_details_event_recorded_on_the_span_itself_is_read():
    logs, export, _, _ = records(OTEL_EVENTS)
    details = logs["resourceLogs"][0]["scopeLogs"][1]["logRecords"][0]
    span = export["resourceSpans"][0]["scopeSpans"][1]["spans"][0]
    span["events"] = [{"name": details["eventName"], "timeUnixNano": details["timeUnixNano"],
                       "attributes": details["attributes"]}]
    (row,) = [r for r in parse(export) if not isinstance(r, Reject)]
    assert json.loads(row["messages"])[1] == {"role": "user", "content": "I was charged twice"}
    assert (row["output_text"], row["input_tokens"], row["latency_ms"]) == ("billing", 412, 812.0)


def test_otel_log_events_through_the_ingest(tmp_path):
    result, rows, rejects = load(tmp_path, OTEL_EVENTS, "auto")
    assert (result.read, result.ingested, result.rejected) == (4, 3, 0), rejects
    assert tokens(rows["chatcmpl-EV1a2b3c"]) == (412, 40, 256, 37)
    assert rows[SPAN_B]["output_text"] == "Yes"


# --- the new formats fuzzed: every record is rows or a reject, never an exception -------------

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


NEW_FORMATS = [(LANGFUSE_EXPORT, "langfuse_export"), (LITELLM_SPEND, "litellm_spend")]


@pytest.mark.parametrize("path, fmt", NEW_FORMATS, ids=[f for _, f in NEW_FORMATS])
def test_fuzzed_records_are_rows_or_rejects(path, fmt):
    options = IngestOptions(max_field_chars=3_000)

    @FUZZ
    @given(record=mutated(records(path)), auto=st.booleans())
    def run(record, auto):
        try:
            parsed = parse(record, "auto" if auto else fmt, options)
        except Reject as exc:
            assert str(exc)
            return
        assert all(isinstance(p, Reject) and str(p) or set(p) == set(LOG_SCHEMA) for p in parsed)

    run()


def test_fuzzed_otlp_traces_and_logs_through_the_join():
    bases = records(OTEL_EVENTS) + records(OTEL)

    @FUZZ
    @given(lines=st.lists(mutated(bases) | st.sampled_from(bases).map(copy.deepcopy), min_size=1, max_size=6),
           window=st.integers(1, 4))
    def run(lines, window):
        out = list(join_events(enumerate(lines, 1), window))
        assert sorted(p for p, _ in out) == list(range(1, len(lines) + 1))  # each record once
        rows, rejects, _ = _parsed(out)
        assert all(rejects) and all(set(r) == set(LOG_SCHEMA) for r in rows.values())

    run()


# --- the registry ----------------------------------------------------------------------------

def test_the_docs_list_every_registered_format_as_the_registry_does():
    doc = DOCS.read_text()
    table = doc.split("<!-- formats: format_table() -->")[1].split("<!-- end of formats -->")[0].strip()
    assert table == logformats.format_table(), "docs/log-formats.md needs:\n" + logformats.format_table()
    assert "--format " + "|".join(["auto", *logformats.FORMATS]) in doc
    for name in logformats.FORMATS:
        assert f"## `{name}`" in doc, f"docs/log-formats.md has no section for {name}"


def test_auto_tries_the_formats_in_registry_order():
    assert list(logformats.FORMATS) == ["openinference", "otel", "openai", "litellm_spend", "litellm",
                                        "helicone", "langfuse", "langfuse_export"]
    assert all(f.sniff is not None for f in logformats.FORMATS.values())
    spend_row = records(LITELLM_SPEND)[0]  # passes LiteLLM's payload sniff too: the earlier format wins
    assert logformats.FORMATS["litellm"].sniff(spend_row) and detect(spend_row) == "litellm_spend"
    (row,) = logformats.FORMATS["litellm_spend"](spend_row)  # a format parses when called
    assert row["request_id"] == "chatcmpl-CX9f8e7d6c"
