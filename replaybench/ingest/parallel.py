"""The record path on every core: a big JSON Lines file's lines parsed by worker processes.

The Python parsers take ~100 µs a record on a slow core, and one process uses one core. For a file
of at least `MIN_BYTES`, the main process reads the lines and hands them out in chunks of
`CHUNK_BYTES` to worker processes (one per core), which parse them into a frame of `logs` rows and
the rejects; the main process stores the chunks' results in file order, so the rows and rejects
are those of the record path in one process. A record that takes part in its format's join (an
OpenTelemetry span without its content, a log event carrying content) may need records of other
chunks: a worker hands its line back, and the main process joins and parses those lines in file
order, as the record path does.

A worker is `python -m replaybench.ingest.parse_worker`, fed pickled chunks on its stdin: a fresh
interpreter, so nothing of the main process (DuckDB's and Polars' threads, a script's `__main__`
that multiprocessing would run again) is copied into it. Starting one costs about a second, hence
MIN_BYTES. Each worker has one chunk at a time: the main process sends it the next before storing
what it gave back, so the workers parse while the main process inserts.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from replaybench.errors import IngestError
from replaybench.ingest import formats as logformats
from replaybench.ingest.formats import IngestOptions
from replaybench.ingest.readers import Unreadable, line_value, plain_name, raw_lines

MIN_BYTES = 32 * 2**20  # a smaller file is parsed in the main process
CHUNK_BYTES = 2 * 2**20  # lines handed to a worker at a time


def workers() -> int:
    """Worker processes for a big file: one per core the process may use (none on one core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores if cores > 1 else 0


def worth_it(path: Path) -> bool:
    """A JSON Lines file big enough to parse on every core, on a machine with more than one."""
    return (plain_name(path).endswith((".jsonl", ".ndjson")) and workers() > 0
            and path.stat().st_size >= MIN_BYTES)


@dataclass
class Chunk:
    """What a worker gives back for its lines: the rows (a frame of LOG_SCHEMA with their source, one
    per request id, of `parsed` rows), the rejects (without their source), how many records it
    read, and the lines left to the main process (the join's)."""

    rows: pl.DataFrame
    parsed: int
    rejects: list[dict]
    read: int
    joined: list[tuple[int, bytes]] = field(default_factory=list)


def parse_chunk(lines: list[tuple[int, bytes]], fmt: str, options: IngestOptions, source: str) -> Chunk:
    """In a worker: parse each line as the record path does; a line whose record takes part in a
    join goes back unparsed."""
    from replaybench.ingest.load import parsed_rows, unique_rows  # load imports this module

    rows: list[dict] = []
    rejects: list[dict] = []
    chunk = Chunk(pl.DataFrame(), 0, rejects, 0)
    for position, raw in lines:
        record = line_value(raw)
        if not isinstance(record, Unreadable) and logformats.in_a_join(record, fmt):
            chunk.joined.append((position, raw))
            continue
        found, bad = parsed_rows(position, record, fmt, options)
        rows += found
        rejects += bad
        chunk.read += 1
    chunk.rows, chunk.parsed = unique_rows(rows, source), len(rows)
    return chunk


def ingest_on_every_core(store: Any, path: Path, fmt: str, options: IngestOptions,
                         processes: int | None = None, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Parse `path` (JSON Lines) in `processes` workers (default: one per core) and keep what they
    give back in `store` (a load.Store), in file order; the records of the join last, joined."""
    with _Workers(processes or workers()) as pool:
        def joined_lines() -> Iterator[tuple[int, Any]]:
            chunks = _chunks(path, fmt, options, store, chunk_bytes)
            for chunk in pool.parse(chunks, fmt, options, store.source):
                store.add(chunk.read, chunk.rows, chunk.rejects, chunk.parsed)
                for position, raw in chunk.joined:
                    yield position, line_value(raw)

        for position, record in logformats.join_records(joined_lines(), fmt):
            store.record(position, record, fmt, options)
    store.flush()


def _chunks(path: Path, fmt: str, options: IngestOptions, store: Any,
            chunk_bytes: int) -> Iterator[list[tuple[int, bytes]]]:
    """The file's lines in chunks of about `chunk_bytes`. A line the main process cannot read (over
    the size limit, after a cut in a compressed stream) is its reject at once."""
    lines: list[tuple[int, bytes]] = []
    size = 0
    for position, raw in raw_lines(path, options.max_line_bytes):
        if isinstance(raw, Unreadable):
            store.record(position, raw, fmt, options)
            continue
        lines.append((position, raw))
        size += len(raw)
        if size >= chunk_bytes:
            yield lines
            lines, size = [], 0
    if lines:
        yield lines


class _Workers:
    """Worker processes, each fed one chunk at a time over a pipe, their results read in order."""

    def __init__(self, processes: int):
        path = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        self.procs = [subprocess.Popen([sys.executable, "-m", "replaybench.ingest.parse_worker"], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                      for _ in range(processes)]

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def parse(self, chunks: Iterator[list], fmt: str, options: IngestOptions, source: str) -> Iterator[Chunk]:
        """Each chunk parsed by the next worker in turn; the results in the chunks' order."""
        busy: deque[subprocess.Popen] = deque()
        idle = deque(self.procs)
        for lines in chunks:
            if not idle:  # the oldest chunk's worker is the next free: it gets this one first
                proc = busy.popleft()
                done = _receive(proc)
                _send(proc, (lines, fmt, options, source))
                busy.append(proc)
                yield done
                continue
            proc = idle.popleft()
            _send(proc, (lines, fmt, options, source))
            busy.append(proc)
        while busy:
            yield _receive(busy.popleft())


_ROOT = str(Path(__file__).resolve().parents[2])  # where the replaybench package is
_SIZE = 8  # bytes of a message's length, before the message


def _send(proc: subprocess.Popen, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        proc.stdin.write(len(data).to_bytes(_SIZE, "little") + data)
        proc.stdin.flush()
    except BrokenPipeError:
        raise _stopped(proc) from None


def _receive(proc: subprocess.Popen) -> Chunk:
    header = proc.stdout.read(_SIZE)
    if len(header) < _SIZE:
        raise _stopped(proc)
    return pickle.loads(proc.stdout.read(int.from_bytes(header, "little")))


def _stopped(proc: subprocess.Popen) -> IngestError:
    return IngestError(f"a parsing worker stopped (exit code {proc.wait()}): its error is above")


def serve() -> None:
    """A worker: chunks in on stdin, parsed chunks out on stdout, until stdin closes."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while header := source.read(_SIZE):
        lines, fmt, options, name = pickle.loads(source.read(int.from_bytes(header, "little")))
        data = pickle.dumps(parse_chunk(lines, fmt, options, name), protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(len(data).to_bytes(_SIZE, "little") + data)
        sink.flush()
