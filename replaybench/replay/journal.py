"""Where answers go the moment they arrive: a journal line each (one write, no database), and
Parquet shards in batches for the load. A run killed with SIGKILL loses only the requests in
flight; its next attempt loads what the journal and the shards hold. A batch whose shard cannot
be written (a full disk) is kept and written with the next one; if the last write fails too, the
send fails and the journal keeps every answer for the next attempt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from replaybench import progress
from replaybench.config import Candidate
from replaybench.errors import ReplaybenchError
from replaybench.fastjson import loads
from replaybench.pricing import Costing, PriceTable
from replaybench.providers import Completion
from replaybench.runs import Run

log = logging.getLogger(__name__)

FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0


class RowMaker:
    """A `replays` row for an answer, costed at the prices in force on the day the request was
    logged (in the configured timezone): a run over several days, or a backfill, pays each
    day's prices."""

    def __init__(self, run: Run, candidate: Candidate, prices: PriceTable,
                 tz: tzinfo | None = None):
        self.run, self.candidate, self.prices, self.tz = run, candidate, prices, tz or UTC
        self._costings: dict[tuple[str | None, date], Costing | None] = {}

    def row(self, request: dict[str, Any], answer: Completion, from_cache: bool) -> dict[str, Any]:
        params = request["send_params"]
        production = self.candidate.replays_production
        costing = self.costing(params.get("model") if production else None,
                               self.day_of(request.get("ts")))
        row = answer.as_row()
        row["run_id"] = self.run.run_id
        row["request_id"] = request["request_id"]
        row["model"] = self.candidate.name
        row["prompt_version"] = request["prompt_version"]
        row["provider"] = self.candidate.provider
        row["base_url"] = self.candidate.base_url
        row["model_sent"] = (params.get("model", self.candidate.model) if production
                             else self.candidate.model)
        if (logged := request.get("params_json")) is None:  # `prepare` encodes them once
            logged = request["params_json"] = json.dumps(params)
        row["params"] = logged
        row["cache_key"] = request["cache_key"]
        row["from_cache"] = from_cache
        row["cost_usd"] = costing.cost(answer.input_tokens, answer.cached_tokens,
                                       answer.output_tokens) if costing else None
        row["price_version"] = costing.version if costing else None
        return row

    def day_of(self, ts: datetime | None) -> date:
        """The day a request was logged; without a timestamp, the last day the run covers."""
        if ts is None:
            return self.run.run_date - timedelta(days=1)
        # worked out each time (~0.4 µs): a night's timestamps are nearly all distinct, and a
        # memo of them held two objects a request to the end of the send
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(self.tz).date()

    def costing(self, model: str | None, day: date) -> Costing | None:
        """The price on `day` for the candidate (or, replaying production, for `model`)."""
        if (model, day) not in self._costings:
            self._costings[model, day] = self.prices.costing(self.candidate, day, model)
        return self._costings[model, day]


class ReplayWriter:
    """Journals each answer at once; writes them to Parquet shards in batches (no database). A
    batch whose shard cannot be written is kept, and written with the next one."""

    def __init__(self, rows: RowMaker, journal: Path, shards: Path, phase: progress.Phase):
        self.rows_of = rows
        self.rows: list[dict[str, Any]] = []
        self.shards: list[str] = []
        self.last_flush = time.monotonic()
        self.ok = self.failed = self.reused = 0
        journal.parent.mkdir(parents=True, exist_ok=True)
        shards.mkdir(parents=True, exist_ok=True)
        self.journal, self.shard_stem = journal, shards / journal.stem
        self._fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._torn = False  # the last journal write was cut short: its line is ended first
        self._attempts = 0  # shard writes tried: each under a new name
        self._retry_at = 0.0  # after a failed shard write, no other before this (monotonic)
        self._flushing: asyncio.Future | None = None
        self.phase = phase

    def add(self, request: dict[str, Any], answer: Completion, from_cache: bool = False) -> None:
        row = self.rows_of.row(request, answer, from_cache)
        self.rows.append(row)  # first: a row the journal refuses still goes to a shard
        if answer.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.reused += from_cache
        self.phase.advance()
        if not from_cache:  # a cached answer is in the warehouse already; nothing to lose
            self._journal(row)
        now = time.monotonic()
        due = ((len(self.rows) >= FLUSH_ROWS or now - self.last_flush > FLUSH_SECONDS)
               and now >= self._retry_at)
        if due and (self._flushing is None or self._flushing.done()):
            batch, self.rows = self.rows, []
            self.last_flush = time.monotonic()
            self._flushing = asyncio.ensure_future(self._flush(batch))

    def _journal(self, row: dict[str, Any]) -> None:
        """Append one line; after a write cut short (a full disk), end that line first so that
        the next one stays readable."""
        data = journal_line(row)
        if self._torn:
            data = b"\n" + data
        self._torn = True
        while data:
            data = data[os.write(self._fd, data):]
        self._torn = False

    async def _flush(self, batch: list[dict[str, Any]]) -> None:
        """Write a batch in a thread (Parquet releases the GIL: the loop keeps answering). A batch
        that cannot be written goes back to the front, to be written with the next one."""
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            log.warning("a shard of %s could not be written; its %d rows are kept for the next",
                        self.journal.name, len(batch), exc_info=True)
            self.rows[:0] = batch
            self._retry_at = time.monotonic() + FLUSH_SECONDS

    def _write(self, batch: list[dict[str, Any]]) -> None:
        path = Path(f"{self.shard_stem}--{os.getpid()}-{self._attempts:05d}.parquet")
        self._attempts += 1  # one write at a time: `_flush` is awaited before the next
        partial = path.with_suffix(".partial")
        try:
            pl.DataFrame(batch, infer_schema_length=None).write_parquet(partial)
            partial.rename(path)  # a shard is whole or absent
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk gets the space back
                partial.unlink(missing_ok=True)
            raise
        self.shards.append(str(path))

    async def close(self) -> None:
        """Write what is left and close the journal, which stays until the warehouse holds its
        answers. Raises when the last shard cannot be written (the journal keeps its answers)."""
        try:
            if self._flushing is not None:
                await self._flushing  # never raises: a failed batch is back in `rows`
            if self.rows:
                try:
                    await asyncio.to_thread(self._write, self.rows)
                except Exception as exc:
                    raise ReplaybenchError(
                        f"{len(self.rows)} answers could not be written to "
                        f"{self.shard_stem.parent} ({exc}); those paid for are kept in "
                        f"{self.journal}, and the next attempt of this run stores them without "
                        "asking again: free the space, then run it again") from exc
                self.rows = []
        finally:
            os.close(self._fd)


def journal_line(row: dict[str, Any]) -> bytes:
    """A row as one JSON line, read back by `journal_rows` as the row it was. orjson where it
    writes what json would read back the same; json for what orjson refuses (an integer past
    64 bits, a lone surrogate) or would write as null (NaN, infinity)."""
    for value in row.values():
        if value.__class__ is float and not math.isfinite(value):
            break
    else:
        try:
            return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            pass
    return (json.dumps(row) + "\n").encode()


def journal_rows(data: bytes) -> list[dict[str, Any]]:
    """The rows of journal lines; a line cut short (being written when its process died) is
    skipped."""
    rows = []
    for line in data.splitlines():
        try:
            rows.append(loads(line))
        except (ValueError, RecursionError):
            continue
    return rows
