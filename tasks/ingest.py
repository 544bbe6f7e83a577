"""Ingest: production log files into `logs`, idempotent on request_id; bad records into `rejects`.

A malformed record never stops the load: it becomes a `rejects` row with its source, position, a
reason and the raw text (truncated), and the next record is read.

Two paths, one result:
- `openai` JSONL files (the common case, and the big one) are read by DuckDB itself
  (`sql/stage_openai_jsonl.sql`), 128 MB of lines at a time: parsing, checks and the insert run in
  C++ on every core, and memory stays flat whatever the file size;
- every other format and file type goes record by record through `logformats.parse`, in batches.
The SQL mirrors the Python checks one for one; a test holds the two to the same rows and reasons.
"""

from __future__ import annotations

import gzip
import json
import mmap
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

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
CHUNK_BYTES = 128 * 1024 * 1024  # the fast path stages this much of a file at a time
MEMORY_LIMIT = "1GB"             # ... within this much DuckDB memory
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
    """The fast path: DuckDB reads, checks and inserts an `openai` JSONL file, a chunk of lines
    at a time (so memory stays flat whatever the file's size)."""
    result = IngestResult()
    # DuckDB keeps what it wrote in its buffer pool up to its limit (80 % of RAM by default): a
    # chunk at a time needs far less, and memory then stays flat however big the file
    wh.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        with tempfile.TemporaryDirectory(prefix="replaybench-ingest-") as tmp:
            for chunk, offset in line_chunks(path, Path(tmp)):
                result.add(_ingest_chunk(wh, chunk, offset, str(path), options))
                chunk.unlink()
    finally:
        wh.execute("RESET memory_limit")
    return result


def line_chunks(path: Path, folder: Path, size: int = CHUNK_BYTES) -> Iterator[tuple[Path, int]]:
    """The file's lines in plain-text chunk files of about `size` bytes, each with the number of
    lines before it. A plain file is cut at line ends and copied by the kernel; gzip is undone
    here, once."""
    if path.suffix == ".gz":
        yield from _gzip_chunks(path, folder, size)
        return
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start, lines_before, index = 0, 0, 0
        while start < len(data):
            end = data.find(b"\n", min(start + size, len(data)) - 1) + 1 or len(data)
            chunk = folder / f"chunk-{index:05d}.jsonl"
            with open(chunk, "wb") as out:
                os.copy_file_range(fh.fileno(), out.fileno(), end - start, start, 0)
            yield chunk, lines_before
            lines_before += data[start:end].count(b"\n")
            start, index = end, index + 1


def _gzip_chunks(path: Path, folder: Path, size: int) -> Iterator[tuple[Path, int]]:
    lines_before, index, rest = 0, 0, b""
    with gzip.open(path, "rb") as fh:
        while block := fh.read(size):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: a line longer than a chunk
                rest = block
                continue
            block, rest = block[:cut], block[cut:]
            chunk = folder / f"chunk-{index:05d}.jsonl"
            chunk.write_bytes(block)
            yield chunk, lines_before
            lines_before += block.count(b"\n")
            index += 1
    if rest:
        chunk = folder / f"chunk-{index:05d}.jsonl"
        chunk.write_bytes(rest + b"\n")
        yield chunk, lines_before


def _ingest_chunk(wh: Warehouse, chunk: Path, offset: int, source: str,
                  options: IngestOptions) -> IngestResult:
    try:
        wh.run("stage_openai_jsonl", path=str(chunk), pv_key=options.prompt_version_key,
               max_chars=options.max_field_chars)
        read, good = wh.execute("SELECT count(*), count(*) FILTER (WHERE reason IS NULL) "
                                "FROM _staged").fetchone()
        undecodable = wh.execute("SELECT count(*) FROM _rb_bad_lines").fetchone()[0]
        if read > good or undecodable:
            _store_rejects(wh, chunk, offset, source)
        before = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
        cols = ", ".join(LOG_COLUMNS[:-1])
        # new ids only, by an anti-join (DuckDB's ON CONFLICT path costs twice as much); ids
        # repeated inside the chunk, rare, are settled by keeping one of each
        repeated = wh.execute("SELECT count(*) - count(DISTINCT request_id) FROM _staged "
                              "WHERE reason IS NULL").fetchone()[0]
        once = "QUALIFY row_number() OVER (PARTITION BY request_id) = 1" if repeated else ""
        wh.execute(f"""INSERT INTO logs ({cols}, source_format, source)
                       SELECT {cols}, 'openai', $s FROM _staged AS s
                       WHERE reason IS NULL
                         AND NOT EXISTS (SELECT 1 FROM logs WHERE logs.request_id = s.request_id)
                       {once}""", {"s": source})
        added = wh.execute("SELECT count(*) FROM logs").fetchone()[0] - before
        reasons = Counter(dict(wh.execute(
            """SELECT split_part(reason, ':', 1), count(*) FROM (
                 SELECT reason FROM _staged WHERE reason IS NOT NULL
                 UNION ALL SELECT 'invalid UTF-8' FROM _rb_bad_lines) GROUP BY 1""")))
    finally:
        for table in ("_staged", "_reject_positions", "_undecodable", "_rb_bad_lines",
                      "_rb_bad_scans"):
            wh.execute(f"DROP TABLE IF EXISTS {table}")
    return IngestResult(read=read + undecodable, ingested=added, duplicates=good - added,
                        rejected=read - good + undecodable, reasons=reasons)


def _store_rejects(wh: Warehouse, chunk: Path, offset: int, source: str) -> None:
    """The rejected lines of the staged chunk, with their line numbers, into `rejects`."""
    wh.run("reject_positions", path=str(chunk))
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
                  SELECT $s, line_number + $o, reason, left(line, $raw) FROM _reject_positions
                  UNION ALL SELECT $s, position + $o, reason, left(raw, $raw) FROM _undecodable
                  ON CONFLICT DO NOTHING""", {"s": source, "o": offset, "raw": RAW_CHARS})


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
