import gzip
import json
from pathlib import Path

import pytest

from replaybench.errors import IngestError
from replaybench.warehouse import open_warehouse
from tasks.ingest import ingest_paths

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
    ]


def _both_paths(tmp_path, lines: list[str]):
    """Ingest the same lines through the SQL fast path and the record-by-record path."""
    from replaybench.logformats import IngestOptions
    from tasks.ingest import ingest_openai_jsonl, ingest_records

    src = write(tmp_path / "same.jsonl", lines)
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


def test_the_sql_fast_path_and_the_record_path_agree(tmp_path):
    lines = mixed_lines()
    (sql_result, sql_logs, sql_rejects), (py_result, py_logs, py_rejects) = _both_paths(tmp_path,
                                                                                        lines)
    assert sql_rejects == py_rejects
    assert sql_logs.equals(py_logs), (sql_logs, py_logs)
    assert (sql_result.read, sql_result.ingested, sql_result.duplicates, sql_result.rejected) == \
        (py_result.read, py_result.ingested, py_result.duplicates, py_result.rejected)


def test_the_two_sql_readers_keep_the_same_good_lines(tmp_path):
    """read_json (the fast reader) says nothing about a line it cannot read; the line-by-line
    reader says why. Whatever either keeps as good must be the same rows, column for column."""
    from tasks.ingest import LOG_COLUMNS

    src = write(tmp_path / "same.jsonl", mixed_lines())
    kept = {}
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        wh.run("openai_log_lines")
        for fast in (True, False):
            kept[fast] = wh.frame(
                f"SELECT {', '.join(LOG_COLUMNS[:-1])} FROM openai_log_lines($path, $pv, 100000, "
                f"{str(fast).lower()}) WHERE reason IS NULL ORDER BY request_id",
                path=str(src), pv='$."prompt_version"')
    assert len(kept[True]) == 9  # a to h, with a twice
    assert kept[True].equals(kept[False]), (kept[True], kept[False])


def test_a_clean_file_with_blank_lines_is_stored_in_one_pass(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(row("r1") + "\n\n   \n" + row("r2") + "\n")
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.duplicates, result.rejected) == (2, 2, 0, 0)


def test_without_a_query_profile_the_lines_are_counted_instead():
    from tasks.ingest import _rows_read_json_read

    assert _rows_read_json_read("not json") is None
    assert _rows_read_json_read('{"operator": [{"name": "INSERT", "children": []}]}') is None
    profile = {"operator": [{"name": "INSERT", "children": [
        {"name": "READ_JSON", "operator_cardinality": 7, "children": []}]}]}
    assert _rows_read_json_read(json.dumps(profile)) == 7
