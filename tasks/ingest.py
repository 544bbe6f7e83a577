"""Ingest: production log files into `logs`, idempotent on request_id; bad records into `rejects`.

A malformed line never stops the load: it becomes a `rejects` row with its source, position, a
reason and the raw text (truncated), and the next line is read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import logformats
from replaybench.errors import IngestError
from replaybench.logformats import LOG_SCHEMA, Reject
from replaybench.readers import Unreadable, read_records
from replaybench.warehouse import Warehouse, open_warehouse

BATCH_ROWS = 20_000
RAW_CHARS = 2_000


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


def ingest_file(wh: Warehouse, path: Path, fmt: str = "auto") -> IngestResult:
    """Load one file into `logs`; rows already present (by request_id) are counted, not added."""
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt != "auto" and fmt not in logformats.FORMATS:
        raise IngestError(f"unknown format {fmt!r}; known: auto, {', '.join(logformats.FORMATS)}")
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

    for position, record in read_records(path):
        result.read += 1
        try:
            if isinstance(record, Unreadable):
                raise Reject(record.reason)
            rows.append(logformats.parse(record, fmt))
        except Reject as exc:
            reason = str(exc)
            result.rejected += 1
            result.reasons[reason.split(":")[0]] += 1
            raw = record.raw if isinstance(record, Unreadable) else json.dumps(record)
            rejects.append({"source": source, "position": position, "reason": reason,
                            "raw": raw[:RAW_CHARS]})
        if len(rows) >= BATCH_ROWS:
            flush()
    flush()
    return result


def ingest_paths(warehouse: Path, paths: list[Path], fmt: str = "auto") -> IngestResult:
    """Load several files; the counts are added up."""
    total = IngestResult()
    with open_warehouse(warehouse) as wh:
        for path in paths:
            total.add(ingest_file(wh, Path(path), fmt))
    return total


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(warehouse: Path, paths: list[Path], fmt: str = "auto") -> IngestResult:
    return ingest_paths(warehouse, paths, fmt)
