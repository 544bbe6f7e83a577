"""Replay: ask one candidate every sampled request it has not answered yet in this run.

One task per candidate; inside it, one `aiohttp.ClientSession` (the providers speak aiohttp directly:
its pool holds up at high concurrency where httpcore's does not, and no layer above it costs CPU on
every request and streamed token) with at most `max_concurrency` requests in flight.

Three steps, so that the warehouse is held only briefly (another run may be waiting for it):
plan (in the warehouse: what is pending, what the cache already answers), send (no warehouse:
answers go to a journal and to Parquet shards), load (in the warehouse: the shards, in one short
transaction). Sending runs in this process, or chunk by chunk on the workers of a Dask cluster
(`runner.kind: dask`); the workers write shards and this process loads them.

Nothing paid for is lost or paid twice:
- every answer is appended to a journal file the moment it arrives (one write, no database), and
  written to Parquet shards in batches; a run killed with SIGKILL loses only the requests in
  flight, and its next attempt first loads what the journal and the shards hold;
- a batch whose shard cannot be written (a full disk) is kept and written with the next one; if
  the last write fails too, the send fails and the journal keeps every answer for the next
  attempt. A journal is deleted only once the warehouse holds every answer in it;
- a failure in one request (or one candidate) cancels the others, and they end before their
  client and journal are closed;
- every successful answer also lands in `response_cache`; a request whose answer is cached is not
  sent again — by a rerun, a `--force` run or an overlapping backfill — unless `use_cache` is off;
- a candidate that fails `retry.breaker` requests in a row is taken as down: the rest of its
  requests are recorded as failed without being sent, and the night goes on.

A candidate's name is for display (`glm-5.2 [fp8]`, `a/b`, `../x`): its files are named by
`file_stem`, never by the name itself, and found by exact match, never by a glob.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import gc
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import duckdb
import orjson
import polars as pl
from aiohttp.helpers import get_env_proxy_for_url
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from yarl import URL

from replaybench import progress
from replaybench.cache import cache_key
from replaybench.config import Candidate, Settings
from replaybench.errors import ReplaybenchError
from replaybench.fastjson import loads
from replaybench.limits import limiter_for
from replaybench.pricing import Costing, PriceTable, price_table
from replaybench.providers import Completion, provider_class
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0
JOURNAL_PIECE = 4 << 20  # bytes of a journal read and parsed at a time (whole lines)
CACHE_COLUMNS = ["cache_key", "provider", "base_url", "model_sent", "params", "output_text",
                 "reasoning_text", "finish_reason", "input_tokens", "output_tokens",
                 "reasoning_tokens", "reasoning_estimated", "cached_tokens", "latency_ms",
                 "ttft_ms", "output_tps", "attempts", "simulated"]


@dataclass
class ReplayOutcome:
    """What one candidate's replay did in this run."""

    model: str
    requested: int
    ok: int
    failed: int
    from_cache: int = 0
    from_journal: int = 0
    senders: list[int] = dataclasses.field(default_factory=list)  # the processes that sent

    @property
    def dead(self) -> bool:
        """Every request failed: the endpoint is down, misconfigured, or refuses us."""
        return self.requested > 0 and self.ok == 0


def file_stem(name: str) -> str:
    """A candidate's name as part of a file name: its letters, digits, dots and underscores (any
    other run of characters one dash, so never `--`, the separator) and a short hash of the exact
    name, so that no name becomes a path or a pattern and two names never share a file."""
    readable = re.sub(r"[^A-Za-z0-9._]+", "-", name)[:40].strip("-.") or "candidate"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def journal_folder(settings: Settings) -> Path:
    return settings.warehouse.with_name(settings.warehouse.name + ".journal")


def journal_path(settings: Settings, run: Run, candidate: Candidate, chunk: int = 0) -> Path:
    suffix = f"--{chunk}" if chunk else ""
    return journal_folder(settings) / f"{run.run_id}--{file_stem(candidate.name)}{suffix}.jsonl"


def shard_folder(settings: Settings) -> Path:
    return settings.warehouse.with_name(settings.warehouse.name + ".shards")


def leftovers(settings: Settings, run: Run, candidate: Candidate) -> tuple[list[Path], list[Path]]:
    """(journals, shards) a run's candidate left behind: a killed attempt's, or the ones to load.
    Matched exactly (`<run>--<stem>[--<chunk>]`), never by a glob; files named by the raw name,
    as releases before `file_stem` did, are found too when the name was a plain file name."""
    prefixes = [f"{run.run_id}--{file_stem(candidate.name)}"]
    if candidate.name == Path(candidate.name).name and candidate.name not in (".", ".."):
        prefixes.append(f"{run.run_id}--{candidate.name}")
    ours = "|".join(re.escape(p) for p in prefixes)
    journals = re.compile(rf"(?:{ours})(?:--\d+)?\.jsonl")
    shards = re.compile(rf"(?:{ours})(?:--\d+)?--\d+-\d+\.parquet")
    return _matching(journal_folder(settings), journals), _matching(shard_folder(settings), shards)


def _matching(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The files of `folder` whose whole name matches `pattern`."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(folder / n for n in names if pattern.fullmatch(n))


class RowMaker:
    """A `replays` row for an answer, costed at the prices in force on the day the request was
    logged (in the configured timezone): a run over several days, or a backfill, pays each
    day's prices."""

    def __init__(self, run: Run, candidate: Candidate, prices: PriceTable,
                 tz: tzinfo | None = None):
        self.run, self.candidate, self.prices, self.tz = run, candidate, prices, tz or UTC
        self._costings: dict[tuple[str | None, date], Costing | None] = {}
        self._days: dict[datetime, date] = {}

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
        day = self._days.get(ts)
        if day is None:  # a sample shares few timestamps' days: remembered by timestamp
            day = self._days[ts] = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)
                                    ).astimezone(self.tz).date()
        return day

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


def store(wh: Warehouse, rows: pl.DataFrame, run_id: str) -> int:
    """Append replay rows, and cache the fresh successful answers, in one transaction."""
    with wh.transaction():
        return _store(wh, rows, run_id)


def _store(wh: Warehouse, rows: pl.DataFrame, run_id: str) -> int:
    fresh = rows.filter((pl.col("status") == "ok") & ~pl.col("from_cache"))
    added = wh.insert("replays", rows, "ON CONFLICT DO NOTHING")
    if not fresh.is_empty():
        wh.insert("response_cache",
                  fresh.select(CACHE_COLUMNS).with_columns(paid_by_run=pl.lit(run_id)),
                  CACHE_UPSERT)
    return added


CACHE_UPSERT = ("ON CONFLICT (cache_key) DO UPDATE SET output_text = excluded.output_text, "
                "reasoning_text = excluded.reasoning_text, input_tokens = excluded.input_tokens, "
                "output_tokens = excluded.output_tokens, "
                "reasoning_tokens = excluded.reasoning_tokens, "
                "cached_tokens = excluded.cached_tokens, latency_ms = excluded.latency_ms, "
                "ttft_ms = excluded.ttft_ms, paid_by_run = excluded.paid_by_run")


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


def load_files(wh: Warehouse, run_id: str, journals: list[Path], shards: list[Path]) -> int:
    """Store what shards and journals hold (each row once, in one transaction); return rows
    added. Shards are then deleted, and a journal only once the warehouse holds every answer in
    it. After a send the shards hold every row; a journal holds more when its writer was killed
    or a shard was not written, and those rows are taken from it.

    DuckDB reads the shards itself (streaming, within its own memory limit), and the keys of
    each journal to find the answers neither the warehouse nor the shards hold; only a journal
    with such answers (or one DuckDB cannot read: a line cut short) is parsed here, a piece at a
    time."""
    unsure = [j for j in journals if lacking(wh, j, shards) != 0]
    missing: dict[Path, int] = {}
    with wh.transaction():
        before = replay_count(wh)
        if shards:
            store_shards(wh, run_id, shards)
        for journal in unsure:
            missing[journal] = store_journal(wh, run_id, journal)
        added = replay_count(wh) - before
    for shard in shards:
        shard.unlink(missing_ok=True)
    for journal in journals:
        if missing.get(journal):
            log.warning("kept %s: the warehouse lacks %d of its answers", journal,
                        missing[journal])
        else:
            journal.unlink(missing_ok=True)
    return added


def replay_count(wh: Warehouse) -> int:
    """Rows in `replays`, every run's."""
    return wh.execute("SELECT count(*) FROM replays").fetchone()[0]


def lacking(wh: Warehouse, journal: Path, shards: list[Path]) -> int | None:
    """How many of a journal's answers neither `replays` nor the shards hold, by (run, request,
    model): DuckDB reads only those keys of each line. None when DuckDB cannot read the journal
    (a line cut short by a killed writer, a line past its object size): parse it to know."""
    in_shards = ("AND NOT EXISTS (SELECT 1 FROM read_parquet($shards, union_by_name = true) AS s "
                 "WHERE s.run_id = j.run_id AND s.request_id = j.request_id "
                 "AND s.model = j.model)") if shards else ""
    try:
        return wh.execute(
            "SELECT count(*) FROM read_json($journal, format = 'newline_delimited', columns = "
            "{run_id: 'VARCHAR', request_id: 'VARCHAR', model: 'VARCHAR'}) AS j "
            "WHERE NOT EXISTS (SELECT 1 FROM replays AS r WHERE r.run_id = j.run_id "
            f"AND r.request_id = j.request_id AND r.model = j.model) {in_shards}",
            {"journal": str(journal), **({"shards": [str(s) for s in shards]} if shards else {})},
        ).fetchone()[0]
    except duckdb.Error:
        return None


def store_shards(wh: Warehouse, run_id: str, shards: list[Path]) -> None:
    """Append the shards' rows, and cache their fresh successful answers (no transaction)."""
    files = {"files": [str(s) for s in shards]}
    source = "read_parquet($files, union_by_name = true)"
    columns = ", ".join(f'"{r[0]}"' for r in wh.execute(f"DESCRIBE SELECT * FROM {source}", files))
    wh.execute(f"INSERT INTO replays ({columns}) SELECT {columns} FROM {source} "
               "ON CONFLICT DO NOTHING", files)
    cached = ", ".join(f'"{c}"' for c in CACHE_COLUMNS)
    wh.execute(f"INSERT INTO response_cache ({cached}, paid_by_run) SELECT {cached}, $run_id "
               f"FROM {source} WHERE status = 'ok' AND NOT from_cache {CACHE_UPSERT}",
               {**files, "run_id": run_id})


def store_journal(wh: Warehouse, run_id: str, journal: Path) -> int:
    """Append the journal's rows the warehouse lacks, a piece at a time (no transaction); return
    how many it still lacks."""
    missing = 0
    with journal.open("rb") as fh:
        rest = b""
        while True:
            data = fh.read(JOURNAL_PIECE)
            whole = rest + data
            cut = len(whole) if not data else whole.rfind(b"\n") + 1
            piece, rest = whole[:cut], whole[cut:]  # a line being cut is read with the next piece
            if rows := journal_rows(piece):
                _store(wh, pl.DataFrame(rows, infer_schema_length=None), run_id)
                missing += unstored(wh, run_id, rows)
            if not data:
                return missing


def unstored(wh: Warehouse, run_id: str, rows: list[dict[str, Any]]) -> int:
    """How many of these journal rows have no row in `replays` (by run, request and model)."""
    if not rows:
        return 0
    keys = pl.DataFrame({"request_id": [r.get("request_id") for r in rows],
                         "model": [r.get("model") for r in rows]},
                        schema={"request_id": pl.String, "model": pl.String})
    with wh.registered("_journaled", keys):
        return wh.execute("SELECT count(*) FROM _journaled AS j WHERE NOT EXISTS ("
                          "SELECT 1 FROM replays AS r WHERE r.run_id = $run_id "
                          "AND r.request_id = j.request_id AND r.model = j.model)",
                          {"run_id": run_id}).fetchone()[0]


def request_params(logged: str | None, candidate: Candidate,
                   model_id: str | None = None) -> dict[str, Any]:
    """The sampling parameters to send: the logged ones, overridden by the candidate's; a
    production replay also carries the model the request was logged with."""
    params = json.loads(logged) if logged else {}
    params.update(candidate.params)
    if candidate.replays_production:
        params["model"] = (model_id or "").split("/", 1)[-1]
    return params


def prepare(pending: pl.DataFrame, candidate: Candidate) -> list[dict[str, Any]]:
    """Each pending request with its messages (as the logged JSON text: a night's parsed
    messages would be most of replay's memory; `messages_of` parses them just before sending),
    parameters (and them as JSON, for its row) and cache key."""
    requests = []
    # most requests share their params: one dict and one JSON text for all of them
    shared: dict[tuple[str | None, str | None], tuple[dict[str, Any], str]] = {}
    for row in pending.iter_rows(named=True):
        raw = row["messages"]
        messages = loads(raw.encode()) if isinstance(raw, str) else json.loads(raw)
        same = (row["params"], row.get("model_id") if candidate.replays_production else None)
        if (known := shared.get(same)) is None:
            params = request_params(row["params"], candidate, row.get("model_id"))
            known = shared[same] = (params, json.dumps(params))
        params, params_json = known
        requests.append({"request_id": row["request_id"], "prompt_version": row["prompt_version"],
                         "ts": row.get("ts"), "messages": raw, "send_params": params,
                         "params_json": params_json,
                         "cache_key": cache_key(candidate, messages, params)})
    return requests


def messages_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's messages, parsed from the JSON text `prepare` keeps."""
    raw = request["messages"]
    return loads(raw.encode()) if isinstance(raw, str) else raw


def cached_answers(wh: Warehouse, keys: list[str]) -> dict[str, Completion]:
    """Answers already paid for, by cache key."""
    if not keys:
        return {}
    with wh.registered("_keys", pl.DataFrame({"cache_key": keys})):
        found = wh.frame("cached_answers")
    return {r["cache_key"]: Completion.from_row(r) for r in found.iter_rows(named=True)}


def http_client(candidate: Candidate) -> aiohttp.ClientSession:
    """An aiohttp session whose pool is sized to the candidate's concurrency.

    No timeout of aiohttp's own but for connecting: each attempt runs under its own (see
    `HTTPProvider`), and a timer per read would cost CPU on every streamed token. No cookies, no
    redirects. A proxy from the environment (HTTPS_PROXY, NO_PROXY, ...) is looked up once here,
    not on every request as aiohttp's `trust_env` would (with a .netrc lookup in a thread each)."""
    connector = aiohttp.TCPConnector(limit=candidate.max_concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, candidate.timeout_s))
    try:
        proxy, proxy_auth = get_env_proxy_for_url(URL(candidate.base_url))
    except LookupError:
        proxy, proxy_auth = None, None
    return aiohttp.ClientSession(connector=connector, timeout=timeout, proxy=proxy,
                                 proxy_auth=proxy_auth, cookie_jar=aiohttp.DummyCookieJar())


@dataclass
class ReplayPlan:
    """What one candidate (or one chunk of its requests) has left to send in a run."""

    settings: Settings
    run: Run
    candidate: Candidate
    groups: list[list[dict[str, Any]]]  # identical requests together: each group is asked once
    requested: int = 0
    reused: int = 0
    recovered: int = 0
    chunk: int = 0
    use_cache: bool = True

    @property
    def size(self) -> int:
        return sum(len(g) for g in self.groups)


@dataclass
class Sent:
    """What sending one plan did; its answers are in `shards` and the journal."""

    ok: int
    failed: int
    reused: int
    shards: list[str]
    pid: int = 0  # the process that sent them (a Dask worker's, or this one's)


def plan_replay(settings: Settings, run: Run, candidate: Candidate,
                use_cache: bool = True) -> ReplayPlan:
    """In the warehouse, briefly: load what a killed attempt left, list the pending requests, and
    store at once those the response cache already answers."""
    redacted = settings.needs_redaction(candidate)
    with _in_warehouse, open_warehouse(settings.warehouse) as wh:
        if redacted and wh.run("unredacted_samples", run_id=run.run_id):
            raise ReplaybenchError(f"{candidate.name} gets redacted requests, but run {run.run_id} "
                                   "has sampled requests not redacted yet: run the redact step first")
        recovered = load_files(wh, run.run_id, *leftovers(settings, run, candidate))
        requests = prepare(wh.frame("pending_replays", run_id=run.run_id, model=candidate.name,
                                    redacted=redacted,
                                    every_sampled=candidate.replays_production), candidate)
        cached = cached_answers(wh, [r["cache_key"] for r in requests]) if use_cache else {}
        rows = RowMaker(run, candidate, price_table(settings), settings.tz)
        reused = [rows.row(r, cached[r["cache_key"]].reused(), True)
                  for r in requests if r["cache_key"] in cached]
        if reused:
            store(wh, pl.DataFrame(reused, infer_schema_length=None), run.run_id)
    groups: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        if request["cache_key"] not in cached:
            groups.setdefault(request["cache_key"], []).append(request)
    return ReplayPlan(settings, run, candidate, list(groups.values()), len(requests) + recovered,
                      len(reused), recovered, use_cache=use_cache)


def chunks(plan: ReplayPlan, size: int) -> list[ReplayPlan]:
    """The plan split into pieces of about `size` requests (groups are never split)."""
    pieces: list[ReplayPlan] = []
    current: list[list[dict[str, Any]]] = []
    for group in plan.groups:
        current.append(group)
        if sum(len(g) for g in current) >= size:
            pieces.append(dataclasses.replace(plan, groups=current, chunk=len(pieces) + 1))
            current = []
    if current or not pieces:
        pieces.append(dataclasses.replace(plan, groups=current, chunk=len(pieces) + 1))
    return pieces


async def send_plan(plan: ReplayPlan) -> Sent:
    """Ask every pending request of a plan; no warehouse here, only the journal and shards. Runs
    in this process or on a Dask worker."""
    settings, run, candidate = plan.settings, plan.run, plan.candidate
    rows = RowMaker(run, candidate, price_table(settings), settings.tz)
    # the same key every night (no run id), so the Prefect UI keeps each candidate's history
    key = f"replay-{file_stem(candidate.name)}" + (f"-{plan.chunk}" if plan.chunk else "")
    with progress.phase(f"replay {candidate.name}", plan.size, key=progress.slug(key)) as phase:
        writer = ReplayWriter(rows, journal_path(settings, run, candidate, plan.chunk),
                              shard_folder(settings), phase)
        try:
            known = (KnownAnswers(writer.journal.parent, writer.journal, file_stem(candidate.name))
                     if plan.use_cache else None)
            await send_all(candidate, settings.api_key(candidate), plan.groups, writer, known)
        finally:
            await writer.close()
    return Sent(writer.ok, writer.failed, writer.reused, writer.shards, os.getpid())


def load_replay(settings: Settings, run: Run, candidate: Candidate, plan: ReplayPlan,
                sent: list[Sent]) -> ReplayOutcome:
    """In the warehouse, briefly: store the shards the sending wrote (and any journal row they
    lack); each journal is deleted once the warehouse holds its answers."""
    with _in_warehouse, open_warehouse(settings.warehouse) as wh:
        load_files(wh, run.run_id, *leftovers(settings, run, candidate))
    ok = sum(s.ok for s in sent) + plan.recovered + plan.reused
    failed = sum(s.failed for s in sent)
    return ReplayOutcome(candidate.name, plan.requested, ok, failed,
                         from_cache=plan.reused + sum(s.reused for s in sent),
                         from_journal=plan.recovered, senders=sorted({s.pid for s in sent}))


class KnownAnswers:
    """What other runs on this warehouse have paid for but not stored yet, and what they are
    asking right now, so that a nightly run beside a backfill (two processes), or a backfill's
    days side by side, never pay twice for the same question.

    - Answers: every process appends each answer to its run's journal (`<warehouse>.journal/`)
      the moment it arrives; this reads the new lines of the journals of the same candidate
      whenever a question is not known yet (a `stat` tells when there is nothing new).
    - Questions in flight: a process asking a question holds a POSIX record lock on one byte of
      `<warehouse>.journal/asking.lock` at an offset given by the cache key, until the answer is
      journaled. Another process wanting it waits for the lock, then finds the answer in the
      journal. The journals are read after the lock is taken, never only before: a process that
      asked and let go of the lock a moment earlier has journaled its answer by then. The kernel
      frees a killed process's locks."""

    POLL_S = 0.02
    RACY_NS = 100_000_000  # a listing this close to the folder's last change may have missed one

    def __init__(self, folder: Path, own: Path, stem: str):
        self.folder, self.own, self.stem = folder, own, stem  # stem: `file_stem` of the name
        self.offsets: dict[Path, int] = {}
        self.answers: dict[str, Completion] = {}
        self.files: list[Path] = []
        self.listed = -1
        self.lock_fd = _asking_lock(folder)

    def get(self, cache_key: str) -> Completion | None:
        if cache_key not in self.answers:
            self.refresh()
        return self.answers.get(cache_key)

    async def ask(self, cache_key: str) -> Completion | None:
        """Take this question's lock, waiting while another process asks it; then the answer
        another process has journaled for it, if any (the caller holds the lock and must `done`
        it)."""
        offset = int(cache_key[:15], 16)
        while True:
            try:
                fcntl.lockf(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                break
            except OSError:
                await asyncio.sleep(self.POLL_S)
        try:
            return self.get(cache_key)
        except BaseException:
            self.done(cache_key)
            raise

    def done(self, cache_key: str) -> None:
        fcntl.lockf(self.lock_fd, fcntl.LOCK_UN, 1, int(cache_key[:15], 16))

    def _same_candidate(self, name: str) -> bool:
        """`<run_id>--<stem>[--<chunk>].jsonl` names this candidate."""
        rest = name.removesuffix(".jsonl").partition("--")[2]
        head, _, chunk = rest.rpartition("--")
        return rest == self.stem or (head == self.stem and chunk.isdigit())

    def refresh(self) -> None:
        """Read the lines added to the candidate's other journals since the last look."""
        listed = os.stat(self.folder).st_mtime_ns
        # a journal came or went; or it may have, unseen: file times are taken from a coarse
        # clock, so a journal made within the same tick as the last listing leaves the time as it was
        if listed != self.listed or time.time_ns() - listed < self.RACY_NS:
            self.listed = listed
            self.files = [self.folder / n for n in os.listdir(self.folder)
                          if n.endswith(".jsonl") and n != self.own.name
                          and self._same_candidate(n)]
        for path in self.files:
            start = self.offsets.get(path, 0)
            try:
                if os.stat(path).st_size <= start:
                    continue
                with path.open("rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:  # loaded and removed meanwhile: in the cache now
                continue
            whole = data.rfind(b"\n") + 1  # a line being written is read next time
            self.offsets[path] = start + whole
            for row in journal_rows(data[:whole]):
                if row.get("status") == "ok" and row.get("cache_key"):
                    self.answers[row["cache_key"]] = Completion.from_row(row)


_asking_locks: dict[Path, int] = {}
_asking_guard = threading.Lock()


def _asking_lock(folder: Path) -> int:
    """This process's descriptor of the folder's `asking.lock`. It stays open for the life of the
    process: closing any descriptor of the file would drop all of the process's record locks."""
    with _asking_guard:
        if folder not in _asking_locks:
            folder.mkdir(parents=True, exist_ok=True)
            _asking_locks[folder] = os.open(folder / "asking.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return _asking_locks[folder]


# the questions being asked right now in this process, by cache key: a second run asking the same
# one (a backfill's days side by side) waits for the answer instead of paying for it again
_in_flight: dict[str, asyncio.Future] = {}

# one plan or load at a time in a process: DuckDB connections of one process registering frames
# at once race in its catalog ("python_arrow_scan does not exist"), and two loads would race on
# the cache rows
_in_warehouse = threading.Lock()

_frozen = [0]  # sends under way in this process that hold the collector's heap frozen
_frozen_guard = threading.Lock()


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """While sending, the objects already alive (Prefect, pydantic, DuckDB, polars: some 200,000)
    are left out of the cyclic garbage collector's passes: each full pass over them costs
    ~0.1-0.3 s of CPU and a send makes several, whatever its size. Garbage among them waits for
    the first pass after the last send of the process ends; nothing else changes."""
    with _frozen_guard:
        _frozen[0] += 1
        gc.freeze()  # also a later send's: what an earlier one allocated is alive for its time
    try:
        yield
    finally:
        with _frozen_guard:
            _frozen[0] -= 1
            if not _frozen[0]:
                gc.unfreeze()


async def replay_candidate(settings: Settings, run: Run, candidate: Candidate,
                           use_cache: bool = True) -> ReplayOutcome:
    """Send the run's pending requests to one candidate from this process and store every answer."""
    plan = await asyncio.to_thread(plan_replay, settings, run, candidate, use_cache)
    sent = await send_plan(plan)
    return await asyncio.to_thread(load_replay, settings, run, candidate, plan, [sent])


async def send_all(candidate: Candidate, api_key: str | None,
                   requests: list[list[dict[str, Any]]], writer: ReplayWriter,
                   known: KnownAnswers | None = None) -> None:
    """Ask every group of identical requests once, concurrently, within the candidate's limits;
    stop sending once the endpoint has failed `retry.breaker` requests in a row. An answer another
    run has already paid for but not yet stored (`known`), or is asking for right now in this
    process, is taken instead of being paid for twice."""
    if not requests:
        return
    with heap_frozen():
        await _send_all(candidate, api_key, requests, writer, known)


async def _send_all(candidate: Candidate, api_key: str | None,
                    requests: list[list[dict[str, Any]]], writer: ReplayWriter,
                    known: KnownAnswers | None) -> None:
    async with http_client(candidate) as client:
        provider = provider_class(candidate.provider)(candidate, api_key, client,
                                                      limiter_for(candidate))
        gate = asyncio.Semaphore(candidate.max_concurrency)
        streak: list[Completion] = []  # consecutive failures, newest last

        async def ask(same: list[dict[str, Any]]) -> None:
            request = same[0]
            key = request["cache_key"]
            other = _in_flight.get(key)
            if other is not None and other.get_loop() is asyncio.get_running_loop():
                # another run in this process (a backfill's other day) is asking the same
                # question right now: wait for its answer rather than pay for it again
                await asyncio.wait([other])
                if not other.cancelled() and other.result().status == "ok":
                    for twin in same:
                        writer.add(twin, other.result().reused(), from_cache=True)
                    return
            mine = asyncio.get_running_loop().create_future()
            _in_flight.setdefault(key, mine)
            try:
                # at most max_concurrency questions asked, and locked, at once: the kernel walks
                # a file's record locks on every lock and unlock, so none is held while queued
                async with gate:
                    # waits while another process asks the same question; then finds any answer
                    # another run has paid for and not stored yet
                    found = await known.ask(key) if known is not None else None
                    try:
                        answer = found or await ask_once(request)
                        # journaled before the lock is given back: whoever waits finds it there
                        if found is None:
                            writer.add(request, answer)
                            for twin in same[1:]:  # the same question again: paid once
                                writer.add(twin, answer.reused(),
                                           from_cache=answer.status == "ok")
                        else:  # another process paid for it: every copy here is a reuse
                            for twin in same:
                                writer.add(twin, found.reused(), from_cache=True)
                    finally:
                        if known is not None:
                            known.done(key)
            except BaseException:
                mine.cancel()
                raise
            else:
                mine.set_result(answer)
            finally:
                if _in_flight.get(key) is mine:
                    del _in_flight[key]

        async def ask_once(request: dict[str, Any]) -> Completion:
            if len(streak) >= candidate.retry.breaker:
                last = streak[-1]
                return Completion(
                    status="error", error_kind=last.error_kind, attempts=0,
                    error=f"not sent: {candidate.name} failed {len(streak)} requests in a "
                          f"row (last: {last.error})"[:500])
            answer = await provider.complete(messages_of(request), request["send_params"])
            if answer.status == "ok":
                streak.clear()
            else:
                streak.append(answer)
            return answer

        # a few workers take the groups in turn, rather than a task per group at once (a night's
        # worth of waiting tasks held memory); twice the gate, so that those waiting for another
        # run's answer leave it busy
        waiting = iter(requests)

        async def worker() -> None:
            for same in waiting:
                await ask(same)

        # none still running when the client closes
        await together(worker() for _ in range(min(len(requests), 2 * candidate.max_concurrency)))


async def together(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all at once. On the first failure (or a cancellation) cancel the others and wait
    for them to end before raising it, so that nothing still runs against a client or a journal
    the caller is about to close. (A TaskGroup would do the same but raise an ExceptionGroup,
    hiding the message the run records.)"""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@task(name="replay", task_run_name="replay-{candidate.name}", cache_policy=NO_CACHE)
async def replay_task(settings: Settings, run: Run, candidate: Candidate,
                      use_cache: bool = True) -> ReplayOutcome:
    return await replay_candidate(settings, run, candidate, use_cache)


@task(name="send", task_run_name="send-{plan.candidate.name}-{plan.chunk}", cache_policy=NO_CACHE)
async def send_task(plan: ReplayPlan) -> Sent:
    return await send_plan(plan)


@flow(name="replaybench-replay-on-dask")
def replay_on_dask(plans: list[ReplayPlan]) -> list[Sent]:
    """Each chunk sent by a task on the Dask cluster (the runner is set by `replay_all`)."""
    futures = [send_task.submit(p) for p in plans]
    return [f.result() for f in futures]


async def replay_all(settings: Settings, run: Run, use_cache: bool = True) -> list[ReplayOutcome]:
    """Every candidate's replay: from this process (one task per candidate, all at once), or
    chunked over a Dask cluster's workers, whose shards this process then loads."""
    if settings.runner.kind == "local":
        return await together(replay_task(settings, run, c, use_cache)
                              for c in settings.candidates)
    from prefect_dask import DaskTaskRunner

    plans = [await asyncio.to_thread(plan_replay, settings, run, c, use_cache)
             for c in settings.candidates]
    pieces = [(i, piece) for i, plan in enumerate(plans)
              for piece in chunks(plan, settings.runner.chunk_size)]
    runner = (DaskTaskRunner(address=settings.runner.address) if settings.runner.address else
              DaskTaskRunner(cluster_kwargs={"n_workers": settings.runner.workers,
                                             "threads_per_worker": 1, "processes": True,
                                             "host": "127.0.0.1", "dashboard_address": None}))
    sent = await asyncio.to_thread(replay_on_dask.with_options(task_runner=runner),
                                   [p for _, p in pieces])
    outcomes = []
    for i, plan in enumerate(plans):
        mine = [s for (j, _), s in zip(pieces, sent, strict=True) if j == i]
        outcomes.append(await asyncio.to_thread(load_replay, settings, run, plan.candidate, plan,
                                                mine))
    return outcomes
