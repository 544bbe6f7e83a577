import gzip
import json
import logging
import zlib
from pathlib import Path

import pytest
import zstandard

from replaybench.errors import IngestError
from replaybench.ingest import ingest_paths
from replaybench.ingest.formats import IngestOptions
from replaybench.ingest.load import ingest_file, ingest_records
from replaybench.warehouse import open_warehouse

ROOT = Path(__file__).resolve().parents[1]


def row(request_id="req_1", **over):
    rec = {
        "request_id": request_id, "ts": "2026-11-20T14:03:11Z", "endpoint": "/support/triage",
        "model_id": "openai/gpt-5-mini", "prompt_version": "triage@v4",
        "request": {"model": "gpt-5-mini", "temperature": 0, "max_tokens": 16,
                    "messages": [{"role": "system", "content": "Classify."},
                                 {"role": "user", "content": "I was charged twice"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "billing"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 412, "completion_tokens": 3,
                               "prompt_tokens_details": {"cached_tokens": 256},
                               "completion_tokens_details": {"reasoning_tokens": 0}}},
        "latency_ms": 812, "ttft_ms": 230, "cost_usd": 0.00042, "status": "ok",
        "reference": "billing", "metadata": {"tenant": "acme"},
    }
    rec.update(over)
    return json.dumps(rec)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_maps_the_openai_format(tmp_path):
    src = write(tmp_path / "a.jsonl", [row()])
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (1, 1, 0)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        r = wh.frame("SELECT * FROM logs").row(0, named=True)
    assert r["prompt_version"] == "triage@v4" and r["output_text"] == "billing"
    assert (r["input_tokens"], r["output_tokens"], r["cached_tokens"], r["reasoning_tokens"]) == \
        (412, 3, 256, 0)
    assert json.loads(r["messages"])[1]["content"] == "I was charged twice"
    assert json.loads(r["params"]) == {"temperature": 0, "max_tokens": 16}
    assert r["ts"].isoformat() == "2026-11-20T14:03:11+00:00"
    assert r["source_format"] == "openai" and r["reference"] == "billing"


def test_ingesting_twice_adds_nothing(tmp_path):
    src = write(tmp_path / "a.jsonl", [row("req_1"), row("req_2"), row("req_1")])
    first = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (first.ingested, first.duplicates) == (2, 1)
    second = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (second.read, second.ingested, second.duplicates, second.rejected) == (3, 0, 3, 0)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT count(*) FROM logs").fetchone()[0] == 2


@pytest.mark.parametrize("line, reason", [
    ('{"request_id": "x", "ts": ', "invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    (row(request_id=None), "missing request_id"),
    (row(request={"model": "m"}), "missing request.messages"),
    (row(ts="yesterday-ish"), "unparsable timestamp"),
    (row(latency_ms=-5), "latency_ms is negative"),
    (row(cost_usd="cheap"), "cost_usd is not a number"),
    (row(response={"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": -1}}),
     "completion_tokens is negative"),
])
def test_a_malformed_line_is_a_reject_with_its_reason(tmp_path, line, reason):
    src = write(tmp_path / "a.jsonl", [row("req_ok_1"), line, row("req_ok_2")])
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (3, 2, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        rejects = wh.frame("SELECT * FROM rejects").to_dicts()
    assert len(rejects) == 1 and rejects[0]["position"] == 2
    assert reason in rejects[0]["reason"]
    assert rejects[0]["raw"]


def test_a_record_of_another_format_says_so_on_either_path(tmp_path):
    """An `openai` file holding an OTLP export: the SQL reader's reject reason names the format
    the record is in, in the record path's own words."""
    otlp = json.dumps({"resourceSpans": {}, "note": "exported by mistake"})
    src = write(tmp_path / "a.jsonl", [row("req_ok_1"), otlp, row("req_ok_2")])
    with open_warehouse(tmp_path / "sql.duckdb") as wh:
        assert ingest_file(wh, src, "openai", IngestOptions()).rejected == 1
        (sql,) = wh.execute("SELECT reason FROM rejects").fetchone()
    with open_warehouse(tmp_path / "records.duckdb") as wh:
        assert ingest_records(wh, src, "openai", IngestOptions()).rejected == 1
        (records,) = wh.execute("SELECT reason FROM rejects").fetchone()
    assert sql == records == ("missing request_id (the record looks like otel: read it as that "
                              "format, or auto)")


def test_invalid_utf8_is_rejected_and_gzip_is_read(tmp_path):
    src = tmp_path / "a.jsonl.gz"
    with gzip.open(src, "wb") as fh:
        fh.write(row("req_1").encode() + b"\n" + b'{"request_id": "\xff\xfe"}\n')
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.ingested, result.rejected) == (1, 1)
    assert "invalid UTF-8" in " ".join(result.reasons)


def test_missing_prompt_version_is_derived_from_the_system_prompt(tmp_path):
    src = write(tmp_path / "a.jsonl", [row("r1", prompt_version=None), row("r2", prompt_version="")])
    ingest_paths(tmp_path / "w.duckdb", [src])
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        rows = wh.frame("SELECT prompt_version, metadata FROM logs ORDER BY 1").to_dicts()
    assert rows[0]["prompt_version"] == rows[1]["prompt_version"]
    assert rows[0]["prompt_version"].startswith("sys:")
    assert json.loads(rows[0]["metadata"])["prompt_version_derived"] is True


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        ingest_paths(tmp_path / "w.duckdb", [tmp_path / "absent.jsonl"])


def test_the_bundled_demo_logs_ingest_with_their_three_bad_lines_rejected(tmp_path):
    demo = ROOT / "data" / "demo" / "production_logs.jsonl.gz"
    result = ingest_paths(tmp_path / "w.duckdb", [demo])
    assert result.ingested >= 5000
    assert result.rejected == 3
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        pvs, endpoints, days = wh.execute(
            "SELECT count(DISTINCT prompt_version), count(DISTINCT endpoint), "
            "count(DISTINCT ts::DATE) FROM logs").fetchone()
    assert pvs >= 5 and endpoints >= 3 and days == 14


def mixed_lines() -> list[str]:
    """Good lines of every shape, a repeat, and a bad line of every kind."""
    return [
        row("a"), row("b", prompt_version=None), row("c", metadata={"prompt_version": "m@1"},
                                                     prompt_version=""),
        row("d", ts=1763650991), row("e", status=None, response=None), row("a"),
        row("f", response={"choices": [{"message": {"content": [{"type": "text", "text": "x"},
                                                                {"type": "text", "text": "y"}]}}]}),
        row("g", reference={"k": 1}), row("h", model_id=None),
        '{"request_id": "x", "ts": ', "[1, 2]", '"a string"', "42",
        row(request_id=None), row("i", request={"model": "m"}), row("j", request={"messages": []}),
        row("k", request={"messages": ["hi"]}), row("l", ts="yesterday-ish"), row("m", ts=None),
        row("n", latency_ms=-5), row("o", cost_usd="cheap"), row("p", ttft_ms=True),
        row("q", response={"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": -1}}),
        row("r", response={"choices": [], "usage": {"prompt_tokens": "many"}}),
        row("s", response="not an object"),
        # found by tests/test_ingest_fuzz.py: numbers, shapes, timestamps, text the two paths
        # once read differently (or crashed on)
        row("t", response={"choices": ["str"]}), row("u", response={"choices": "abc"}),
        row("v", response={"choices": [{"message": 5}]}), row("w", response={"usage": "lots"}),
        row("x", response={"usage": {"prompt_tokens": 1, "completion_tokens_details": []}}),
        row("y").replace('"prompt_tokens": 412', '"prompt_tokens": 1e999'),
        row("z").replace('"prompt_tokens": 412', '"prompt_tokens": NaN'),
        row("aa").replace('"prompt_tokens": 412', '"prompt_tokens": 3000000000'),
        row("ab").replace('"cost_usd": 0.00042', '"cost_usd": -Infinity'),
        row("ac", ts=1e300), row("ad", ts="20261120T140311Z"), row("ae", ts="2026-11-20T24:00:00Z"),
        row("af", ts=" 2026-11-20T14:03:11Z"), row("ag", latency_ms={"a": [1, 2]}),
        row("ah").replace('"tenant": "acme"', '"tenant": "\\ud800"'),
        "null", "false", "1" + "0" * 30, "\x0b",
        row("ai", model_id=12), row("aj", status=5), row("ak", prompt_version=False),
        row("al", response={"choices": [{"message": {"content": [{"text": 5}, "s", {"text": None}]}}]}),
        row("am", ts="2026-11-20T14:03:11.123456789+05:30"),
    ]


def _both_paths(tmp_path, lines: list[str], name: str = "same.jsonl"):
    """Ingest the same lines through the SQL fast path and the record-by-record path; a `.gz` or
    `.zst` name compresses them (zstd in frames of 1,000 bytes, as an appending writer leaves it)."""
    from replaybench.ingest.formats import IngestOptions
    from replaybench.ingest.load import ingest_openai_jsonl, ingest_records

    src = write(tmp_path / name, lines)
    if name.endswith(".gz"):
        src.write_bytes(gzip.compress(src.read_bytes()))
    elif name.endswith(".zst"):
        data, compressor = src.read_bytes(), zstandard.ZstdCompressor(write_checksum=True)
        src.write_bytes(b"".join(compressor.compress(data[k:k + 1000]) for k in range(0, len(data), 1000)))
    out = []
    for name, ingest in (("sql", ingest_openai_jsonl), ("python", None)):
        with open_warehouse(tmp_path / f"{name}.duckdb") as wh:
            if ingest:
                result = ingest(wh, src, IngestOptions())
            else:
                result = ingest_records(wh, src, "openai", IngestOptions())
            logs = wh.frame("SELECT * EXCLUDE (ingested_at, source) FROM logs ORDER BY request_id")
            rejects = wh.frame("SELECT position, reason FROM rejects ORDER BY position").rows()
        for col in ("messages", "params", "metadata"):
            logs = logs.with_columns(logs[col].map_elements(lambda v: json.dumps(json.loads(v),
                                                                                 sort_keys=True),
                                                            return_dtype=str))
        out.append((result, logs, rejects))
    return out


@pytest.mark.parametrize("name", ["same.jsonl", "same.jsonl.gz", "same.jsonl.zst"])
def test_the_sql_fast_path_and_the_record_path_agree(tmp_path, name, caplog):
    caplog.set_level(logging.INFO, logger="replaybench.ingest.load")
    lines = mixed_lines()
    (sql_result, sql_logs, sql_rejects), (py_result, py_logs, py_rejects) = _both_paths(tmp_path,
                                                                                        lines, name)
    assert not any("record by record" in r.getMessage() for r in caplog.records)  # DuckDB read it
    assert sql_rejects == py_rejects
    assert sql_logs.equals(py_logs), (sql_logs, py_logs)
    assert (sql_result.read, sql_result.ingested, sql_result.duplicates, sql_result.rejected) == \
        (py_result.read, py_result.ingested, py_result.duplicates, py_result.rejected)


def test_the_two_sql_readers_keep_the_same_good_lines(tmp_path):
    """read_json (the fast reader) says nothing about a line it cannot read; the line-by-line
    reader says why. Whatever either keeps as good must be the same rows, column for column."""
    from replaybench.ingest.load import LOG_COLUMNS

    src = write(tmp_path / "same.jsonl", mixed_lines())
    kept = {}
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        wh.query("log_line_macros")
        wh.query("openai_log_lines")
        for fast in (True, False):
            kept[fast] = wh.frame(
                f"SELECT {', '.join(LOG_COLUMNS[:-1])} FROM openai_log_lines($path, $pv, 100000, 67108864, "
                f"{str(fast).lower()}) WHERE reason IS NULL ORDER BY request_id",
                path=str(src), pv='$."prompt_version"')
    assert len(kept[True]) == 14  # a to h (a twice), ai to am
    assert kept[True].equals(kept[False]), (kept[True], kept[False])


@pytest.mark.parametrize("fmt, fixture", [("langfuse", "langfuse_observations.json"),
                                          ("langfuse_export", "langfuse_export.jsonl"),
                                          ("litellm", "litellm_payloads.jsonl")])
def test_a_sql_reader_reads_what_its_tool_writes_itself(tmp_path, fmt, fixture):
    """The records a tool exports (the fixtures follow the documented shapes) are read by DuckDB,
    not left to the Python parser: each line comes out `store` (or `skip`, for an observation that
    is no GENERATION). The Python parser is for the odd line, not the common one."""
    from replaybench.ingest import formats as logformats
    from replaybench.ingest.readers import read_records

    fixtures = Path(__file__).parent / "fixtures" / "formats"
    src = write(tmp_path / "tool.jsonl", [json.dumps(r) for _, r in read_records(fixtures / fixture)])
    reader = logformats.FORMATS[fmt].sql
    own = reader.params(logformats.IngestOptions())
    args = "".join(f", ${name}" for name in own)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        wh.query("log_line_macros")
        wh.query(reader.macro)
        for fast in ("true", "false"):
            params = {"path": str(src), "pv": '$."prompt_version"', **own}
            lanes = wh.execute(f"SELECT lane FROM {reader.macro}($path, $pv, 1000000, 67108864, "
                               f"{fast}{args})", params).fetchall()
            assert lanes and {lane for (lane,) in lanes} <= {"store", "skip"}, lanes
            assert ("store",) in lanes


def test_epoch_seconds_are_read_to_the_microsecond_as_python_reads_them(tmp_path):
    """LiteLLM logs times as epoch seconds with a fraction: its SQL reader rounds it to the
    microsecond as datetime.fromtimestamp does (half to even), where DuckDB's to_timestamp would
    differ by a microsecond for about one time in eight."""
    import random

    from replaybench.ingest.formats import IngestOptions
    from replaybench.ingest.load import ingest_file, ingest_records
    from replaybench.ingest.readers import read_records

    fixture = ROOT / "tests" / "fixtures" / "formats" / "litellm_payloads.jsonl"
    base = next(r for _, r in read_records(fixture))
    rng = random.Random(7)
    lines = []
    for i in range(300):
        start = 1_795_000_000 + rng.random() * 1e6
        times = {"startTime": start, "endTime": start + rng.random() * 5,
                 "completionStartTime": start + rng.random()}
        lines.append(json.dumps({**base, "id": f"call-{i}", **times}))
    src = write(tmp_path / "litellm.jsonl", lines)
    seen = {}
    for name, ingest in (("sql", ingest_file), ("python", ingest_records)):
        with open_warehouse(tmp_path / f"{name}.duckdb") as wh:
            ingest(wh, src, "litellm", IngestOptions())
            seen[name] = wh.frame("SELECT request_id, ts, latency_ms, ttft_ms FROM logs ORDER BY request_id")
    assert len(seen["sql"]) == 300
    assert seen["sql"].equals(seen["python"]), seen["sql"].join(seen["python"], on="request_id")


def test_a_clean_file_with_blank_lines_is_stored_in_one_pass(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(row("r1") + "\n\n   \n" + row("r2") + "\n")
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.duplicates, result.rejected) == (2, 2, 0, 0)


def test_without_a_query_profile_the_lines_are_counted_instead():
    from replaybench.ingest.load import _rows_read_json_read

    assert _rows_read_json_read("not json") is None
    assert _rows_read_json_read('{"operator": [{"name": "INSERT", "children": []}]}') is None
    profile = {"operator": [{"name": "INSERT", "children": [
        {"name": "READ_JSON", "operator_cardinality": 7, "children": []}]}]}
    assert _rows_read_json_read(json.dumps(profile)) == 7


# --- robustness: a broken file is read as far as it goes, a bad line is a reject -----------------

def _gzip_cut(path: Path, text: str) -> bytes:
    """`text` gzip-compressed into `path`, cut off halfway; what a reader can still decompress."""
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) // 2])
    return zlib.decompressobj(wbits=31).decompress(data[: len(data) // 2])


def test_a_truncated_jsonl_gz_keeps_the_lines_before_the_cut(tmp_path):
    src = tmp_path / "cut.jsonl.gz"
    readable = _gzip_cut(src, "".join(row(f"r{i:04}") + "\n" for i in range(400)))
    whole_lines = readable.count(b"\n")
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert 0 < whole_lines < 400
    assert_kept_before_the_cut(tmp_path / "w.duckdb", result, whole_lines, "gzip")


def assert_kept_before_the_cut(warehouse: Path, result, whole_lines: int, compression: str) -> None:
    """The lines before the cut are stored (r0000, r0001, …) and the cut is one reject after them."""
    assert (result.read, result.ingested, result.duplicates, result.rejected) == \
        (whole_lines + 1, whole_lines, 0, 1)
    with open_warehouse(warehouse) as wh:
        (reject,) = wh.frame("SELECT * FROM rejects").to_dicts()
        last = wh.execute("SELECT max(request_id) FROM logs").fetchone()[0]
    assert last == f"r{whole_lines - 1:04}"
    assert reject["position"] == whole_lines + 1
    assert reject["reason"] == (f"truncated {compression} file: the stream ends after line "
                                f"{whole_lines:,}; the rest of the file is lost")


def test_a_truncated_json_gz_keeps_the_records_before_the_cut(tmp_path):
    records = [row(f"r{i:04}") for i in range(300)]
    src = tmp_path / "cut.json.gz"
    readable = _gzip_cut(src, "[" + ",\n".join(records) + "]").decode(errors="ignore")
    whole = sum(1 for i in range(len(records)) if len("[" + ",\n".join(records[:i + 1])) <= len(readable))
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert 0 < whole < 300
    assert (result.read, result.ingested, result.rejected) == (whole + 1, whole, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        (reject,) = wh.frame("SELECT * FROM rejects").to_dicts()
    assert reject["position"] == whole + 1 and reject["reason"].startswith("truncated gzip file")


def test_a_3mb_line_is_stored_and_the_counts_add_up(tmp_path):
    """read_csv's own line limit (2 MB) once made such a line "invalid UTF-8" after read_json had
    stored it, and "already present" went negative."""
    part = "x" * 900_000  # each field under max_field_chars, the line over 2.7 MB
    big = row("big", request={"messages": [{"role": "user", "content": part}]}, reference=part,
              response={"choices": [{"message": {"content": part}}]})
    src = write(tmp_path / "a.jsonl", [row("a"), big, row("bad", latency_ms=-1)])
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.duplicates, result.rejected) == (3, 2, 0, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT length(reference) FROM logs WHERE request_id = 'big'").fetchone() \
            == (900_000,)
        assert wh.execute("SELECT position, reason FROM rejects").fetchall() == \
            [(3, "latency_ms is negative: -1")]
    again = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (again.read, again.ingested, again.duplicates, again.rejected) == (3, 0, 2, 1)


def test_a_3mb_line_over_max_field_chars_is_rejected_for_that(tmp_path):
    big = row("big", reference="x" * 3_000_000)
    src = write(tmp_path / "a.jsonl", [row("a"), big, row("c")])
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.duplicates, result.rejected) == (3, 2, 0, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT position, reason FROM rejects").fetchall() == \
            [(2, "reference is over the size limit (3,000,000 > 1,000,000 chars)")]


def test_a_line_over_the_line_limit_is_rejected_unread(tmp_path):
    from replaybench.ingest.readers import Unreadable, read_records

    src = write(tmp_path / "a.jsonl", [row("a"), row("big", reference="x" * 5_000), row("c")])
    got = list(read_records(src, max_line_bytes=2_000))
    assert [p for p, _ in got] == [1, 2, 3] and got[0][1]["request_id"] == "a"
    assert isinstance(got[1][1], Unreadable)
    assert got[1][1].reason.startswith("line is over the size limit (5,")
    assert got[1][1].reason.endswith(" > 2,000 bytes)") and got[2][1]["request_id"] == "c"


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_json_nested_10000_deep_is_a_reject(tmp_path, name):
    deep_list, deep_object = "[" * 10_000 + "]" * 10_000, '{"x":' * 10_000 + "1" + "}" * 10_000
    lines = [row("a"), deep_list, deep_object, row("b")]
    src = tmp_path / name
    src.write_text("[" + ",".join(lines) + "]" if name.endswith(".json") else "\n".join(lines))
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (4, 2, 2)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        rejects = wh.execute("SELECT position, reason FROM rejects ORDER BY 1").fetchall()
    assert [p for p, _ in rejects] == [2, 3] and all(reason for _, reason in rejects)


BAD_NUMBERS = [
    ('"prompt_tokens": 1e999', "prompt_tokens is not a number: 'inf'"),
    ('"prompt_tokens": -1e999', "prompt_tokens is not a number: '-inf'"),
    ('"prompt_tokens": NaN', "prompt_tokens is not a number: 'nan'"),
    ('"prompt_tokens": 1e300', "prompt_tokens is too large: over 2,147,483,647"),
    ('"prompt_tokens": 3000000000', "prompt_tokens is too large: over 2,147,483,647"),
    ('"prompt_tokens": ' + "9" * 400, "prompt_tokens is not a number: 'inf'"),
]


@pytest.mark.parametrize("path", ["sql", "python"])
@pytest.mark.parametrize("number, reason", BAD_NUMBERS, ids=[n[:30] for n, _ in BAD_NUMBERS])
def test_an_infinite_or_huge_number_is_a_reject(tmp_path, path, number, reason):
    bad = row("bad").replace('"prompt_tokens": 412', number)
    name = "a.jsonl" if path == "sql" else "a.json"  # a .json file goes record by record
    src = tmp_path / name
    src.write_text("\n".join([row("a"), bad, row("c")]) if path == "sql" else
                   "[" + ",".join([row("a"), bad, row("c")]) + "]")
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (3, 2, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT position, reason FROM rejects").fetchall() == [(2, reason)]


@pytest.mark.parametrize("response, reason", [
    ({"choices": ["str"]}, "response.choices[0] is not an object"),
    ({"choices": "abc"}, "response.choices is not a list"),
    ({"choices": [{"message": "hi"}]}, "response.choices[0].message is not an object"),
    ({"choices": [], "usage": "lots"}, "response.usage is not an object"),
    ({"usage": {"prompt_tokens": 3, "prompt_tokens_details": 5}},
     "response.usage.prompt_tokens_details is not an object"),
])
@pytest.mark.parametrize("name", ["a.jsonl", "a.json"])
def test_a_response_of_the_wrong_shape_is_a_reject(tmp_path, name, response, reason):
    lines = [row("a"), row("b", response=response), row("c")]
    src = tmp_path / name
    src.write_text("\n".join(lines) if name.endswith(".jsonl") else "[" + ",".join(lines) + "]")
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (3, 2, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT position, reason FROM rejects").fetchall() == [(2, reason)]


def test_a_directory_is_named_as_one(tmp_path):
    (tmp_path / "logs").mkdir()
    with pytest.raises(IngestError, match="logs is a directory"):
        ingest_paths(tmp_path / "w.duckdb", [tmp_path / "logs"])


def test_a_path_with_a_star_is_that_file_not_a_glob(tmp_path):
    write(tmp_path / "ab.jsonl", [row("other")])
    star = write(tmp_path / "a*.jsonl", [row("star"), row(request_id=None)])
    result = ingest_paths(tmp_path / "w.duckdb", [star])
    assert (result.read, result.ingested, result.rejected) == (2, 1, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT request_id, source FROM logs").fetchall() == [("star", str(star))]
    with pytest.raises(IngestError, match="no such file"):
        ingest_paths(tmp_path / "w.duckdb", [tmp_path / "a?.jsonl"])


def test_windows_line_ends_and_a_carriage_return_inside_a_line(tmp_path):
    """DuckDB's line reader also ends a line at a carriage return: rejects keep their own line
    numbers in a CRLF file, and a file with a lone carriage return inside a line is read as the
    record path reads it."""
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"\r\n".join(x.encode() for x in [row("a"), row("b"), "oops", row("c"),
                                                       row(request_id=None)]) + b"\r\n")
    result = ingest_paths(tmp_path / "w.duckdb", [crlf])
    assert (result.read, result.ingested, result.rejected) == (5, 3, 2)
    inside = write(tmp_path / "cr.jsonl", [row("d"), row("e").replace(', "ts"', ',\r"ts"'), "x\ry", row("f")])
    result = ingest_paths(tmp_path / "w.duckdb", [inside])
    assert (result.read, result.ingested, result.rejected) == (4, 3, 1)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        rejects = wh.execute("SELECT source, position, reason FROM rejects ORDER BY 1, 2").fetchall()
    assert [(s.rsplit("/", 1)[-1], p, r.split(":")[0]) for s, p, r in rejects] == [
        ("cr.jsonl", 3, "invalid JSON"), ("crlf.jsonl", 3, "invalid JSON"),
        ("crlf.jsonl", 5, "missing request_id")]
