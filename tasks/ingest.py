"""Ingest: production log files into `logs`, idempotent on request_id; bad records into `rejects`.

A malformed record never stops the load: it becomes a `rejects` row with its source, position, a
reason and the raw text (truncated), and the next record is read.

Two paths, one result:
- `openai` JSONL files (the common case, and the big one) are read by DuckDB itself
  (`sql/openai_log_lines.sql`): `read_json`, the checks and the insert are one streaming statement
  on every core, and memory stays flat whatever the file size; a second, line-by-line pass runs
  only for a file with lines that were not stored, to give each its reason and line number;
- every other format and file type goes record by record through `logformats.parse`, in batches.
The SQL mirrors the Python checks one for one; a test holds the two to the same rows and reasons.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import logformats, progress
from replaybench.config import Ingest
from replaybench.errors import IngestError
from replaybench.logformats import LOG_SCHEMA, IngestOptions, Reject
from replaybench.readers import Unreadable, read_records
from replaybench.warehouse import Warehouse, open_warehouse

BATCH_ROWS = 20_000
RAW_CHARS = 2_000
SNIFF_RECORDS = 20
MEMORY_LIMIT = "1GB"  # the fast path's DuckDB memory: it streams, so this is plenty
POLL_S = 0.2  # how often the fast path asks DuckDB how far its statement has got
LOG_COLUMNS = list(LOG_SCHEMA)


@dataclass
class IngestResult:
    """What one ingest did, file by file added up."""

    read: int = 0
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, other: IngestResult) -> None:
        self.read += other.read
        self.ingested += other.ingested
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.reasons.update(other.reasons)

    def summary(self) -> str:
        line = (f"read {self.read:,} · ingested {self.ingested:,} · already present "
                f"{self.duplicates:,} · rejected {self.rejected:,}")
        if self.reasons:
            common = ", ".join(f"{r} ({n})" for r, n in self.reasons.most_common(3))
            line += f" — commonest reasons: {common}"
        return line


def _is_jsonl(path: Path) -> bool:
    return path.name.removesuffix(".gz").endswith((".jsonl", ".ndjson"))


def sniff(path: Path) -> str | None:
    """The format of a file's first records, if they agree on one."""
    found = set()
    for _, record in islice(read_records(path), SNIFF_RECORDS):
        if isinstance(record, dict):
            try:
                found.add(logformats.detect(record))
            except Reject:
                continue
    return found.pop() if len(found) == 1 else None


def ingest_file(wh: Warehouse, path: Path, fmt: str = "auto",
                options: IngestOptions | None = None) -> IngestResult:
    """Load one file into `logs`; rows already present (by request_id) are counted, not added.
    Its progress is a phase named after the file (bytes on the fast path, else records)."""
    options = options or IngestOptions()
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt != "auto" and fmt not in logformats.FORMATS:
        raise IngestError(f"unknown format {fmt!r}; known: auto, {', '.join(logformats.FORMATS)}")
    name, key = f"ingest {path.name}", f"ingest-{progress.slug(path.name)}"
    if _is_jsonl(path) and (fmt == "openai" or (fmt == "auto" and sniff(path) == "openai")):
        with progress.phase(name, path.stat().st_size, key=key, unit="B") as phase:
            result = ingest_openai_jsonl(wh, path, options, phase)
            phase.advance(phase.total - phase.done)
            return result
    with progress.phase(name, key=key, unit="records") as phase:
        return ingest_records(wh, path, fmt, options, phase)


@contextmanager
def _follow(wh: Warehouse, phase: progress.Phase | None) -> Iterator[None]:
    """Move `phase` along with DuckDB's own progress of the statement running meanwhile on the
    warehouse connection (`query_progress()`, asked from a thread of its own; DuckDB answers
    while it works, and only when its progress bar is on — printing it stays off)."""
    if phase is None or not phase.total:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(POLL_S):
            try:
                percent = wh.con.query_progress()
            except duckdb.Error:
                return
            target = int(phase.total * min(percent, 100.0) / 100)
            if target > phase.done:
                phase.advance(target - phase.done)

    wh.execute("SET enable_progress_bar = true")
    wh.execute("SET enable_progress_bar_print = false")
    poller = threading.Thread(target=poll, name="ingest-progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()
        wh.execute("RESET enable_progress_bar")
        wh.execute("RESET enable_progress_bar_print")


def ingest_openai_jsonl(wh: Warehouse, path: Path, options: IngestOptions,
                        phase: progress.Phase | None = None) -> IngestResult:
    """The fast path: one streaming INSERT … SELECT reads (with `read_json`), checks and stores an
    `openai` JSONL file in DuckDB. Only when some lines were not stored does a second pass, line by
    line, say why — and store any good line the first reader could not read."""
    source = str(path)
    params = {"path": source, "pv_path": "$." + json.dumps(options.prompt_version_key),
              "max_chars": options.max_field_chars}
    fast = "openai_log_lines($path, $pv_path, $max_chars, true)"
    by_line = "openai_log_lines($path, $pv_path, $max_chars, false)"
    wh.run("openai_log_lines")
    # DuckDB keeps what it wrote in its buffer pool up to its limit (80 % of RAM by default);
    # a streaming insert needs far less, and memory then stays flat however big the file
    wh.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        before = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
        # DuckDB's profile of the insert says how many lines read_json read (one row for each
        # non-blank line, good or not); when every one of them was stored, the file is done
        with _follow(wh, phase):
            scanned = _insert_new(wh, source, fast, params)
        added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        if scanned == added:
            return IngestResult(read=added, ingested=added)  # every line new and good
        lines = wh.run("count_lines", path=source).fetchone()[0]  # lists undecodable ones too
        undecodable = wh.execute("SELECT count(*) FROM _rb_bad_lines").fetchone()[0]
        result = IngestResult(read=lines + undecodable, ingested=added)
        if added == lines and not undecodable:
            return result
        # some lines were not stored: rejected, already present, or unreadable to read_json
        wh.execute(f"""CREATE OR REPLACE TEMP TABLE _staged AS SELECT reason, line FROM {by_line} AS s
                       WHERE reason IS NOT NULL
                          OR NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)""",
                   params)
        if wh.execute("SELECT count(*) FROM _staged WHERE reason IS NULL").fetchone()[0]:
            _insert_new(wh, source, by_line, params)
            result.ingested = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        bad = wh.execute("SELECT count(*) FROM _staged WHERE reason IS NOT NULL").fetchone()[0]
        if bad or undecodable:
            _store_rejects(wh, source)
        result.duplicates = lines - bad - result.ingested
        result.rejected = bad + undecodable
        result.reasons = Counter(dict(wh.execute(
            """SELECT split_part(reason, ':', 1), count(*) FROM (
                 SELECT reason FROM _staged WHERE reason IS NOT NULL
                 UNION ALL SELECT 'invalid UTF-8' FROM _rb_bad_lines)
               GROUP BY 1""")))
        return result
    finally:
        for table in ("_staged", "_reject_positions", "_undecodable", "_rb_bad_lines",
                      "_rb_bad_scans"):
            wh.execute(f"DROP TABLE IF EXISTS {table}")
        wh.execute("RESET memory_limit")


def _rows_read_json_read(profile: str) -> int | None:
    """The rows the READ_JSON scan produced, from a query profile in DuckDB's JSON format; None
    when the profile does not say (the caller then counts the lines itself)."""
    try:
        top = json.loads(profile)
        nodes = [*top.get("operator", []), *top.get("children", [])]
    except (json.JSONDecodeError, AttributeError, TypeError):
        return None
    while nodes:
        node = nodes.pop()
        if node.get("name") == "READ_JSON" or node.get("extra_info", {}).get("Function") == "READ_JSON":
            rows = node.get("operator_cardinality", node.get("intermediate_rows"))
            return rows if isinstance(rows, int) else None
        nodes.extend(node.get("children", []))
    return None


def _insert_new(wh: Warehouse, source: str, lines_sql: str, params: dict) -> int | None:
    """Store the good lines whose request_id is new; return how many rows `read_json` read, when
    DuckDB's profile of the insert says so (None otherwise). An anti-join, not ON CONFLICT:
    DuckDB's conflict path costs twice as much. A file that repeats an id inside itself (rare) is
    stored again with one line kept per id."""
    cols = ", ".join(LOG_COLUMNS[:-1])
    insert = f"""INSERT INTO logs ({cols}, source_format, source)
                 SELECT {cols}, 'openai', $source FROM {lines_sql} AS s
                 WHERE reason IS NULL
                   AND NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)"""
    wh.con.execute("PRAGMA enable_profiling = 'no_output'")
    try:
        try:
            with wh.transaction():
                wh.execute(insert, {**params, "source": source})
                profile = wh.con.get_profiling_information(format="json")
        except duckdb.ConstraintException:
            wh.execute(insert + " QUALIFY row_number() OVER (PARTITION BY s.request_id) = 1",
                       {**params, "source": source})
            profile = wh.con.get_profiling_information(format="json")
    finally:
        wh.con.execute("PRAGMA disable_profiling")
    return _rows_read_json_read(profile)


def _store_rejects(wh: Warehouse, source: str) -> None:
    """The rejected lines (_staged, _rb_bad_lines), with their line numbers, into `rejects`."""
    wh.run("reject_positions", path=source)
    # DuckDB says only "invalid JSON": the few such lines get Python's account of where
    for n, line in wh.execute("SELECT line_number, line FROM _reject_positions "
                              "WHERE reason = 'invalid JSON'"):
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            wh.execute("UPDATE _reject_positions SET reason = $r WHERE line_number = $n",
                       {"r": f"invalid JSON: {exc.msg} at column {exc.colno}", "n": n})
    # lines DuckDB could not decode (invalid UTF-8) were left out of the numbering: put them
    # back as rejects, and shift the line numbers of the lines after them
    wh.execute("""CREATE OR REPLACE TEMP TABLE _undecodable AS
                  SELECT line AS position, line - row_number() OVER (ORDER BY line) AS before,
                         'invalid UTF-8' AS reason, csv_line AS raw FROM _rb_bad_lines""")
    wh.execute("""UPDATE _reject_positions SET line_number = line_number +
                  (SELECT count(*) FROM _undecodable u
                   WHERE u.before < _reject_positions.line_number)""")
    wh.execute("""INSERT INTO rejects (source, position, reason, raw)
                  SELECT $s, line_number, reason, left(line, $raw) FROM _reject_positions
                  UNION ALL SELECT $s, position, reason, left(raw, $raw) FROM _undecodable
                  ON CONFLICT DO NOTHING""", {"s": source, "raw": RAW_CHARS})


def ingest_records(wh: Warehouse, path: Path, fmt: str, options: IngestOptions,
                   phase: progress.Phase | None = None) -> IngestResult:
    """The general path: record by record through the format parsers, stored in batches.
    `phase` counts the records read, a batch at a time."""
    result = IngestResult()
    counted = 0
    rows: list[dict] = []
    rejects: list[dict] = []
    source = str(path)

    def flush() -> None:
        nonlocal counted
        if phase is not None:
            phase.advance(result.read - counted)
            counted = result.read
        if rows:
            frame = pl.DataFrame(rows, schema=LOG_SCHEMA, orient="row").with_columns(
                pl.lit(source).alias("source")
            )
            unique = frame.unique(subset="request_id", keep="first", maintain_order=True)
            added = wh.insert("logs", unique, "ON CONFLICT DO NOTHING")
            result.ingested += added
            result.duplicates += len(frame) - added
            rows.clear()
        if rejects:
            wh.insert("rejects", pl.DataFrame(rejects), "ON CONFLICT DO NOTHING")
            rejects.clear()

    def reject(position: int, reason: str, raw: str, item: int = 0) -> None:
        result.rejected += 1
        result.reasons[reason.split(":")[0]] += 1
        rejects.append({"source": source, "position": position, "item": item, "reason": reason,
                        "raw": raw[:RAW_CHARS]})

    for position, record in read_records(path):
        result.read += 1
        if isinstance(record, Unreadable):
            reject(position, record.reason, record.raw)
            continue
        try:
            parsed = logformats.parse(record, fmt, options)
        except Reject as exc:
            reject(position, str(exc), json.dumps(record, default=str))
            continue
        for index, item in enumerate(parsed, 1):  # a record may hold several rows (OTLP spans)
            if isinstance(item, Reject):
                reject(position, str(item), json.dumps(record, default=str),
                       item=index if len(parsed) > 1 else 0)
            else:
                rows.append(item)
        if len(rows) >= BATCH_ROWS:
            flush()
    flush()
    return result


def ingest_paths(warehouse: Path, paths: list[Path], fmt: str = "auto",
                 settings: Ingest | None = None) -> IngestResult:
    """Load several files; the counts are added up."""
    total = IngestResult()
    options = IngestOptions.from_settings(settings or Ingest())
    with open_warehouse(warehouse) as wh:
        for path in paths:
            total.add(ingest_file(wh, Path(path), fmt, options))
    return total


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(warehouse: Path, paths: list[Path], fmt: str = "auto",
                settings: Ingest | None = None) -> IngestResult:
    return ingest_paths(warehouse, paths, fmt, settings)
