"""Property-based fuzzing of the ingest: every log format, every reader, and the SQL fast path.

Inputs are the fixture records of each format mutated field by field (values of the wrong type,
huge, infinite and NaN numbers, deep nesting, odd Unicode, lone surrogates, missing keys, extra
keys) and lines of random bytes, in batches with untouched good records. They go through the
entry points the ingest itself uses (`ingest_records`, `ingest_file`) into a real DuckDB file.
Whatever the input: nothing raises, every reject has a reason (and none is the `parser error` of
a parser that failed), the good records of the batch are stored, and the counts add up.

Each test checks at least 10,000 generated records. Hypothesis runs derandomized, so a run is
repeatable; `FUZZ_RECORDS` sets how many records a test checks (default 10,000; `make test` runs
1,000).
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import itertools
import json
import logging
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from replaybench.errors import IngestError
from replaybench.ingest import formats as logformats
from replaybench.ingest.formats import IngestOptions
from replaybench.ingest.load import PARSER_ERROR, ingest_file, ingest_records
from replaybench.ingest.readers import line_value, read_records, too_deep
from replaybench.warehouse import open_warehouse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ingest import row  # noqa: E402

from tests.conftest import FUZZ_RECORDS  # noqa: E402

pytestmark = pytest.mark.fuzz  # 10,000 records a test in `make test-e2e`, 1,000 in `make test`

RECORDS = FUZZ_RECORDS
BATCH = 25  # records a Hypothesis example carries
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "formats"
FIXTURE_FILES = {
    "otel": "otel_traces.jsonl", "openinference": "phoenix_spans.json",
    "langfuse": "langfuse_observations.json", "litellm": "litellm_payloads.jsonl",
    "helicone": "helicone_export.jsonl",
    "langfuse_export": "langfuse_export.jsonl", "litellm_spend": "litellm_spend_logs.json",
}
# small enough that the size limits are reached now and then
OPTIONS = IngestOptions(max_field_chars=3_000)
FUZZ = settings(max_examples=RECORDS // BATCH + 1, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def bases(fmt: str) -> list[dict]:
    """The good records of a format: its fixture file (the openai format: test_ingest's row)."""
    if fmt == "openai":
        return [json.loads(row("base")), json.loads(row("base2", response=None, status="error"))]
    return [r for _, r in read_records(FIXTURES / FIXTURE_FILES[fmt])]


# --- values ----------------------------------------------------------------------------------

FIELD_NAMES = ["request_id", "id", "ts", "request", "response", "messages", "role", "content",
               "choices", "message", "usage", "prompt_tokens", "completion_tokens",
               "prompt_tokens_details", "cached_tokens", "metadata", "prompt_version", "model",
               "resourceSpans", "scopeSpans", "spans", "resource", "attributes", "key", "value",
               "stringValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "values",
               "startTimeUnixNano", "endTimeUnixNano", "events", "status", "code", "type",
               "startTime", "endTime", "input", "output", "usageDetails", "parts", "text",
               "gen_ai.input.messages", "llm.input_messages.0.message.role", "request_body",
               "response_body", "context", "span_kind", "data", "traceId", "spanId"]
odd_text = st.text(st.characters(categories=["Cs", "Cc", "Co", "Lo", "So", "Mn", "Zs"]), max_size=6)
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**400, -(10**400), 0, -1]),
    st.floats(),  # NaN and ±inf included
    st.sampled_from([1e999, -1e999, math.nan, 1e300, -0.0, 5e-324, 1.5]),
    st.text(max_size=12), odd_text,
    st.sampled_from(["", " ", "2026-11-20T14:03:11Z", "2026-11-20 14:03:11", "2026-13-40",
                     "1763650991", "NaN", "Infinity", "-5", "1e999", "12", "ERROR", "LLM",
                     "GENERATION", "success", "failure", "{", "[1,", '{"a": 1}', '[{"role": "user"}]',
                     "\ud800", "\x00", "𝄞", "é"]),
    st.integers(0, 3).map(lambda k: "x" * (3 * 10**k)),  # around the field size limit
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


# Deep nesting travels as a marker string, expanded when the record is written (`dump`):
# Hypothesis itself recurses to print a failing example.
DEEP = "\x1edeep:"


def deep_text(depth: int, kind: str) -> str:
    return ("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"x":' * depth + "1" + "}" * depth)


deep = st.builds(lambda d, k: f"{DEEP}{d}:{k}", st.integers(1, 10_000), st.sampled_from(["list", "dict"]))
values = st.one_of(json_values, json_values, json_values, deep)


# --- mutations ---------------------------------------------------------------------------------

def paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, as a path of keys and indexes ((): the value itself)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def mutate(record: object, path: tuple, how: str, value: object, key: str) -> object:
    """`record` with the value at `path` replaced, deleted, or given an extra key."""
    if not path:
        return value if how == "replace" else record
    parent = record
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][key] = value
    else:
        parent[last] = {key: value}
    return record


# what a number or a text of a record is swapped for, to be its most awkward self
EXTREME_NUMBERS = [math.inf, -math.inf, math.nan, 1e300, -1e300, 2**31 - 1, 2**31, 2**63, 10**400,
                   -(10**400), -1, -0.5, 0.5, 3.7, 5e-324, 253402300800, -62135596801, "12", True]
EXTREME_TEXTS = ["", " ", "x" * 4_000, "\ud800", "a\udfffb", "\x00", "2026-13-40", "2026-11-20T14:03:11",
                 "20261120T140311Z", "NaN", "1e999", "-1", "𝄞" * 3, 12, None]


def at(record: object, path: tuple) -> object:
    for p in path:
        record = record[p]
    return record


@st.composite
def mutated(draw, records: list[dict]) -> object:
    """One of `records` with one to three of its places (any depth, each as likely) changed: to
    a random JSON value, to an extreme one of its own kind, deleted, or given an extra key."""
    record = copy.deepcopy(draw(st.sampled_from(records)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(record)))
        how = draw(st.sampled_from(["replace", "extreme", "extreme", "delete", "add"]))
        current = at(record, path)
        if how == "extreme" and isinstance(current, int | float) and not isinstance(current, bool):
            value = draw(st.sampled_from(EXTREME_NUMBERS))
        elif how == "extreme" and isinstance(current, str):
            value = draw(st.sampled_from(EXTREME_TEXTS))
        else:
            value = draw(values)
        how = "replace" if how == "extreme" else how
        record = mutate(record, path, how, value, draw(keys))
    return record


noise = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" "))


def batch(fmt: str) -> st.SearchStrategy:
    """BATCH - 2 lines (two good records join them): mutated records, and random bytes."""
    line = st.one_of(*[mutated(bases(fmt))] * 5, noise)
    return st.lists(line, min_size=BATCH - 2, max_size=BATCH - 2)


def dump(record: object) -> bytes:
    """A record as a JSON line, the way a Python producer writes one (NaN and Infinity too)."""
    if isinstance(record, bytes):
        return record
    text, marker = json.dumps(record), json.dumps(DEEP)[1:-1]  # the marker as JSON escapes it
    while marker in text:
        start = text.index(marker)
        end = text.index('"', start)
        depth, kind = text[start + len(marker):end].split(":")
        text = text[:start - 1] + deep_text(int(depth), kind) + text[end + 1:]
    return text.encode("utf-8", "surrogatepass")


# --- good records ----------------------------------------------------------------------------

_serial = itertools.count()


def fresh(fmt: str, record: dict) -> tuple[dict, set[str]]:
    """A good record made unique (every string that is, or makes up, one of its request ids gets
    a new suffix) and the request ids its rows will have."""
    ids = {r["request_id"] for r in logformats.parse(record, fmt, OPTIONS)}
    parts = {p for i in ids for p in i.split(":")}
    n = next(_serial)
    renamed = json.loads(json.dumps(record), object_hook=lambda d: {
        k: f"{v}-{n}" if isinstance(v, str) and v in parts else v for k, v in d.items()})
    new_ids = {r["request_id"] for r in logformats.parse(renamed, fmt, OPTIONS)}
    assert len(new_ids) == len(ids) and not new_ids & ids
    return renamed, new_ids


# --- the checks ------------------------------------------------------------------------------

def check_stored(wh, source: str, result, good_ids: set[str]) -> None:
    """Every reject of `source` has a reason, none a parser's failure; the counts are not
    negative and match the reject rows; the good records are stored."""
    rejects = wh.execute("SELECT position, reason FROM rejects WHERE source = $s", {"s": source})
    assert all(reason and reason.strip() for _, reason in rejects), rejects
    assert not [r for _, r in rejects if r.startswith(PARSER_ERROR)], rejects
    assert min((result.read, result.ingested, result.duplicates, result.rejected)) >= 0, result
    assert result.rejected == len(rejects), (result, rejects)
    stored = {i for (i,) in wh.execute("SELECT request_id FROM logs WHERE source = $s", {"s": source})}
    assert good_ids <= stored, good_ids - stored


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """One warehouse (and folder for the batch files) for a module's fuzz tests."""
    folder = tmp_path_factory.mktemp("fuzz")
    with open_warehouse(folder / "w.duckdb") as wh:
        yield wh, folder


# --- every format through the record path -------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(logformats.FORMATS))
def test_fuzz_format(warehouse, fmt):
    """≥ 10,000 mutated records of `fmt` (and random lines) per test, through the record path,
    the format named or detected (`--format auto`)."""
    wh, folder = warehouse
    good = bases(fmt)
    seen = Counter()

    @FUZZ
    @given(lines=batch(fmt), auto=st.booleans())
    def run(lines, auto):
        n = next(_serial)
        keep = [fresh(fmt, copy.deepcopy(good[n % len(good)])), fresh(fmt, copy.deepcopy(good[0]))]
        path = folder / f"{fmt}-{n}.jsonl"
        path.write_bytes(b"\n".join([dump(keep[0][0]), *map(dump, lines), dump(keep[1][0])]) + b"\n")
        result = ingest_records(wh, path, "auto" if auto else fmt, OPTIONS)
        check_stored(wh, str(path), result, keep[0][1] | keep[1][1])
        if fmt == "openai":  # one row a record: every line is counted once
            assert result.read == result.ingested + result.duplicates + result.rejected, result
        seen["records"] += len(lines) + 2

    run()
    assert seen["records"] >= RECORDS


# --- the SQL fast path against the record path ----------------------------------------------------

FAST_BATCH = 250


def _by_line(path: Path, wh) -> tuple[set[str], dict[int, str]]:
    """What one ingest of `path` stored (request ids) and rejected (position: kind of reason)."""
    stored = {i for (i,) in wh.execute("SELECT request_id FROM logs WHERE source = $s", {"s": str(path)})}
    rejects = wh.execute("SELECT position, reason FROM rejects WHERE source = $s", {"s": str(path)})
    return stored, {p: reason.split(":")[0] for p, reason in rejects}


def _count_path(caplog, path: Path, odd_bytes: bool, seen: Counter) -> None:
    """Count the path a file took: DuckDB's, or the record path when DuckDB could not read it,
    which only a carriage return or \\x01 byte inside a line (`odd_bytes`) may cause."""
    went_slow = any(str(path) in r.getMessage() and "record by record" in r.getMessage()
                    for r in caplog.records)
    assert odd_bytes or not went_slow, [r.getMessage() for r in caplog.records][-3:]
    seen["fast path" if not went_slow else "record path"] += 1


def _fuzz_files(tmp_path, fmt: str, prefix: str, good_record, check, seen: Counter) -> None:
    """Files of FAST_BATCH mutated `fmt` lines, random bytes and blank lines between three good
    records (`good_record(n, i)`), gzip or not, each handed to `check(n, path, body, good, odd_bytes)`."""
    lines_of = st.lists(st.one_of(*[mutated(bases(fmt))] * 6, noise, st.just(b"")),
                        min_size=FAST_BATCH, max_size=FAST_BATCH)

    # no shrinking: a batch of 250 lines shrinks for minutes; the assertions name the lines
    @settings(FUZZ, max_examples=RECORDS // FAST_BATCH + 1,
              phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
    @given(lines=lines_of, gz=st.booleans(), odd_bytes=st.booleans())
    def run(lines, gz, odd_bytes):
        n = next(_serial)
        if not odd_bytes:  # bytes that make read_csv see other lines than read_json
            lines = [x.replace(b"\r", b" ").replace(b"\x01", b" ") if isinstance(x, bytes) else x
                     for x in lines]
        good = [fresh(fmt, good_record(n, i)) for i in range(3)]
        body = [dump(good[0][0]), *map(dump, lines[:100]), dump(good[1][0]), *map(dump, lines[100:]),
                dump(good[2][0])]
        data = b"\n".join(body) + b"\n"
        path = tmp_path / (f"{prefix}-{n}.jsonl.gz" if gz else f"{prefix}-{n}.jsonl")
        path.write_bytes(gzip.compress(data) if gz else data)
        check(n, path, body, good, odd_bytes)
        seen["records"] += len(lines) + 3

    run()


def test_fuzz_openai_fast_path(tmp_path, caplog):
    """Files of mutated openai lines, random bytes and blank lines, gzip or not: the SQL fast path
    stores what the record path stores and rejects the lines it rejects, for the same kind of
    reason, and its counts add up. (Lines nested deeper than the record path reads are left out
    of the comparison: DuckDB reads them, Python refuses them; both without a crash.) A file with
    a carriage return or a \\x01 byte inside a line goes the record path; the others must not."""
    caplog.set_level(logging.INFO, logger="replaybench.ingest.load")
    seen = Counter()

    def check(n, path, body, good, odd_bytes):
        with open_warehouse(tmp_path / f"sql-{n}.duckdb") as wh:
            fast = ingest_file(wh, path, "openai", OPTIONS)
            check_stored(wh, str(path), fast, set().union(*(ids for _, ids in good)))
            stored, rejects = _by_line(path, wh)
        assert fast.read == fast.ingested + fast.duplicates + fast.rejected, fast
        with open_warehouse(tmp_path / f"record-path-{n}.duckdb") as py:
            slow = ingest_records(py, path, "openai", OPTIONS)
            py_stored, py_rejects = _by_line(path, py)
        deep = {i for i, line in enumerate(body, 1) if too_deep(line.decode("utf-8", "replace"))}
        # an id as JSON wrote it (escaped: \ud834\udd1e, \"), decoded as a reader decodes it
        deep_ids = {json.loads(b'"' + m + b'"') for i in deep
                    for m in re.findall(rb'"request_id": "((?:[^"\\\\]|\\\\.)*)"', body[i - 1])}
        assert py_stored - deep_ids <= stored and stored - py_stored <= deep_ids, (stored ^ py_stored)
        differ = {p: (rejects.get(p), py_rejects.get(p), body[p - 1][:200])
                  for p in set(rejects) | set(py_rejects)
                  if p not in deep and rejects.get(p) != py_rejects.get(p)}
        assert not differ, differ  # line: (SQL reason, record path reason, the line)
        assert fast.read == slow.read
        _count_path(caplog, path, odd_bytes, seen)

    _fuzz_files(tmp_path, "openai", "fast", lambda n, i: json.loads(row(f"good-{n}-{i}")), check, seen)
    assert seen["records"] >= RECORDS
    # both paths were taken (which one each file takes is asserted per file above); how often each
    # is depends on the draws, and a small budget draws only a few files
    assert seen["fast path"] > 0 and seen["record path"] > 0, seen


SQL_FORMATS = sorted(f.name for f in logformats.FORMATS.values() if f.sql is not None)


def _stored(wh, path: Path) -> tuple[dict[str, dict], list[tuple]]:
    """What one ingest of `path` stored (request id: the row, its JSON columns parsed) and rejected
    (position, item, reason)."""
    rows = wh.frame("SELECT * EXCLUDE (ingested_at, source) FROM logs WHERE source = $s",
                    s=str(path)).to_dicts()
    for r in rows:
        for col in ("messages", "params", "metadata"):
            r[col] = json.loads(r[col])  # compared as JSON: DuckDB and Python write it differently
    rejects = wh.execute("SELECT position, item, reason FROM rejects WHERE source = $s ORDER BY ALL",
                         {"s": str(path)}).fetchall()
    return {r["request_id"]: r for r in rows}, rejects


def _good_ids(line: bytes, fmt: str) -> set[str]:
    """The request ids of the rows the parser makes of a line (none when it rejects the line)."""
    value = line_value(line) if line.strip() else None
    try:
        parsed = logformats.parse(value, fmt, OPTIONS) if isinstance(value, dict) else []
    except logformats.Reject:
        return set()
    return {r["request_id"] for r in parsed if isinstance(r, dict)}


@pytest.mark.parametrize("fmt", SQL_FORMATS)
def test_fuzz_sql_reader(tmp_path, caplog, fmt):
    """Files of mutated records of a format with a SQL reader, random bytes and blank lines, gzip
    or not: the SQL reader and the Python parser it leaves lines to store exactly the rows, column
    for column, and the rejects, line for line and reason for reason, of the record path; and the
    counts are the same. (Lines nested deeper than the record path reads are left out of the
    comparison: DuckDB reads them, Python refuses them; both without a crash.) A file with a
    carriage return or a \\x01 byte inside a line goes the record path; the others must not."""
    caplog.set_level(logging.INFO, logger="replaybench.ingest.load")
    seen = Counter()
    good_records = bases(fmt)

    def check(n, path, body, good, odd_bytes):
        with open_warehouse(tmp_path / f"sql-{n}.duckdb") as wh:
            fast = ingest_file(wh, path, fmt, OPTIONS)
            check_stored(wh, str(path), fast, set().union(*(ids for _, ids in good)))
            rows, rejects = _stored(wh, path)
        with open_warehouse(tmp_path / f"record-path-{n}.duckdb") as py:
            slow = ingest_records(py, path, fmt, OPTIONS)
            py_rows, py_rejects = _stored(py, path)
        deep = {i for i, line in enumerate(body, 1) if too_deep(line.decode("utf-8", "replace"))}
        extra = {i: rows[i] for i in rows.keys() - py_rows.keys()}
        assert all(re.search(re.escape(json.dumps(i)[1:-1]).encode(), b"".join(body[d - 1] for d in deep))
                   for i in extra), extra  # stored by DuckDB only: from a line nested too deeply
        # an id on several good lines is stored once by both paths, not always from the same line
        repeated = {i for i, k in Counter(i for line in body for i in _good_ids(line, fmt)).items() if k > 1}
        assert py_rows.keys() <= rows.keys(), py_rows.keys() - rows.keys()
        differ = {i: {c: (rows[i][c], v) for c, v in py_rows[i].items() if rows[i][c] != v}
                  for i in py_rows.keys() - repeated if rows[i] != py_rows[i]}
        assert not differ, differ  # request id: {column: (the SQL path's value, the record path's)}
        only = set(rejects) ^ set(py_rejects)
        assert [r for r in rejects if r[0] not in deep] == [r for r in py_rejects if r[0] not in deep], \
            [("sql" if r in rejects else "python", r, body[r[0] - 1][:300]) for r in sorted(only)
             if r[0] not in deep]
        if not deep:
            assert (fast.read, fast.ingested, fast.duplicates, fast.rejected) == \
                (slow.read, slow.ingested, slow.duplicates, slow.rejected), (fast, slow)
        _count_path(caplog, path, odd_bytes, seen)

    _fuzz_files(tmp_path, fmt, fmt, lambda n, i: copy.deepcopy(good_records[i % len(good_records)]), check,
                seen)
    assert seen["records"] >= RECORDS
    # every file without odd bytes took DuckDB's path (_count_path); half the files have them
    assert seen["fast path"] > 0, seen


# --- the record path on every core against the record path in one process -----------------------

PARALLEL_LINES = 250


@pytest.mark.parametrize("fmt", ["otel", "auto"])
def test_fuzz_record_path_on_every_core(tmp_path, fmt):
    """Files of mutated records (every format's, with `auto`; OpenTelemetry spans and the log events
    that carry their content, with `otel`), random bytes and blank lines, parsed by two worker
    processes in small chunks: the same rows, column for column, the same rejects and the same
    counts as the record path in one process. The records of the join go back to the main process,
    so spans and their events in different chunks still meet."""
    from replaybench.ingest import parallel
    from replaybench.ingest.load import Store

    fmts = ["otel"] if fmt == "otel" else sorted(FIXTURE_FILES)
    good = [r for f in fmts for r in bases(f)] + ([] if fmt == "otel" else bases("openai"))
    events = [r for _, r in read_records(FIXTURES / "otel_events.jsonl")]
    seen = Counter()

    @settings(FUZZ, max_examples=4, phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(lines=st.lists(st.one_of(mutated(good), mutated(good), st.sampled_from(events), noise,
                                    st.just(b"")), min_size=PARALLEL_LINES, max_size=PARALLEL_LINES))
    def run(lines):
        n = next(_serial)
        path = tmp_path / f"parallel-{n}.jsonl"
        path.write_bytes(b"\n".join(map(dump, lines)) + b"\n")
        with open_warehouse(tmp_path / f"parallel-{n}.duckdb") as wh:
            store = Store(wh, str(path))
            parallel.ingest_on_every_core(store, path, fmt, OPTIONS, processes=2, chunk_bytes=20_000)
            check_stored(wh, str(path), store.result, set())
            rows, rejects = _stored(wh, path)
        with open_warehouse(tmp_path / f"one-process-{n}.duckdb") as py:
            assert not parallel.worth_it(path)  # a small file: the record path stays in one process
            one = ingest_records(py, path, fmt, OPTIONS)
            py_rows, py_rejects = _stored(py, path)
        repeated = {i for i, k in Counter(i for line in lines for i in _good_ids(dump(line), fmt)).items()
                    if k > 1}
        assert rows.keys() == py_rows.keys(), rows.keys() ^ py_rows.keys()
        differ = {i: {c: (rows[i][c], v) for c, v in py_rows[i].items() if rows[i][c] != v}
                  for i in py_rows.keys() - repeated if rows[i] != py_rows[i]}
        assert not differ, differ  # request id: {column: (on every core, in one process)}
        assert rejects == py_rejects
        result = store.result
        assert (result.read, result.ingested, result.duplicates, result.rejected) == \
            (one.read, one.ingested, one.duplicates, one.rejected), (result, one)
        seen["records"] += len(lines)
        seen["rows"] += len(rows)

    run()
    assert seen["rows"] > 0, seen


# --- the readers: JSON documents, CSV, Parquet --------------------------------------------------

def test_fuzz_json_documents(warehouse):
    """JSON documents (arrays, API pages, single objects), whole, gzip-cut or garbled."""
    wh, folder = warehouse
    seen = Counter()
    fmts = sorted(logformats.FORMATS)
    records = st.sampled_from(fmts).flatmap(lambda f: st.lists(mutated(bases(f)), min_size=BATCH,
                                                               max_size=BATCH))

    @FUZZ
    @given(recs=records, shape=st.sampled_from(["array", "page", "object", "lines"]),
           damage=st.sampled_from(["none", "none", "cut", "gzip-cut", "bytes"]),
           where=st.floats(0, 1), junk=st.binary(max_size=8))
    def run(recs, shape, damage, where, junk):
        n = next(_serial)
        items = [dump(r).decode("utf-8", "surrogatepass") for r in recs]
        text = {"array": "[" + ",\n".join(items) + "]",
                "page": '{"data": [' + ", ".join(items) + '], "meta": {"page": 1}}',
                "object": items[0], "lines": "\n".join(items)}[shape]
        data = text.encode("utf-8", "surrogatepass")
        cut = int(len(data) * where)
        if damage == "cut":
            data = data[:cut]
        elif damage == "bytes":
            data = data[:cut] + junk + data[cut:]
        path = folder / f"doc-{n}.json"
        if damage == "gzip-cut":
            packed = gzip.compress(data)
            path = folder / f"doc-{n}.json.gz"
            path.write_bytes(packed[: max(20, int(len(packed) * where))])
        else:
            path.write_bytes(data)
        try:
            result = ingest_records(wh, path, "auto", OPTIONS)
        except IngestError as exc:  # a document that is not JSON at all cannot be read
            assert damage in ("cut", "bytes") and str(exc), exc
        else:
            check_stored(wh, str(path), result, set())
        seen["records"] += len(recs)

    run()
    assert seen["records"] >= RECORDS


def _flat(record: object) -> dict[str, str]:
    """A record as an export table row: every value as text (objects as JSON)."""
    def text(value: object) -> str:
        return value if isinstance(value, str) else dump(value).decode("utf-8", "surrogatepass")

    if not isinstance(record, dict):
        return {"value": text(record)}
    return {str(k): text(v) for k, v in record.items()}


def _table_rows(fmt: str) -> st.SearchStrategy:
    return st.lists(mutated(bases(fmt)).map(_flat), min_size=BATCH, max_size=BATCH)


def test_fuzz_csv(warehouse):
    """CSV exports of mutated records, with cells of random text and rows of random bytes."""
    wh, folder = warehouse
    seen = Counter()

    @FUZZ
    @given(fmt=st.sampled_from(sorted(logformats.FORMATS)).flatmap(
               lambda f: st.tuples(st.just(f), _table_rows(f), st.lists(noise, max_size=3))),
           gz=st.booleans())
    def run(fmt, gz):
        name, rows, junk = fmt
        n = next(_serial)
        columns = sorted({k for r in rows for k in r})
        out = io.StringIO()
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(rows)
        data = out.getvalue().encode("utf-8", "surrogatepass") + b"\n".join(junk)
        path = folder / (f"t-{n}.csv.gz" if gz else f"t-{n}.csv")
        path.write_bytes(gzip.compress(data) if gz else data)
        result = ingest_records(wh, path, "auto", OPTIONS)
        check_stored(wh, str(path), result, set())
        seen["records"] += len(rows)

    run()
    assert seen["records"] >= RECORDS


def test_fuzz_parquet(warehouse):
    """Parquet exports of mutated records (text columns, JSON text in them)."""
    wh, folder = warehouse
    seen = Counter()

    @FUZZ
    @given(fmt=st.sampled_from(sorted(logformats.FORMATS)).flatmap(
        lambda f: st.tuples(st.just(f), _table_rows(f))))
    def run(fmt):
        _, rows = fmt
        n = next(_serial)
        columns = sorted({k for r in rows for k in r})
        clean = [{c: r.get(c, None) for c in columns} for r in rows]
        for r in clean:  # Arrow strings are UTF-8: a lone surrogate cannot even be written
            for c, v in r.items():
                if isinstance(v, str):
                    r[c] = v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        path = folder / f"t-{n}.parquet"
        pq.write_table(pa.Table.from_pylist(clean, schema=pa.schema([(c, pa.string()) for c in columns])),
                       path)
        result = ingest_records(wh, path, "auto", OPTIONS)
        check_stored(wh, str(path), result, set())
        seen["records"] += len(rows)

    run()
    assert seen["records"] >= RECORDS
