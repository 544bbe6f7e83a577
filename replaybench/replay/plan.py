"""Plan: what a candidate has left to send in a run, written to files beside the warehouse rather
than held in memory (a night's requests, messages and all, were most of replay's memory).

In the warehouse, briefly, one pass over the pending requests a batch at a time: each gets its
parameters and cache key; those the response cache answers are stored at once; the others go to
the plan file (`<warehouse>.plans/<run>--<stem>.parquet`, the first request of each question, in
the order DuckDB returns them) or, when the same question came earlier in the night, to the twins
file beside it (`….twins.parquet`), to take the first one's answer without being asked. Sending
reads the plan file a batch at a time; a Dask run sends it in row ranges, each on a worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from replaybench.cache import cache_key
from replaybench.config import Candidate, Settings
from replaybench.errors import ReplaybenchError
from replaybench.fastjson import loads
from replaybench.pricing import price_table
from replaybench.providers import Completion
from replaybench.replay.files import leftovers, plan_path, shard_folder
from replaybench.replay.journal import RowMaker
from replaybench.replay.load import load_files, store_shard_files, warehouse_turn
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse, sql_text

PLAN_BATCH = 2_000  # requests prepared, and read back while sending, at a time
TWIN_COLUMNS = ["request_id", "prompt_version", "ts", "params_json", "cache_key"]
"""What a twin (a question asked again within the plan) keeps; its twins file adds `first_row`,
the plan row of the question's first asking, and is sorted by it (`PlanWriter.close`), so that
a send reads each question's twins beside it instead of holding them all."""
PARAMS_KEPT = 1_000
"""Distinct parameters parsed once and shared while a plan is read; most requests share a few,
but logs that carry a per-request `user` or `metadata` have one each, and a night's worth of
them would be held to its end."""


@dataclass
class ReplayPlan:
    """What one candidate (or one chunk of its requests) has left to send in a run: the rows
    [start, stop) of the plan file, and their twins."""

    settings: Settings
    run: Run
    candidate: Candidate
    path: Path | None  # None: nothing left to send
    start: int = 0
    stop: int = 0
    size: int = 0  # requests: the rows and their twins
    requested: int = 0
    reused: int = 0
    recovered: int = 0
    chunk: int = 0
    use_cache: bool = True

    @property
    def twins_path(self) -> Path | None:
        return twins_path(self.path) if self.path else None

    def groups(self) -> Iterator[list[dict[str, Any]]]:
        """The requests to send, each question with its twins (a group is asked once), read a
        batch at a time."""
        if self.path is None or self.start >= self.stop:
            return iter(())
        return _groups(self.path, self.start, self.stop)

    def discard(self) -> None:
        """Delete the plan's files (its answers are stored)."""
        for path in (self.path, self.twins_path):
            if path is not None:
                path.unlink(missing_ok=True)


def twins_path(path: Path) -> Path:
    return path.with_suffix(".twins.parquet")


def _sorting(path: Path) -> Path:
    """Where a plan's twins are written in order before they replace the twins file."""
    return path.with_suffix(".twins.sorting")


def plan_replay(settings: Settings, run: Run, candidate: Candidate,
                use_cache: bool = True) -> ReplayPlan:
    """In the warehouse, briefly: load what a killed attempt left, write the pending requests to
    the plan's files, and store at once those the response cache already answers."""
    redacted = settings.needs_redaction(candidate)
    path = plan_path(settings, run, candidate)
    with warehouse_turn, open_warehouse(settings.warehouse) as wh:
        if redacted and wh.query("unredacted_samples", run_id=run.run_id):
            raise ReplaybenchError(f"{candidate.name} gets redacted requests, but run {run.run_id} "
                                   "has sampled requests not redacted yet: run the redact step first")
        recovered = load_files(wh, run.run_id, candidate.name,
                               *leftovers(settings, run, candidate))
        pending = wh.con.sql(sql_text("pending_replays"), params={
            "run_id": run.run_id, "model": candidate.name, "redacted": redacted,
            "every_sampled": candidate.replays_production}).to_arrow_reader(PLAN_BATCH)
        writer = PlanWriter(settings, run, candidate, path, wh, use_cache)
        try:
            for batch in pending:
                writer.add(batch)
        except BaseException:
            writer.abandon()
            raise
        rows, requested, reused = writer.close()
    return ReplayPlan(settings, run, candidate, path if rows else None, 0, rows,
                      requested - reused, requested + recovered, reused, recovered,
                      use_cache=use_cache)


class PlanWriter:
    """Writes a plan's files from the pending requests, batch by batch; stores the requests the
    response cache answers (unless `use_cache` is False); sorts the twins file when it closes."""

    def __init__(self, settings: Settings, run: Run, candidate: Candidate, path: Path,
                 wh: Warehouse, use_cache: bool = True):
        self.candidate, self.path, self.wh = candidate, path, wh
        self.rows = RowMaker(run, candidate, price_table(settings), settings.tz)
        self.run_id = run.run_id
        self.lookup = wh.con.cursor() if use_cache else None  # beside the pending result
        self.params: dict[tuple[str | None, str | None], tuple[dict[str, Any], str]] = {}
        self.asked: dict[bytes, int] = {}  # the questions in the plan (digests): their rows
        self.files: dict[Path, pq.ParquetWriter] = {}
        self.reused_files: list[Path] = []
        # named as a send's shards are, so that a plan that fails before storing them leaves
        # them for the next attempt's load (`leftovers`)
        self.reused_stem = shard_folder(settings) / f"{path.stem}--{os.getpid()}"
        self.written = self.requested = self.reused = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, twins_path(path), _sorting(path)):  # an earlier attempt's
            stale.unlink(missing_ok=True)

    def add(self, batch: pa.RecordBatch) -> None:
        requests = self.prepare(dicts(batch))
        self.requested += len(requests)
        cached = self.cached([r["cache_key"] for r in requests])
        first: list[dict[str, Any]] = []
        twins: list[dict[str, Any]] = []
        reused: list[dict[str, Any]] = []
        for request in requests:
            key = request["cache_key"]
            if key in cached:
                reused.append(self.rows.row(request, cached[key].reused(), True))
                continue
            digest = bytes.fromhex(key)
            if (row := self.asked.get(digest)) is not None:
                twins.append({**request, "first_row": row})
            else:
                self.asked[digest] = self.written + len(first)
                first.append(request)
        self.written += len(first)
        self.write(self.path, first, batch.schema.field("ts").type)
        self.write(twins_path(self.path), twins, batch.schema.field("ts").type)
        if reused:
            self.reused += len(reused)
            shard = Path(f"{self.reused_stem}-{len(self.reused_files):05d}.parquet")
            shard.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame(reused, infer_schema_length=None).write_parquet(shard)
            self.reused_files.append(shard)

    def prepare(self, pending: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each pending request with its parameters as JSON and its cache key; its messages stay
        the logged JSON text (`messages_of` parses them just before sending)."""
        requests = []
        for row in pending:
            raw = row["messages"]
            if not isinstance(raw, str):
                raw = json.dumps(raw)
            same = (row["params"], row["model_id"] if self.candidate.replays_production else None)
            if (known := self.params.get(same)) is None:  # most requests share their params
                if len(self.params) >= PARAMS_KEPT:
                    self.params.clear()
                params = request_params(row["params"], self.candidate, row["model_id"])
                known = self.params[same] = (params, json.dumps(params))
            params, params_json = known
            requests.append({"request_id": row["request_id"],
                             "prompt_version": row["prompt_version"], "ts": row["ts"],
                             "messages": raw, "params_json": params_json, "send_params": params,
                             "cache_key": cache_key(self.candidate, loads(raw.encode()), params)})
        return requests

    def cached(self, keys: list[str]) -> dict[str, Completion]:
        """Answers already paid for, by cache key."""
        if self.lookup is None or not keys:
            return {}
        self.lookup.register("_keys", pa.table({"cache_key": keys}))
        try:
            found = self.lookup.sql(sql_text("cached_answers")).pl()
        finally:
            self.lookup.unregister("_keys")
        return {r["cache_key"]: Completion.from_row(r) for r in found.iter_rows(named=True)}

    def write(self, path: Path, requests: list[dict[str, Any]], ts: pa.DataType) -> None:
        if not requests:
            return
        twins = path != self.path  # a twin is given its question's answer: no messages
        schema = pa.schema([("request_id", pa.string()), ("prompt_version", pa.string()),
                            ("ts", ts), *([] if twins else [("messages", pa.string())]),
                            ("params_json", pa.string()), ("cache_key", pa.string()),
                            *([("first_row", pa.int64())] if twins else [])])
        if path not in self.files:
            self.files[path] = pq.ParquetWriter(path, schema)
        self.files[path].write_table(
            pa.Table.from_pylist(requests, schema=schema), row_group_size=PLAN_BATCH)

    def close(self) -> tuple[int, int, int]:
        """Finish the files and store the reused answers; (plan rows, requests, reused)."""
        for file in self.files.values():
            file.close()
        if self.lookup is not None:
            self.lookup.close()
        twins = twins_path(self.path)
        if twins in self.files:  # in the order of their first asking, by DuckDB (out of core)
            ordered = _sorting(self.path)
            self.wh.execute("COPY (SELECT * FROM read_parquet($twins) ORDER BY first_row) "
                            f"TO $ordered (FORMAT parquet, ROW_GROUP_SIZE {PLAN_BATCH})",
                            {"twins": str(twins), "ordered": str(ordered)})
            ordered.replace(twins)
        if self.reused_files:
            store_shard_files(self.wh, self.run_id, self.reused_files)
        return self.written, self.requested, self.reused

    def abandon(self) -> None:
        """Close and delete what was written (planning failed)."""
        for file in self.files.values():
            file.close()
        if self.lookup is not None:
            self.lookup.close()
        for path in [*self.files, *self.reused_files, _sorting(self.path)]:
            path.unlink(missing_ok=True)


def request_params(logged: str | None, candidate: Candidate,
                   model_id: str | None = None) -> dict[str, Any]:
    """The sampling parameters to send: the logged ones, overridden by the candidate's; a
    production replay also carries the model the request was logged with."""
    params = json.loads(logged) if logged else {}
    params.update(candidate.params)
    if candidate.replays_production:
        params["model"] = (model_id or "").split("/", 1)[-1]
    return params


def messages_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's messages, parsed from the JSON text the plan keeps."""
    raw = request["messages"]
    return loads(raw.encode()) if isinstance(raw, str) else raw


def _groups(path: Path, start: int, stop: int) -> Iterator[list[dict[str, Any]]]:
    """Rows [start, stop) of a plan file, each with its twins: both files are read in step, a
    batch at a time (the twins are in the order of their question's row)."""
    twins = _rows(twins_path(path), columns=[*TWIN_COLUMNS, "first_row"])
    twin = next(twins, None)
    for row, request in enumerate(_rows(path, start, stop), start):
        same = []
        while twin is not None and twin["first_row"] <= row:
            if twin.pop("first_row") == row:  # (an earlier row's: another chunk's)
                same.append(twin)
            twin = next(twins, None)
        yield [request, *same]


def _rows(path: Path, start: int = 0, stop: int | None = None,
          columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The requests of rows [start, stop) of a plan file, a batch at a time (only the row
    groups that hold them are read), each with its parameters as a dict (one per distinct)."""
    if not path.exists():
        if stop is not None and start < stop:  # a plan's own rows: never skipped in silence
            raise ReplaybenchError(
                f"the plan {path} is missing: a Dask worker must see the folders beside the "
                "warehouse (.plans, .journal, .shards), e.g. on a shared filesystem")
        return  # no twins
    params: dict[str, dict[str, Any]] = {}
    # not pre-buffered: pyarrow's default reads every row group asked for at the first batch
    with pq.ParquetFile(path, pre_buffer=False) as file:
        stop = file.metadata.num_rows if stop is None else stop
        groups, at, first = [], 0, None
        for i in range(file.metadata.num_row_groups):
            n = file.metadata.row_group(i).num_rows
            if at < stop and at + n > start:
                groups.append(i)
                first = at if first is None else first
            at += n
        at = first or 0
        for batch in file.iter_batches(batch_size=PLAN_BATCH, row_groups=groups,
                                       columns=columns):
            lo, hi = max(start - at, 0), min(stop - at, batch.num_rows)
            at += batch.num_rows
            for request in dicts(batch.slice(lo, max(hi - lo, 0))):
                text = request["params_json"]
                if (sent := params.get(text)) is None:
                    if len(params) >= PARAMS_KEPT:  # logs whose every request has its own
                        params.clear()
                    sent = params[text] = json.loads(text)
                request["send_params"] = sent
                yield request


def dicts(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    """A batch's rows as dicts, through Polars (pyarrow's `to_pylist` costs ~6× more)."""
    return pl.from_arrow(batch).iter_rows(named=True)


def chunks(plan: ReplayPlan, size: int) -> list[ReplayPlan]:
    """The plan split into row ranges of about `size` requests (a question and its twins are
    never split)."""
    if plan.path is None:
        return [dataclasses.replace(plan, chunk=1)]
    twins = twins_path(plan.path)
    per_row = (np.bincount(pq.read_table(twins, columns=["first_row"]).column("first_row")
                           .to_numpy(), minlength=plan.stop)
               if twins.exists() else np.zeros(plan.stop, dtype=np.int64))
    pieces: list[ReplayPlan] = []
    start, requests = plan.start, 0
    for row in range(plan.start, plan.stop):
        requests += 1 + int(per_row[row])
        if requests >= size or row == plan.stop - 1:
            pieces.append(dataclasses.replace(plan, start=start, stop=row + 1, size=requests,
                                              chunk=len(pieces) + 1))
            start, requests = row + 1, 0
    return pieces
