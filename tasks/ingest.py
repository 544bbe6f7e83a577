"""Ingest: production log files into `logs`, idempotent on request_id; bad records into `rejects`.

A malformed record never stops the load: it becomes a `rejects` row with its source, position, a
reason and the raw text (truncated), and the next record is read.

Two paths, one result:
- `openai` JSONL files (the common case, and the big one) are read by DuckDB itself
  (`sql/openai_log_lines.sql`): parsing, checks and the insert are one streaming statement on every
  core, and memory stays flat whatever the file size;
- every other format and file type goes record by record through `logformats.parse`, in batches.
The SQL mirrors the Python checks one for one; a test holds the two to the same rows and reasons.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import logformats
from replaybench.config import Ingest
from replaybench.errors import IngestError
from replaybench.logformats import LOG_SCHEMA, IngestOptions, Reject
from replaybench.readers import Unreadable, read_records
from replaybench.warehouse import Warehouse, open_warehouse

BATCH_ROWS = 20_000
RAW_CHARS = 2_000
SNIFF_RECORDS = 20
MEMORY_LIMIT = "1GB"  # the fast path's DuckDB memory: it streams, so this is plenty
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
    """Load one file into `logs`; rows already present (by request_id) are counted, not added."""
    options = options or IngestOptions()
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt != "auto" and fmt not in logformats.FORMATS:
        raise IngestError(f"unknown format {fmt!r}; known: auto, {', '.join(logformats.FORMATS)}")
    if _is_jsonl(path) and (fmt == "openai" or (fmt == "auto" and sniff(path) == "openai")):
        return ingest_openai_jsonl(wh, path, options)
    return ingest_records(wh, path, fmt, options)


def ingest_openai_jsonl(wh: Warehouse, path: Path, options: IngestOptions) -> IngestResult:
    """The fast path: one streaming INSERT … SELECT reads, checks and stores an `openai` JSONL
    file in DuckDB; only when some lines were not stored does a second pass say why."""
    source = str(path)
    lines_of = ("openai_log_lines($path, $pv_path, $max_chars)",
                {"path": source, "pv_path": "$." + json.dumps(options.prompt_version_key),
                 "max_chars": options.max_field_chars})
    wh.run("openai_log_lines")
    # DuckDB keeps what it wrote in its buffer pool up to its limit (80 % of RAM by default);
    # a streaming insert needs far less, and memory then stays flat however big the file
    wh.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        before = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
        _insert_new(wh, source, *lines_of)
        added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        undecodable = wh.execute("SELECT count(*) FROM _rb_bad_lines").fetchone()[0]
        lines = wh.run("count_lines", path=source).fetchone()[0]
        result = IngestResult(read=lines + undecodable, ingested=added)
        if added == lines and not undecodable:
            return result  # every line new and good: nothing else to find out
        # some lines were not stored: rejected, or already present
        wh.execute(f"CREATE OR REPLACE TEMP TABLE _staged AS SELECT reason, line "
                   f"FROM {lines_of[0]} WHERE reason IS NOT NULL", lines_of[1])
        bad = wh.execute("SELECT count(*) FROM _staged").fetchone()[0]
        if bad or undecodable:
            _store_rejects(wh, source)
        result.duplicates = lines - bad - added
        result.rejected = bad + undecodable
        result.reasons = Counter(dict(wh.execute(
            """SELECT split_part(reason, ':', 1), count(*) FROM (
                 SELECT reason FROM _staged UNION ALL SELECT 'invalid UTF-8' FROM _rb_bad_lines)
               GROUP BY 1""")))
        return result
    finally:
        for table in ("_staged", "_reject_positions", "_undecodable", "_rb_bad_lines",
                      "_rb_bad_scans"):
            wh.execute(f"DROP TABLE IF EXISTS {table}")
        wh.execute("RESET memory_limit")


def _insert_new(wh: Warehouse, source: str, lines_sql: str, params: dict) -> None:
    """Store the good lines whose request_id is new. An anti-join, not ON CONFLICT: DuckDB's
    conflict path costs twice as much. A file that repeats an id inside itself (rare) is stored
    again with one line kept per id."""
    cols = ", ".join(LOG_COLUMNS[:-1])
    insert = f"""INSERT INTO logs ({cols}, source_format, source)
                 SELECT {cols}, 'openai', $source FROM {lines_sql} AS s
                 WHERE reason IS NULL
                   AND NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)"""
    try:
        with wh.transaction():
            wh.execute(insert, {**params, "source": source})
    except duckdb.ConstraintException:
        wh.execute(insert + " QUALIFY row_number() OVER (PARTITION BY s.request_id) = 1",
                   {**params, "source": source})


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


def ingest_records(wh: Warehouse, path: Path, fmt: str, options: IngestOptions) -> IngestResult:
    """The general path: record by record through the format parsers, stored in batches."""
    result = IngestResult()
    rows: list[dict] = []
    rejects: list[dict] = []
    source = str(path)

    def flush() -> None:
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
