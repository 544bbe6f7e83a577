"""Ingest: production log files into `logs`, idempotent on request_id; bad records into `rejects`.

A malformed record never stops the load: it becomes a `rejects` row with its source, position, a
reason and the raw text (truncated), and the next record is read.

Two paths, one result:
- JSON Lines files of a format with a SQL reader (`openai`, `langfuse`, `langfuse_export`,
  `litellm`: the common cases, and the big ones) are read by DuckDB itself: `read_json`, the checks
  and the insert are one streaming statement on every core, and memory stays flat whatever the file
  size. Only when some lines were not stored does a second, line-by-line pass run, to find those
  lines: the `openai` reader gives each its reason; the others leave a line they do not read as the
  parser does (an unusual shape, a bad value) to the Python parser, which reads just those lines;
- every other format and file type goes record by record through `logformats.parse`, in batches.
Tests hold the two paths to the same rows and reasons, on fuzzed input.
The SQL path reads `.jsonl`/`.ndjson` files plain, `.gz` or `.zst` (DuckDB decompresses both, every
zstd frame). A file it cannot take whole goes the record path instead, which reads any file as far
as it goes and rejects what it cannot use: a gzip or zstd stream cut off or damaged (DuckDB reads a
zstd file cut off at a frame's end as if it ended there: such a file is found by walking its frame
headers first), a line longer than read_json reads (or that runs DuckDB out of memory), a carriage
return or \\x01 byte inside a line (DuckDB's two readers then see other lines), a name DuckDB would
take for a glob.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from replaybench import progress
from replaybench.config import Ingest
from replaybench.errors import IngestError
from replaybench.ingest import formats as logformats
from replaybench.ingest import parallel
from replaybench.ingest.formats import LOG_SCHEMA, IngestOptions, Reject
from replaybench.ingest.readers import (
    Unreadable,
    compression,
    json_value,
    line_value,
    plain_name,
    raw_lines,
    read_records,
    zstd_cut_off,
)
from replaybench.warehouse import Warehouse, memory, open_warehouse

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000
RAW_CHARS = 2_000
SNIFF_RECORDS = 20
MEMORY_LIMIT = 10**9  # bytes: the fast path's DuckDB memory at least (it streams: plenty)
POLL_S = 0.2  # how often the fast path asks DuckDB how far its statement has got
LOG_COLUMNS = list(LOG_SCHEMA)
REASON_CHARS = 500
GLOB_CHARS = "*?["  # DuckDB expands these in a file name, and would read other files
# what DuckDB raises for a file its readers cannot read to the end (not for a bad line)
UNREADABLE_TO_DUCKDB = (duckdb.IOException, duckdb.InvalidInputException, duckdb.OutOfMemoryException)
# a reason that says the parser itself failed: a bug to report, kept apart from bad input
PARSER_ERROR = "parser error"


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


def _fast_path_reads(path: Path) -> bool:
    """A JSON Lines file (plain, .gz or .zst) DuckDB can be given by name (it would take `*`, `?`,
    `[` for a glob)."""
    return (plain_name(path).endswith((".jsonl", ".ndjson"))
            and not any(c in str(path) for c in GLOB_CHARS))


def sniff(path: Path, options: IngestOptions | None = None) -> str | None:
    """The format of a file's first records, if they agree on one."""
    found = set()
    limit = (options or IngestOptions()).max_line_bytes
    for _, record in islice(read_records(path, limit), SNIFF_RECORDS):
        if isinstance(record, dict):
            try:
                found.add(logformats.detect(record))
            except (Reject, RecursionError):
                continue
    return found.pop() if len(found) == 1 else None


def _check_path(path: Path) -> None:
    """An IngestError naming what is wrong with a path that is not a readable file."""
    if path.is_dir():
        raise IngestError(f"{path} is a directory: name the log files in it (your shell expands "
                          f"{path}/*.jsonl)")
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path} is not a regular file")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise IngestError(f"{path} cannot be read: {exc.strerror}") from None


def ingest_file(wh: Warehouse, path: Path, fmt: str = "auto",
                options: IngestOptions | None = None, source: str | None = None) -> IngestResult:
    """Load one file into `logs`; rows already present (by request_id) are counted, not added.
    `source` is what `logs.source` and `rejects.source` name (default: the path; a file fetched
    from object storage names its URL). Its progress is a phase named after the file (bytes on
    the fast path, else records)."""
    options = options or IngestOptions()
    source = source or str(path)
    _check_path(path)
    if fmt != "auto" and fmt not in logformats.FORMATS:
        raise IngestError(f"unknown format {fmt!r}; known: auto, {', '.join(logformats.FORMATS)}")
    with memory.writing(wh.con, wh.path, memory.WRITTEN_BY_INGEST):
        return _ingest_file(wh, path, fmt, options, source)


def _ingest_file(wh: Warehouse, path: Path, fmt: str, options: IngestOptions,
                 source: str) -> IngestResult:
    name, key = f"ingest {path.name}", f"ingest-{progress.slug(path.name)}"
    if _fast_path_reads(path):
        named = sniff(path, options) if fmt == "auto" else fmt
        if named == "openai" or (named in logformats.FORMATS and logformats.FORMATS[named].sql):
            with progress.phase(name, path.stat().st_size, key=key, unit="B") as phase:
                if named == "openai":
                    result = ingest_openai_jsonl(wh, path, options, phase, source)
                else:  # the lines the SQL leaves to Python are parsed as asked: detected, with auto
                    result = ingest_json_lines(wh, path, named, options, phase, source, parse_as=fmt)
                phase.advance(phase.total - phase.done)
                return result
    with progress.phase(name, key=key, unit="records") as phase:
        return ingest_records(wh, path, fmt, options, phase, source)


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


class _DuckDBCannotRead(Exception):
    """DuckDB cannot read the file, or its two readers disagree on it: nothing is stored, and the
    record path reads it instead."""


def ingest_openai_jsonl(wh: Warehouse, path: Path, options: IngestOptions,
                        phase: progress.Phase | None = None, source: str | None = None) -> IngestResult:
    """The fast path: one streaming INSERT … SELECT reads (with `read_json`), checks and stores an
    `openai` JSONL file in DuckDB. Only when some lines were not stored does a second pass, line by
    line, say why — and store any good line the first reader could not read. It all commits or
    rolls back as one: a file DuckDB cannot read to the end goes the record path."""
    return _read_by_duckdb(_ingest_openai_jsonl, wh, path, "openai", options, phase, source)


def ingest_json_lines(wh: Warehouse, path: Path, fmt: str, options: IngestOptions,
                      phase: progress.Phase | None = None, source: str | None = None,
                      parse_as: str | None = None) -> IngestResult:
    """A JSON Lines file of a format with a SQL reader (`Format.sql`): one streaming INSERT …
    SELECT stores the lines the SQL reads as the parser does. Only when some lines were not stored
    does DuckDB look again: lines that give no row are counted, and the lines left to the parser
    are found by their text and parsed in Python as `parse_as` (default: `fmt`; `auto` detects
    each). It all commits or rolls back as one: a file DuckDB cannot read to the end goes the
    record path."""
    parse_as = parse_as or fmt

    def read(wh, path, options, phase, source, dedupe):
        return _ingest_json_lines(wh, path, fmt, parse_as, options, phase, source, dedupe)

    return _read_by_duckdb(read, wh, path, parse_as, options, phase, source)


def _read_by_duckdb(read, wh: Warehouse, path: Path, fmt: str, options: IngestOptions,
                    phase: progress.Phase | None, source: str | None) -> IngestResult:
    """`read` the file with DuckDB; once more with one line kept per id when the file repeats an
    id; record by record when DuckDB cannot read it."""
    try:
        if compression(path) == "zstd" and zstd_cut_off(path):
            raise _DuckDBCannotRead("the zstd file ends inside a frame (DuckDB would read it as "
                                    "if it ended at the last whole one)")
        try:
            return read(wh, path, options, phase, source, dedupe=False)
        except duckdb.ConstraintException:  # the file repeats an id: once more, one line per id
            return read(wh, path, options, None, source, dedupe=True)
    except _DuckDBCannotRead as exc:
        log.info("%s: read record by record, as DuckDB cannot read it: %s", path, exc)
        return ingest_records(wh, path, fmt, options, source=source)


@contextmanager
def _duckdb_reading(wh: Warehouse, phase: progress.Phase | None) -> Iterator[None]:
    """The settings of a streaming read by DuckDB, made outside the transaction (a failed statement
    leaves it refusing any more), with the phase following DuckDB's own progress, and the temp
    tables of the line-by-line pass dropped afterwards."""
    # DuckDB keeps what it wrote in its buffer pool up to its limit; a streaming insert needs
    # no more than MEMORY_LIMIT, and memory then stays flat however big the file
    # the query profile says how many lines read_json read (_rows_read_json_read)
    wh.con.execute("PRAGMA enable_profiling = 'no_output'")
    try:
        with memory.at_least(wh.con, wh.path, MEMORY_LIMIT), _follow(wh, phase):
            yield
    finally:
        wh.con.execute("PRAGMA disable_profiling")
        for table in ("_staged", "_rb_bad_lines", "_rb_bad_scans"):
            wh.execute(f"DROP TABLE IF EXISTS {table}")


def _count_lines(wh: Warehouse, params: dict, scanned: int | None) -> tuple[int, int]:
    """(non-blank lines DuckDB can decode, lines it cannot), as read_csv sees them; the file goes
    the record path when read_json read another number of lines."""
    lines = wh.query("count_lines", path=params["path"], max_line=params["max_line"]).fetchone()[0]
    undecodable = wh.execute("SELECT count(*) FROM _rb_bad_lines").fetchone()[0]
    if scanned is not None and scanned != lines + undecodable:
        # read_csv also ends a line at a carriage return and cuts it at its \x01 delimiter: the
        # line by line pass would not see the lines read_json read
        raise _DuckDBCannotRead(f"read_json read {scanned:,} lines, read_csv {lines + undecodable:,}")
    return lines, undecodable


def _ingest_openai_jsonl(wh: Warehouse, path: Path, options: IngestOptions,
                         phase: progress.Phase | None, source: str | None, dedupe: bool) -> IngestResult:
    source = source or str(path)
    # an absolute name: DuckDB would expand a leading ~ or read a scheme:// prefix
    params = {"path": str(path.absolute()), "pv_path": "$." + json.dumps(options.prompt_version_key),
              "max_chars": options.max_field_chars, "max_line": options.max_line_bytes}
    fast = "openai_log_lines($path, $pv_path, $max_chars, $max_line, true)"
    by_line = "openai_log_lines($path, $pv_path, $max_chars, $max_line, false)"
    wh.query("log_line_macros")
    wh.query("openai_log_lines")
    with _duckdb_reading(wh, phase), wh.transaction():
        before = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
        # DuckDB's profile of the insert says how many lines read_json read (one row for each
        # non-blank line, good or not); when every one of them was stored, the file is done
        scanned = _insert_new(wh, source, "openai", fast, params, dedupe)
        added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        if scanned == added:
            return IngestResult(read=added, ingested=added)  # every line new and good
        lines, undecodable = _count_lines(wh, params, scanned)
        result = IngestResult(read=lines + undecodable, ingested=added)
        if added == lines and not undecodable:
            return result
        # some lines were not stored: rejected, already present, or unreadable to read_json
        wh.execute(f"""CREATE OR REPLACE TEMP TABLE _staged AS
                       SELECT reason, md5(line) AS key, strlen(line) AS size FROM {by_line} AS s
                       WHERE reason IS NOT NULL
                          OR NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)""",
                   params)
        if wh.execute("SELECT count(*) FROM _staged WHERE reason IS NULL").fetchone()[0]:
            _insert_new(wh, source, "openai", by_line, params, dedupe)
            result.ingested = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        bad = wh.execute("SELECT count(*) FROM _staged WHERE reason IS NOT NULL").fetchone()[0]
        rejects = _locate_rejects(wh, path, source, options, undecodable) if bad or undecodable else []
        if lines - bad - result.ingested < 0:
            raise _DuckDBCannotRead("its lines do not add up")
        if rejects:
            wh.insert("rejects", pl.DataFrame(rejects), "ON CONFLICT DO NOTHING")
        result.duplicates = lines - bad - result.ingested
        result.rejected = len(rejects)
        result.reasons = Counter(r["reason"].split(":")[0] for r in rejects)
        return result


def _ingest_json_lines(wh: Warehouse, path: Path, fmt: str, parse_as: str, options: IngestOptions,
                       phase: progress.Phase | None, source: str | None, dedupe: bool) -> IngestResult:
    source = source or str(path)
    reader = logformats.FORMATS[fmt].sql
    own = reader.params(options)
    # an absolute name: DuckDB would expand a leading ~ or read a scheme:// prefix
    params = {"path": str(path.absolute()), "pv_path": "$." + json.dumps(options.prompt_version_key),
              "max_chars": options.max_field_chars, "max_line": options.max_line_bytes, **own}
    args = "$path, $pv_path, $max_chars, $max_line, {fast}" + "".join(f", ${name}" for name in own)
    fast = f"{reader.macro}({args.format(fast='true')})"
    by_line = f"{reader.macro}({args.format(fast='false')})"
    wh.query("log_line_macros")
    wh.query(reader.macro)
    with _duckdb_reading(wh, phase), wh.transaction():
        before = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
        scanned = _insert_new(wh, source, fmt, fast, params, dedupe, stored="lane = 'store'")
        added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        if scanned == added:
            return IngestResult(read=added, ingested=added)  # every line new and stored
        # some lines were not stored: they give no row, are already present, or are the parser's
        left, readable = wh.execute(f"SELECT count(*) FILTER (lane = 'python'), count(*) FILTER "
                                    f"(lane = 'store') FROM {fast}", params).fetchone()
        if not left and scanned is not None:
            return IngestResult(read=scanned, ingested=added, duplicates=readable - added)
        lines, undecodable = _count_lines(wh, params, scanned)
        wh.execute(f"""CREATE OR REPLACE TEMP TABLE _staged AS
                       SELECT lane, CASE lane WHEN 'python' THEN md5(line) END AS key,
                              CASE lane WHEN 'python' THEN strlen(line) END AS size
                       FROM {by_line} WHERE lane <> 'skip'""", params)
        readable = wh.execute("SELECT count(*) FROM _staged WHERE lane = 'store'").fetchone()[0]
        if readable > added:  # lines read_json could not read, and the line by line reader could
            _insert_new(wh, source, fmt, by_line, params, dedupe, stored="lane = 'store'")
            added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        parsed = _store_records(wh, _found_lines(wh, path, options, undecodable), parse_as, options,
                                source=source)
        return IngestResult(read=lines + undecodable, ingested=added + parsed.ingested,
                            duplicates=readable - added + parsed.duplicates, rejected=parsed.rejected,
                            reasons=parsed.reasons)


def _locate_rejects(wh: Warehouse, path: Path, source: str, options: IngestOptions,
                    undecodable: int) -> list[dict]:
    """The lines the SQL pass of the `openai` reader rejected (_staged, with their reasons) and the
    lines it could not decode, found again by reading the file line by line as the record path
    does: their line numbers, reasons (the record path's own words) and raw text."""
    reasons = dict(wh.execute("SELECT DISTINCT key, reason FROM _staged WHERE reason IS NOT NULL").fetchall())
    found = []
    for n, key, line in _lines_by_text(wh, path, options, "reason IS NOT NULL", undecodable):
        if isinstance(line, Unreadable):
            found.append({"position": n, "reason": line.reason, "raw": line.raw})
            continue
        text, reason = line.decode("utf-8", "replace"), reasons[key]
        value = json_value(text)
        if reason == "invalid JSON":  # DuckDB says no more: the record path says why
            reason = value.reason if isinstance(value, Unreadable) else reason
        elif isinstance(value, dict):  # in the record path's own words (a size counted as
            # Python counts it, a record of another format named)
            reason = next((str(item) for item in parse_record(value, "openai", options)
                           if isinstance(item, Reject)), reason)
        found.append({"position": n, "reason": reason, "raw": text})
    return [{"source": source, "position": r["position"], "item": 0,
             "reason": _clean(r["reason"], REASON_CHARS), "raw": _clean(r["raw"], RAW_CHARS)}
            for r in found]


def _found_lines(wh: Warehouse, path: Path, options: IngestOptions,
                 undecodable: int) -> Iterator[tuple[int, Any]]:
    """The lines a SQL reader left to the parser (_staged) and the lines it could not decode,
    found again by reading the file line by line: (line number, the record or an Unreadable)."""
    for n, _, line in _lines_by_text(wh, path, options, "lane = 'python'", undecodable):
        yield n, line if isinstance(line, Unreadable) else line_value(line)


def _lines_by_text(wh: Warehouse, path: Path, options: IngestOptions, which: str,
                   undecodable: int) -> Iterator[tuple[int, str | None, bytes | Unreadable]]:
    """The lines of _staged picked by `which` (known by the md5 and byte length of their text),
    and the lines DuckDB could not decode, read again from the file as the record path reads it:
    (line number, md5, the line without its line end) or (line number, None, an Unreadable in the
    record path's words). read_csv also ends a line at a lone carriage return: when what it saw
    is not found line for line, the file goes the record path (_DuckDBCannotRead)."""
    wanted: Counter = Counter()
    sizes = set()
    for key, size, n in wh.execute(f"SELECT key, size, count(*) FROM _staged WHERE {which} GROUP BY ALL"):
        wanted[key] += n
        sizes.add(size)
    seen: Counter = Counter()
    for n, raw in raw_lines(path, options.max_line_bytes):
        if isinstance(raw, Unreadable):  # DuckDB read the file whole: not expected here
            raise _DuckDBCannotRead(raw.reason)
        if undecodable and not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                seen["undecodable"] += 1
                yield n, None, line_value(raw)  # an Unreadable, in the record path's words
                continue
        body = raw.rstrip(b"\r\n")
        if len(body) not in sizes:  # the md5 of only the lines that may be wanted
            continue
        key = hashlib.md5(body).hexdigest()
        if key in wanted:
            seen[key] += 1
            yield n, key, body
    if seen.pop("undecodable", 0) != undecodable or seen != wanted:
        raise _DuckDBCannotRead("read_csv split its lines otherwise than the file's line ends")


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


def _insert_new(wh: Warehouse, source: str, fmt: str, lines_sql: str, params: dict, dedupe: bool,
                stored: str = "reason IS NULL") -> int | None:
    """Store the lines `stored` picks whose request_id is new; return how many rows `read_json`
    read, when DuckDB's profile of the insert says so (None otherwise). An anti-join, not ON
    CONFLICT: DuckDB's conflict path costs twice as much. A file that repeats an id inside itself
    (rare) fails with a ConstraintException, and is stored again with `dedupe`: one line kept per
    id. A file DuckDB cannot read to the end raises _DuckDBCannotRead."""
    cols = ", ".join(LOG_COLUMNS[:-1])
    insert = f"""INSERT INTO logs ({cols}, source_format, source)
                 SELECT {cols}, $fmt, $source FROM {lines_sql} AS s
                 WHERE {stored}
                   AND NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)"""
    if dedupe:
        insert += " QUALIFY row_number() OVER (PARTITION BY s.request_id) = 1"
    try:
        wh.execute(insert, {**params, "source": source, "fmt": fmt})  # the caller turns profiling on
    except UNREADABLE_TO_DUCKDB as exc:
        raise _DuckDBCannotRead(str(exc).split("\n")[0]) from None
    return _rows_read_json_read(wh.con.get_profiling_information(format="json"))


def _clean(text: str, limit: int) -> str:
    """Text cut to `limit` characters, any half surrogate pair escaped, so that it can be stored."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _raw(record: object) -> str:
    """A record as JSON text for its reject row (the start of it, if it will not serialize)."""
    try:
        return json.dumps(record, default=str)[:RAW_CHARS]
    except (RecursionError, ValueError):  # nested deeper than json.dumps goes
        return ""


def parse_record(record: object, fmt: str, options: IngestOptions) -> list[dict | Reject]:
    """`logformats.parse` as the record path calls it: a record that cannot be used is a list
    holding its Reject. A parser that fails is a bug, but still only this record's reject
    (reason `parser error: …`), never the end of the load."""
    try:
        return logformats.parse(record, fmt, options)
    except Reject as exc:
        return [exc]
    except Exception as exc:  # the load goes on; the reason names the bug
        log.warning("the %s parser failed on a record: %r", fmt, exc)
        return [Reject(f"{PARSER_ERROR}: {type(exc).__name__}: {exc} (a replaybench bug: please "
                       "report it)")]


def ingest_records(wh: Warehouse, path: Path, fmt: str, options: IngestOptions,
                   phase: progress.Phase | None = None, source: str | None = None) -> IngestResult:
    """The general path: record by record through the format parsers, stored in batches; a big
    JSON Lines file's records are parsed on every core (`parallel`). `phase` counts the records
    read, a batch at a time."""
    if parallel.worth_it(path):
        store = Store(wh, source or str(path), phase)
        parallel.ingest_on_every_core(store, path, fmt, options)
        return store.result
    # records pass through their format's join (OTel content in log events meets its spans)
    records = logformats.join_records(read_records(path, options.max_line_bytes), fmt)
    return _store_records(wh, records, fmt, options, phase, source or str(path))


def _store_records(wh: Warehouse, records: Iterable[tuple[int, Any]], fmt: str, options: IngestOptions,
                   phase: progress.Phase | None = None, source: str = "") -> IngestResult:
    """(position, record or Unreadable) pairs parsed and stored in batches, bad ones as rejects."""
    store = Store(wh, source, phase)
    for position, record in records:
        store.record(position, record, fmt, options)
    store.flush()
    return store.result


def parsed_rows(position: int, record: Any, fmt: str,
                options: IngestOptions) -> tuple[list[dict], list[dict]]:
    """One record (or Unreadable) as its `logs` rows and its reject rows (without their source)."""
    if isinstance(record, Unreadable):
        return [], [_reject_row(position, record.reason, record.raw)]
    rows, rejects = [], []
    parsed = parse_record(record, fmt, options)
    for index, item in enumerate(parsed, 1):  # a record may hold several rows (OTLP spans)
        if isinstance(item, Reject):
            rejects.append(_reject_row(position, str(item), _raw(record), index if len(parsed) > 1 else 0))
        else:
            rows.append(item)
    return rows, rejects


def _reject_row(position: int, reason: str, raw: str, item: int = 0) -> dict:
    return {"position": position, "item": item, "reason": _clean(reason, REASON_CHARS) or "rejected",
            "raw": _clean(raw, RAW_CHARS)}


class Store:
    """Rows and rejects of one source, stored in batches of BATCH_ROWS, and counted. `phase`
    counts the records read, a batch at a time."""

    def __init__(self, wh: Warehouse, source: str, phase: progress.Phase | None = None):
        self.wh, self.source, self.phase = wh, source, phase
        self.result = IngestResult()
        self.rows: list[dict] = []
        self.rejects: list[dict] = []
        self._counted = 0

    def record(self, position: int, record: Any, fmt: str, options: IngestOptions) -> None:
        """Parse one record (or Unreadable) and keep its rows and rejects."""
        rows, rejects = parsed_rows(position, record, fmt, options)
        self.add(1, rows, rejects)

    def add(self, read: int, rows: list[dict] | pl.DataFrame, rejects: list[dict], parsed: int = 0) -> None:
        """Keep the rows and rejects of `read` records: rows as dicts, or as a frame of LOG_SCHEMA
        with its source, one row per request id, from `parsed` rows (`unique_rows`)."""
        self.result.read += read
        for r in rejects:
            self.result.rejected += 1
            self.result.reasons[r["reason"].split(":")[0]] += 1
            self.rejects.append({"source": self.source, **r})
        if isinstance(rows, pl.DataFrame):
            self.flush()  # what came before goes first: of two rows with one id, the first stays
            self._insert(rows, parsed)
        else:
            self.rows.extend(rows)
            if len(self.rows) >= BATCH_ROWS:
                self.flush()

    def flush(self) -> None:
        if self.phase is not None:
            self.phase.advance(self.result.read - self._counted)
            self._counted = self.result.read
        if self.rows:
            self._insert(unique_rows(self.rows, self.source), len(self.rows))
            self.rows.clear()
        if self.rejects:
            self.wh.insert("rejects", pl.DataFrame(self.rejects), "ON CONFLICT DO NOTHING")
            self.rejects.clear()

    def _insert(self, frame: pl.DataFrame, parsed: int) -> None:
        """The rows whose request id is new (an anti-join: DuckDB's ON CONFLICT costs half as much again)."""
        added = 0
        if not frame.is_empty():
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            with self.wh.registered("_incoming", frame):
                inserted = self.wh.execute(f"""
                    INSERT INTO logs ({cols}) SELECT {cols} FROM _incoming AS i
                    WHERE NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = i.request_id)""")
                added = inserted.fetchone()[0]
        self.result.ingested += added
        self.result.duplicates += parsed - added


def unique_rows(rows: list[dict], source: str) -> pl.DataFrame:
    """`logs` rows as a frame with their source, the first of those with one request id."""
    frame = pl.DataFrame(rows, schema=LOG_SCHEMA, orient="row").with_columns(pl.lit(source).alias("source"))
    return frame.unique(subset="request_id", keep="first", maintain_order=True)


def ingest_paths(warehouse: Path, paths: list[Path], fmt: str = "auto",
                 settings: Ingest | None = None) -> IngestResult:
    """Load several files; the counts are added up."""
    total = IngestResult()
    options = IngestOptions.from_settings(settings or Ingest())
    with open_warehouse(warehouse) as wh:
        for path in paths:
            total.add(ingest_file(wh, Path(path), fmt, options))
    return total

