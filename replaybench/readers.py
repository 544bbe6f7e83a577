"""Log files as records, streamed so memory stays flat, gzip or not:

    .jsonl / .ndjson / other   one JSON value a line
    .json                      a JSON document: an array of records; an object wrapping one list
                               (`{"data": [...]}` from Langfuse's or Phoenix's API) gives that list's
                               elements; an OTLP export (`{"resourceSpans": [...]}`) or any other
                               object is one record
    .parquet                   row batches of `pyarrow.parquet.ParquetFile.iter_batches()`
    .csv / .csv.gz             the stdlib csv reader, header row first

A record that cannot be decoded comes back as `Unreadable` with its reason and raw text, so that the
caller can reject it and go on; a file that cannot be opened as its kind at all is an `IngestError`.
Positions are 1-based: the line of a JSONL file, the element of a JSON array, the data row of a CSV
(header not counted) or Parquet file.

CSV and Parquet cells that hold JSON objects or arrays as text (a `request`, `messages` or `input`
column) are parsed into objects; CSV cells that are integers or decimals become numbers, empty CSV
cells are absent. Parquet timestamps become ISO-8601 strings, so every record is plain JSON.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from replaybench.errors import IngestError

PARQUET_BATCH_ROWS = 2_048
# keys under which API responses wrap their list of records
WRAPPER_KEYS = ("data", "observations", "items", "records", "spans", "requests", "results")

csv.field_size_limit(2**31 - 1)  # request bodies in one cell are far over the 128 KiB default


@dataclass
class Unreadable:
    """A record that could not be decoded."""

    reason: str
    raw: str


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(position, record) for each record of a file; position is the 1-based line, element or row."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        yield from _parquet(path)
    elif name.endswith(".csv"):
        yield from _csv(path)
    elif name.endswith(".json"):
        yield from _json_document(path)
    else:
        yield from _jsonl(path)


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with _open(path) as fh:
        for i, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield i, Unreadable(f"invalid UTF-8 at byte {exc.start}", raw.decode("utf-8", "replace"))
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, Unreadable(f"invalid JSON: {exc.msg} at column {exc.colno}", line)


def _json_document(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with _open(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON Lines under a .json name
            yield from _jsonl(path)
            return
        raise IngestError(f"{path} is not a JSON document: {exc}") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path} is not a JSON document: {exc}") from None
    yield from enumerate(unwrap(data), 1)


def unwrap(data: Any) -> list[Any]:
    """The records of a JSON document: an array's elements, a wrapped list's elements, or itself."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "resourceSpans" not in data and "resource_spans" not in data:
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
    return [data]


# --- CSV -----------------------------------------------------------------------------------

_INT = re.compile(r"-?(0|[1-9]\d*)")
_DECIMAL = re.compile(r"-?(0|[1-9]\d*)\.\d+([eE][-+]?\d+)?")


def cell(value: str) -> Any:
    """A CSV cell as a value: JSON objects/arrays parsed, numbers as numbers, empty as None."""
    if value == "":
        return None
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    return value


class _Lines:
    """Decoded lines of a binary file for the csv reader; remembers lines that were not UTF-8."""

    def __init__(self, fh):
        self.fh = fh
        self.bad: int | None = None  # byte offset of the first invalid byte since the last row

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = next(self.fh)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad = exc.start if self.bad is None else self.bad
            return raw.decode("utf-8", "replace")


def _csv(path: Path) -> Iterator[tuple[int, Any]]:
    with _open(path) as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise IngestError(f"{path} is not a CSV file: {exc}") from None
        if lines.bad is not None:
            raise IngestError(f"{path}: the CSV header is not valid UTF-8")
        header = [h.lstrip("\ufeff") for h in header]
        position = 0
        while True:
            position += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield position, Unreadable(f"invalid CSV: {exc}", "")
                lines.bad = None
                continue
            raw = ",".join(row)
            if lines.bad is not None:
                yield position, Unreadable(f"invalid UTF-8 at byte {lines.bad}", raw)
                lines.bad = None
                continue
            if not any(row):
                position -= 1  # a blank line is not a row
                continue
            if len(row) != len(header):
                yield position, Unreadable(f"invalid CSV: {len(row)} cells, the header has {len(header)}",
                                           raw)
                continue
            yield position, {k: v for k, v in zip(header, map(cell, row), strict=True) if v is not None}


# --- Parquet -------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """A Parquet value as plain JSON: timestamps as ISO text, maps as objects, nulls dropped."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # an Arrow map
            return {str(k): plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path} is not a Parquet file: {exc}") from None
    position = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            position += 1
            yield position, plain(row)


__all__ = ["Unreadable", "cell", "plain", "read_records", "unwrap"]
