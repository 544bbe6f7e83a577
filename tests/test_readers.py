"""The file readers on zstd-compressed files (`.jsonl.zst`, `.json.zst`, `.csv.zst`), as they read
gzip: whole files of one frame or many (appending writers, the OpenTelemetry Collector's file
exporter), files cut off or damaged (the records before the cut, one reject for the rest), and
files that are not zstd at all (an IngestError that says what to do)."""

import csv
import io
import json
import logging
import sys
from pathlib import Path

import pytest
import zstandard

from replaybench.errors import IngestError
from replaybench.ingest import ingest_paths
from replaybench.ingest.readers import (
    Unreadable,
    compression,
    json_value,
    plain_name,
    read_records,
    too_deep,
    zstd_cut_off,
)
from replaybench.warehouse import open_warehouse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ingest import assert_kept_before_the_cut, row  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "formats"


def records(n: int, start: int = 0) -> list[dict]:
    return [json.loads(row(f"r{i:04}")) for i in range(start, start + n)]


def jsonl(recs: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


def frames(*parts: bytes, checksum: bool = True) -> bytes:
    """Each part compressed as a zstd frame of its own, one after another."""
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=checksum)
    return b"".join(compressor.compress(p) for p in parts)


def streamed(data: bytes) -> bytes:
    """`data` compressed as a stream (no content size in the frame header), as `zstd` in a pipe does."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


def readable(cut: bytes) -> bytes:
    """What a zstd decoder can still decompress of a cut-off file (whole blocks)."""
    out, rest = [], cut
    while rest:
        obj = zstandard.ZstdDecompressor().decompressobj()
        out.append(obj.decompress(rest))
        if not obj.eof:
            break
        rest = obj.unused_data
    return b"".join(out)


def read(path: Path) -> list[tuple[int, object]]:
    return list(read_records(path))


def lines_of(fmt: str, n: int) -> list[str]:
    """`n` good JSON lines in `fmt` (openai or litellm), with the request ids r0000, r0001, …"""
    if fmt == "openai":
        return [row(f"r{i:04}") for i in range(n)]
    base = (FIXTURES / "litellm_payloads.jsonl").read_text().splitlines()[0]
    return [base.replace("chatcmpl-call-0001", f"r{i:04}") for i in range(n)]


# --- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, plain", [
    ("a.jsonl.zst", "zstd", "a.jsonl"), ("A.JSONL.ZST", "zstd", "a.jsonl"), ("a.json.gz", "gzip", "a.json"),
    ("a.csv", None, "a.csv"), ("a.zst.jsonl", None, "a.zst.jsonl"),
])
def test_the_compression_is_the_last_suffix(name, kind, plain):
    assert compression(Path(name)) == kind and plain_name(Path(name)) == plain


# --- whole files ----------------------------------------------------------------------------------

def test_a_jsonl_zst_of_one_frame_is_read_line_by_line(tmp_path):
    recs = records(50)
    src = tmp_path / "a.jsonl.zst"
    src.write_bytes(frames(jsonl(recs)))
    assert read(src) == list(enumerate(recs, 1))


@pytest.mark.parametrize("make", ["frames", "streamed", "skippable", "empty frame"])
def test_every_frame_of_a_multi_frame_file_is_read(tmp_path, make):
    """Appending writers leave one frame per append, cut anywhere (even inside a line); a frame
    may be streamed (no content size), skippable (metadata), or empty."""
    data = jsonl(records(300))
    parts = [data[:1000], data[1000:1001], data[1001:40_000], data[40_000:]]
    src = tmp_path / "a.jsonl.zst"
    if make == "frames":
        src.write_bytes(frames(*parts))
    elif make == "streamed":
        src.write_bytes(b"".join(streamed(p) for p in parts))
    elif make == "skippable":
        skippable = (0x184D2A5E).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"notes"
        src.write_bytes(frames(*parts[:2]) + skippable + frames(*parts[2:]))
    else:
        src.write_bytes(frames(parts[0], b"", *parts[1:], checksum=False))
    assert not zstd_cut_off(src)
    assert read(src) == list(enumerate(records(300), 1))


def test_an_empty_zst_file_has_no_records(tmp_path):
    empty, nothing = tmp_path / "empty.jsonl.zst", tmp_path / "nothing.jsonl.zst"
    empty.write_bytes(b"")
    nothing.write_bytes(frames(b""))
    assert read(empty) == read(nothing) == []


def test_a_json_zst_document_and_an_api_page(tmp_path):
    recs = records(20)
    array, page = tmp_path / "a.json.zst", tmp_path / "page.json.zst"
    text = json.dumps(recs, indent=1).encode()
    array.write_bytes(frames(text[:500], text[500:]))
    page.write_bytes(frames(json.dumps({"data": recs, "meta": {"page": 1}}).encode()))
    assert read(array) == read(page) == list(enumerate(recs, 1))


def test_a_csv_zst(tmp_path):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["request_id", "ts", "latency_ms", "request"])
    for i in range(30):
        writer.writerow([f"r{i}", "2026-11-20T14:03:11Z", i, json.dumps({"messages": []})])
    src = tmp_path / "a.csv.zst"
    data = out.getvalue().encode()
    src.write_bytes(frames(data[:300], data[300:]))
    got = read(src)
    assert len(got) == 30 and got[7] == (8, {"request_id": "r7", "ts": "2026-11-20T14:03:11Z",
                                            "latency_ms": 7, "request": {"messages": []}})


def test_an_otel_collector_file_export_is_detected_and_ingested(tmp_path):
    """The Collector's file exporter (`compression: zstd` with its native compression) writes
    OTLP/JSON lines and ends a frame at each flush."""
    lines = (FIXTURES / "otel_traces.jsonl").read_bytes().splitlines(keepends=True)
    src = tmp_path / "traces.jsonl.zst"
    src.write_bytes(frames(*lines))
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (2, 3, 0)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT DISTINCT source_format FROM logs").fetchall() == [("otel",)]


# --- cut off, damaged, not zstd ----------------------------------------------------------------------

def test_zstd_cut_off_finds_every_cut_but_one_between_frames(tmp_path):
    """Only a file cut exactly where a frame ends looks whole (gzip's members are the same)."""
    first = frames(jsonl(records(40)))
    data = first + frames(jsonl(records(200, 40)))
    src = tmp_path / "a.jsonl.zst"
    missed = []
    for size in range(1, len(data)):
        src.write_bytes(data[:size])
        if not zstd_cut_off(src):
            missed.append(size)
    assert missed == [len(first)]
    src.write_bytes(b'{"not": "zstd"}\n')
    assert not zstd_cut_off(src)  # not a frame: the decoder says what is wrong


@pytest.mark.parametrize("fmt", ["openai", "litellm"])  # DuckDB's fast path, the record path
def test_a_truncated_jsonl_zst_keeps_the_lines_before_the_cut(tmp_path, fmt, caplog):
    caplog.set_level(logging.INFO, logger="replaybench.ingest.load")
    lines = lines_of(fmt, 400)
    data = frames(*("".join(x + "\n" for x in lines[k:k + 50]).encode() for k in range(0, 400, 50)))
    cut = data[: len(data) * 9 // 16]  # inside the fifth of eight frames
    src = tmp_path / "cut.jsonl.zst"
    src.write_bytes(cut)
    whole_lines = readable(cut).count(b"\n")
    assert 0 < whole_lines < 400
    result = ingest_paths(tmp_path / "w.duckdb", [src], fmt)
    assert_kept_before_the_cut(tmp_path / "w.duckdb", result, whole_lines, "zstd")
    if fmt == "openai":  # DuckDB would have read it as if it ended there: the record path reads it
        assert any("ends inside a frame" in r.getMessage() for r in caplog.records)


def test_a_whole_multi_frame_jsonl_zst_goes_duckdbs_fast_path(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="replaybench.ingest.load")
    lines = [row(f"r{i:04}") for i in range(300)] + [row(request_id=None)]
    data = "".join(x + "\n" for x in lines).encode()
    src = tmp_path / "a.jsonl.zst"
    src.write_bytes(frames(data[:10_000], data[10_000:30_000], data[30_000:]))
    result = ingest_paths(tmp_path / "w.duckdb", [src])
    assert (result.read, result.ingested, result.rejected) == (301, 300, 1)
    assert not any("record by record" in r.getMessage() for r in caplog.records)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute("SELECT position, reason FROM rejects").fetchall() == [(301, "missing request_id")]


@pytest.mark.parametrize("name", ["cut.json.zst", "cut.csv.zst"])
def test_a_truncated_json_or_csv_zst_keeps_the_records_before_the_cut(tmp_path, name):
    recs = records(300)
    if name.endswith(".json.zst"):
        data = ("[" + ",\n".join(json.dumps(r) for r in recs) + "]").encode()
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["request_id", "ts"])
        writer.writerows([r["request_id"], r["ts"]] for r in recs)
        data = out.getvalue().encode()
    packed = frames(*(data[k:k + 8_000] for k in range(0, len(data), 8_000)))
    src = tmp_path / name
    src.write_bytes(packed[: len(packed) // 2 + 100])
    got = read(src)
    *kept, (position, last) = got
    assert 0 < len(kept) < 300 and position == len(kept) + 1
    assert [r["request_id"] for _, r in kept] == [f"r{i:04}" for i in range(len(kept))]
    assert isinstance(last, Unreadable) and last.reason.startswith("truncated zstd file: the stream ends ")


@pytest.mark.parametrize("fmt", ["openai", "litellm"])
def test_a_damaged_jsonl_zst_keeps_the_lines_before_the_damage(tmp_path, fmt):
    """A corrupt block (or a checksum that does not match) loses its frame's rest and what comes
    after; the lines decoded before it are stored."""
    lines = lines_of(fmt, 4000)
    data = frames(*("".join(x + "\n" for x in lines[k:k + 500]).encode() for k in range(0, 4000, 500)))
    damaged = bytearray(data)
    for i in range(len(data) * 3 // 4, len(data) * 3 // 4 + 64):
        damaged[i] ^= 0x5A
    src = tmp_path / "damaged.jsonl.zst"
    src.write_bytes(bytes(damaged))
    result = ingest_paths(tmp_path / "w.duckdb", [src], fmt)
    assert 1000 < result.ingested < 4000 and result.rejected == 1
    assert result.read == result.ingested + 1
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        (position, reason), = wh.execute("SELECT position, reason FROM rejects").fetchall()
        assert wh.execute("SELECT max(request_id) FROM logs").fetchone()[0] == f"r{result.ingested - 1:04}"
    assert position == result.ingested + 1
    assert reason.startswith(f"damaged zstd file: the stream breaks after line {result.ingested:,} (zstd")
    assert reason.endswith("; the rest of the file is lost")


@pytest.mark.parametrize("name", ["a.jsonl.zst", "a.json.zst", "a.csv.zst"])
@pytest.mark.parametrize("content", [b'{"request_id": "x"}\n', b"\x1f\x8b\x08\x00 gzip, not zstd"])
def test_a_file_that_is_not_zstd_is_an_error_that_says_what_to_do(tmp_path, name, content):
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(IngestError, match=r"cannot be read as zstd \(.*\): recompress it \(`zstd FILE`\), "
                                          r"or rename it without \.zst if it is not compressed"):
        ingest_paths(tmp_path / "w.duckdb", [src], "openai")


def test_a_zst_file_is_read_in_bounded_memory(tmp_path):
    """A file that expands 10,000-fold (a day of one repeated line) is decoded a buffer at a time:
    its lines come out one by one, never the whole content at once."""
    line = row("same") + "\n"
    data = line.encode() * 20_000
    src = tmp_path / "big.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    assert len(data) / src.stat().st_size > 1_000
    from replaybench.ingest.readers import _open

    with _open(src) as fh:
        first = fh.readline()
        assert first == line.encode() and len(fh.peek()) <= 2**16


# --- JSON text: nesting depth, and the same values as json.loads -------------------------------------

@pytest.mark.parametrize("text, deep", [
    ("[" * 512 + "]" * 512, False),
    ("[" * 513 + "]" * 513, True),
    ('{"a":' * 513 + "1" + "}" * 513, True),
    (json.dumps(["[" * 600, {"k": "{" * 600}]), False),  # brackets inside strings do not nest
    (json.dumps([{"a": [1, 2, {"b": "x"}]}] * 400), False),  # thousands of brackets, shallow
    (json.dumps(['quote \\" and backslash \\\\ [[[', "[" * 600]), False),  # escapes inside strings
    (json.dumps('"\\') + "[" * 513 + "]" * 513, True),  # after a string ending in an escaped backslash
    ('"never closed ' + "[" * 600, True),  # a string never closed: its brackets count
    ("[" * 300 + '"' + "[" * 300, True),
])
def test_too_deep_counts_the_brackets_outside_strings(text, deep):
    assert too_deep(text) is deep


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2, "b": [1.5, -0.0, -0, "x", null, true]}', "1e400", "-1e400", "NaN", "[Infinity]",
    "18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
    '{"n": 123456789012345678901234567890}', '["a 12345678901234567890"]', "1e-400", "0.1",
    '"\\ud83d\\ude00"', '"\\u00e9\\/"', "  [1]\n",
])
def test_json_value_reads_what_json_loads_reads(text):
    """A faster parser (orjson) reads most lines; whatever it reads must be json.loads's value, to
    the type (integers beyond 64 bits stay integers)."""
    got, want = json_value(text), json.loads(text)
    assert repr(got) == repr(want) and type(got) is type(want)


@pytest.mark.parametrize("text", ['{"a": 1,}', "[1] x", "[1, 2", "{'a': 1}", "\x0b"])
def test_json_value_says_why_in_json_loads_words(text):
    with pytest.raises(json.JSONDecodeError) as exc:
        json.loads(text)
    assert json_value(text) == Unreadable(f"invalid JSON: {exc.value.msg} at column {exc.value.colno}", text)


def test_a_lone_surrogate_escape_is_unreadable():
    assert json_value('"\\ud800"') == Unreadable(
        "invalid JSON: a \\u escape is half of a UTF-16 surrogate pair, not a character", '"\\ud800"')


def test_the_otel_collectors_length_prefixed_zstd_is_named_as_such(tmp_path):
    """Without its native-compression feature gate, the Collector's file exporter compresses each
    export on its own behind a 4-byte big-endian length: no zstd file, and the error says so."""
    lines = (FIXTURES / "otel_traces.jsonl").read_bytes().splitlines()
    src = tmp_path / "traces.jsonl.zst"
    src.write_bytes(b"".join(len(f).to_bytes(4, "big") + f for f in (frames(line) for line in lines)))
    with pytest.raises(IngestError, match=r"4-byte length.*exporter\.file\.nativeCompression"):
        ingest_paths(tmp_path / "w.duckdb", [src])
