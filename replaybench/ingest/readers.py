"""Log files as records, streamed so memory stays flat, compressed or not:

    .jsonl / .ndjson / other   one JSON value a line
    .json                      a JSON document: an array of records; an object wrapping one list
                               (`{"data": [...]}` from Langfuse's or Phoenix's API) gives that list's
                               elements; an OTLP export (`{"resourceSpans": [...]}`) or any other
                               object is one record
    .parquet                   row batches of `pyarrow.parquet.ParquetFile.iter_batches()`
    .csv                       the stdlib csv reader, header row first

Any of these but Parquet (which compresses inside) may be gzip (`.gz`) or zstd (`.zst`, all its
frames: appending writers and the OpenTelemetry Collector's file exporter leave several).

A record that cannot be decoded comes back as `Unreadable` with its reason and raw text, so that the
caller can reject it and go on; a file that cannot be opened as its kind at all is an `IngestError`.
Three limits keep a broken file from taking the process down with it: a line longer than
`max_line_bytes` is skipped unread (memory stays bounded), JSON nested deeper than `MAX_DEPTH` is not
parsed (Python's parser would recurse until it fails), and a compressed stream that ends early or
breaks (a truncated `.gz` or `.zst`, a damaged block) gives the records before the cut and one
`Unreadable` for the rest. A file that is not in the compression its name says is an IngestError.
Positions are 1-based: the line of a JSONL file, the element of a JSON array, the data row of a CSV
(header not counted) or Parquet file.

CSV and Parquet cells that hold JSON objects or arrays as text (a `request`, `messages` or `input`
column) are parsed into objects; CSV cells that are integers or decimals become numbers, empty CSV
cells are absent. Parquet timestamps become ISO-8601 strings, so every record is plain JSON.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import operator
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from itertools import accumulate, count
from pathlib import Path
from typing import Any

import orjson
import zstandard

from replaybench.errors import IngestError
from replaybench.fastjson import big_integer

PARQUET_BATCH_ROWS = 2_048
# JSON nested deeper is refused before it is parsed: Python's parser (and the format parsers)
# recurse once a level, and a fixed limit, well below Python's recursion limit of 1,000, gives
# the same answer wherever the call stack stands. (DuckDB's fast path reads deeper JSON.)
MAX_DEPTH = 512
MAX_LINE_BYTES = 64 * 2**20  # default line limit; ingest derives its own from max_field_chars
RAW_BYTES = 4_096  # how much of a line too long to read is kept as its raw text
BLANK = b" \t\n\r\f\v"  # a line of only these is blank, as DuckDB's read_json sees it
ZSTD_BUFFER = 2**16  # bytes decompressed at a time: what a damaged block can take with it
# the compressions a file name can end in, by its last suffix in any case
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
# keys under which API responses wrap their list of records
WRAPPER_KEYS = ("data", "observations", "items", "records", "spans", "requests", "results")

csv.field_size_limit(2**31 - 1)  # request bodies in one cell are far over the 128 KiB default


@dataclass
class Unreadable:
    """A record that could not be decoded."""

    reason: str
    raw: str


# --- compression ---------------------------------------------------------------------------

class ZstdCutOff(EOFError):
    """A zstd file that ends inside a frame: the rest of it is lost. An EOFError, as gzip's is."""


# what a damaged compressed stream raises: cut off (EOFError), bad header or CRC, corrupt data
BROKEN_STREAM = (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError)


def compression(path: Path) -> str | None:
    """"gzip" or "zstd" when a file's name says it is compressed (`.gz`, `.zst`), else None."""
    return COMPRESSIONS.get(path.suffix.lower())


def plain_name(path: Path) -> str:
    """A file's name in lower case without its compression suffix: what its content is."""
    name = path.name.lower()
    return name.removesuffix(path.suffix.lower()) if compression(path) else name


def _open(path: Path):
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "zstd":
        return io.BufferedReader(_Zstd(path), buffer_size=ZSTD_BUFFER)
    return open(path, "rb")


class _Zstd(io.RawIOBase):
    """The content of a zstd file, its frames one after another. zstandard's reader stops quietly
    where a file is cut off; this one then raises ZstdCutOff, as gzip raises EOFError."""

    def __init__(self, path: Path):
        self._path = path
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close(), as the reader is
        self._reader = zstandard.ZstdDecompressor().stream_reader(self._fh, read_across_frames=True,
                                                                  closefd=False)
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._ended:
            return 0
        n = self._reader.readinto(buffer)
        if n == 0:
            self._ended = True
            if zstd_cut_off(self._path):
                raise ZstdCutOff("the file ends inside a zstd frame")
        return n

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
            self._fh.close()
        super().close()


_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # the 16 magic numbers of skippable frames, with the low 4 bits masked


def zstd_cut_off(path: Path) -> bool:
    """Whether a zstd file ends inside a frame. Its frames are walked header by header and block by
    block (RFC 8878), without decoding, so the check costs one small read per 128 KiB of content.
    Bytes that are no frame where one should start are left to the decoder to complain of."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size

        def at(pos: int, n: int) -> bytes | None:  # n bytes at pos, None if the file ends first
            fh.seek(pos)
            data = fh.read(n)
            return data if len(data) == n else None

        pos = 0
        while pos < size:
            if (head := at(pos, 5)) is None:
                return True
            magic = int.from_bytes(head[:4], "little")
            if magic & 0xFFFFFFF0 == _SKIPPABLE:  # magic, length, that many bytes of anything
                if (length := at(pos + 4, 4)) is None:
                    return True
                pos += 8 + int.from_bytes(length, "little")
                continue
            if magic != _ZSTD_MAGIC:
                return False
            descriptor = head[4]
            single_segment = descriptor >> 5 & 1
            window = 1 - single_segment
            dictionary = (0, 1, 2, 4)[descriptor & 3]
            content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
            pos += 5 + window + dictionary + content_size
            last = 0
            while not last:
                if (block := at(pos, 3)) is None:
                    return True
                header = int.from_bytes(block, "little")
                last, kind, block_size = header & 1, header >> 1 & 3, header >> 3
                pos += 3 + (1 if kind == 1 else block_size)  # an RLE block holds one byte
            pos += 4 * (descriptor >> 2 & 1)  # the content checksum
        return pos > size


def read_records(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(position, record) for each record of a file; position is the 1-based line, element or row."""
    name = plain_name(path)
    if name.endswith(".parquet"):
        yield from _parquet(path)
    elif name.endswith(".csv"):
        yield from _csv(path)
    elif name.endswith(".json"):
        yield from _json_document(path, max_line_bytes)
    else:
        yield from _jsonl(path, max_line_bytes)


def cut_off(exc: Exception, where: str) -> str:
    """The reason given for the rest of a file whose compressed stream ends early or breaks `where`."""
    kind = "zstd" if isinstance(exc, ZstdCutOff | zstandard.ZstdError) else "gzip"
    if isinstance(exc, EOFError):
        return f"truncated {kind} file: the stream ends {where}; the rest of the file is lost"
    return f"damaged {kind} file: the stream breaks {where} ({exc}); the rest of the file is lost"


def _not_compressed(path: Path, exc: Exception) -> IngestError:
    """The error for a file that is not in the compression its name says, from its first read."""
    if compression(path) == "zstd":
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head[4:] == _ZSTD_MAGIC.to_bytes(4, "little"):  # a 4-byte length, then a frame
            return IngestError(
                f"{path} holds zstd frames each behind a 4-byte length, as the OpenTelemetry "
                "Collector's file exporter writes `compression: zstd` without its "
                "`exporter.file.nativeCompression` feature gate: turn the gate on (the exporter then "
                "writes a .zst file), or export without compression")
        return IngestError(f"{path} cannot be read as zstd ({exc}): recompress it (`zstd FILE`), or "
                           f"rename it without {path.suffix} if it is not compressed")
    return IngestError(f"{path} cannot be read as gzip ({exc}): recompress it, or rename it "
                       "without .gz if it is not compressed")


# --- JSON ------------------------------------------------------------------------------------

_NOT_QUOTE_OR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_TWO_FOR_OPENING = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SPACE = re.compile(r"\s*")
_SCALAR = re.compile(r'"(?:[^"\\]++|\\.)*+"|[^\s,\]}]+')
# a JSON string, a quote that opens a string never closed, or a bracket: enough to follow nesting
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|"|[\[\]{}]')


def too_deep(text: str) -> bool:
    """Whether JSON text nests arrays and objects more than MAX_DEPTH levels deep."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the usual case, at C speed
        return False
    # An OTLP export line holds thousands of brackets (and strings): the brackets outside strings
    # are found at C speed too. Without escaped backslashes and quotes, and without everything
    # but quotes and brackets, two quotes side by side enclose nothing of interest; of what is
    # left, every other piece between quotes is inside a string (the last piece is not, when a
    # string is never closed). In text Python's parser reads, that is exactly its strings; in
    # text it refuses, it may differ, but never by missing nesting the parser would recurse into.
    data = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    pieces = data.translate(None, _NOT_QUOTE_OR_BRACKET).replace(b'""', b"").split(b'"')
    outside = b"".join(pieces[::2] if len(pieces) % 2 else [*pieces[::2], pieces[-1]])
    if outside.count(b"[") + outside.count(b"{") <= MAX_DEPTH:
        return False
    # depth after k brackets: 2 × the opening ones among them − k
    steps = outside.translate(_TWO_FOR_OPENING)
    return max(map(operator.sub, accumulate(steps), count(1))) > MAX_DEPTH


def json_value(text: str) -> Any:
    """One JSON value (a line, an array element) parsed, or `Unreadable` saying why it cannot be.
    Both ingest paths use it, so a line gets the same reason either way. orjson parses what it
    reads exactly as json.loads does (in half the time); json.loads parses the rest."""
    if too_deep(text):
        return Unreadable(f"nested too deeply: more than {MAX_DEPTH} levels of arrays and objects", text)
    if not big_integer(text.encode("utf-8", "surrogatepass")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # not JSON, or NaN, 1e999, a lone surrogate: json.loads
            pass  # reads those (the parsers then say what is wrong), or says why in its own words
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Unreadable(f"invalid JSON: {exc.msg} at column {exc.colno}", text)
    if _SURROGATE_ESCAPE.search(text):  # "\ud800" alone decodes to a string no database can store
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return Unreadable("invalid JSON: a \\u escape is half of a UTF-16 surrogate pair, "
                              "not a character", text)
    return value


def raw_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | Unreadable]]:
    """The non-blank lines of a file as bytes, numbered from 1 (blank lines count); a line over
    `max_line_bytes` (never held whole) or a compressed stream that ends early is an Unreadable."""
    with _open(path) as fh:
        i = 0
        try:
            while raw := fh.readline(max_line_bytes + 1):
                i += 1
                if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                    size = len(raw) + _skip_line(fh)
                    yield i, Unreadable(f"line is over the size limit ({size:,} > {max_line_bytes:,} bytes)",
                                        raw[:RAW_BYTES].decode("utf-8", "replace"))
                elif raw.strip(BLANK):
                    yield i, raw
        except BROKEN_STREAM as exc:
            if not i and not isinstance(exc, EOFError):
                raise _not_compressed(path, exc) from None
            yield i + 1, Unreadable(cut_off(exc, f"after line {i:,}"), "")


def line_value(raw: bytes) -> Any:
    """One line of a JSON Lines file as a value, or Unreadable (not UTF-8, not JSON) saying why."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return Unreadable(f"invalid UTF-8 at byte {exc.start}", raw.decode("utf-8", "replace"))
    return json_value(line)


def _jsonl(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    for i, raw in raw_lines(path, max_line_bytes):
        yield i, raw if isinstance(raw, Unreadable) else line_value(raw)


def _skip_line(fh) -> int:
    """Read past the rest of a line without keeping it; the number of bytes skipped."""
    skipped = 0
    while chunk := fh.readline(2**20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _json_document(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    text, broken = _read_text(path)
    if broken is None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # JSON Lines under a .json name
                yield from _jsonl(path, max_line_bytes)
                return
            raise IngestError(f"{path} is not a JSON document: {exc}") from None
        except RecursionError:
            pass  # nested too deeply somewhere: read below, record by record
        else:
            yield from enumerate(unwrap(data), 1)
            return
    # cut off, or too deep somewhere: the records one by one, as far as they go
    def cut(where: str) -> str:
        return cut_off(broken, where)

    start = _list_start(text)
    if start is not None:
        yield from _elements(text, start, cut if broken else None)
    elif broken and "\n" in text.strip() and not isinstance(json_value(text.lstrip().split("\n", 1)[0]),
                                                         Unreadable):
        yield from _jsonl(path, max_line_bytes)  # JSON Lines under a .json name
    elif broken:
        yield 1, Unreadable(cut("inside the document"), text[:RAW_BYTES])
    else:
        yield 1, json_value(text)


def _read_text(path: Path) -> tuple[str, Exception | None]:
    """A whole file as text, and what broke its compressed stream if it is cut off (the text then
    holds what came before)."""
    chunks: list[bytes] = []
    broken: Exception | None = None
    with _open(path) as fh:
        try:
            while chunk := fh.read1(2**20):  # read1: what came before a cut is kept
                chunks.append(chunk)
        except BROKEN_STREAM as exc:
            broken = exc
            if not chunks and not isinstance(exc, EOFError):
                raise _not_compressed(path, exc) from None
    data = b"".join(chunks)
    try:
        return data.decode("utf-8"), broken
    except UnicodeDecodeError as exc:
        if broken is not None and exc.start >= len(data) - 3:  # a character cut in two
            return data[:exc.start].decode("utf-8"), broken
        raise IngestError(f"{path} is not a JSON document: {exc}") from None


_WRAPPED = re.compile(r'\s*\{\s*"(' + "|".join(WRAPPER_KEYS) + r')"\s*:\s*\[')


def _list_start(text: str) -> int | None:
    """Where the record list of a document starts (after its `[`): a top-level array, or the
    first member of an API page (`{"data": [...`); None for any other document."""
    m = _WRAPPED.match(text)
    if m:
        return m.end()
    i = _SPACE.match(text).end()
    return i + 1 if text[i:i + 1] == "[" else None


def _value_end(text: str, i: int) -> int | None:
    """Where the JSON value starting at `i` ends; None when the text ends first."""
    if text[i:i + 1] not in ("[", "{"):
        m = _SCALAR.match(text, i)
        return m.end() if m and m.end() < len(text) else None
    depth = 0
    for m in _TOKEN.finditer(text, i):
        token = m.group()
        if token == '"':  # a string that never closes
            return None
        if token[0] in "[{":
            depth += 1
        elif token[0] in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    return None


def _elements(text: str, i: int, cut: Callable[[str], str] | None) -> Iterator[tuple[int, Any]]:
    """The elements of the list starting at `i`, each through `json_value`. `cut(where)`: the
    reason for the rest when the text is cut off."""
    position = 0
    i = _SPACE.match(text, i).end()
    if text[i:i + 1] == "]":
        return
    while True:
        position += 1
        end = _value_end(text, i) if i < len(text) else None
        if end is None:
            yield position, Unreadable(cut(f"inside record {position:,}") if cut
                                       else "invalid JSON: the document ends inside this record",
                                       text[i:i + RAW_BYTES])
            return
        yield position, json_value(text[i:end])
        i = _SPACE.match(text, end).end()
        if text[i:i + 1] == "]":
            return
        if text[i:i + 1] != ",":
            yield position + 1, Unreadable(cut(f"after record {position:,}") if cut
                                           else f"invalid JSON: no ',' or ']' after record {position:,}",
                                           text[i:i + RAW_BYTES])
            return
        i = _SPACE.match(text, i + 1).end()


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
        parsed = json_value(stripped)
        return value if isinstance(parsed, Unreadable) else parsed
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
        except BROKEN_STREAM as exc:
            raise _not_compressed(path, exc) from None
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
            except BROKEN_STREAM as exc:
                yield position, Unreadable(cut_off(exc, f"after data row {position - 1:,}"), "")
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
        parsed = json_value(value)
        return value if isinstance(parsed, Unreadable) else parsed
    return value


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # not pre-buffered: pyarrow's default reads the whole file at the first batch
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path} is not a Parquet file: {exc}") from None
    position = 0
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:  # a damaged page: the rows after it are lost
            yield position + 1, Unreadable(f"damaged Parquet file after row {position:,}: {exc}"[:300], "")
            return
        for row in batch.to_pylist():
            position += 1
            yield position, plain(row)


__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "Unreadable", "ZstdCutOff", "cell", "compression", "json_value",
           "line_value", "plain", "plain_name", "raw_lines", "read_records", "too_deep", "unwrap",
           "zstd_cut_off"]
