"""Replay: ask one candidate every sampled request it has not answered yet in this run.

One task per candidate; inside it, one `httpx.AsyncClient` (on aiohttp's connection pool, which holds
up at high concurrency where httpcore's does not) with at most `max_concurrency` requests in flight.

Nothing paid for is lost or paid twice:
- every answer is appended to a journal file the moment it arrives (one write, no database), and
  copied into `replays` in batches; a run killed with SIGKILL loses only the requests in flight,
  and its next attempt first loads what the journal holds;
- every successful answer also lands in `response_cache`; a request whose answer is cached is not
  sent again — by a rerun, a `--force` run or an overlapping backfill — unless `use_cache` is off;
- a candidate that fails `retry.breaker` requests in a row is taken as down: the rest of its
  requests are recorded as failed without being sent, and the night goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from httpx_aiohttp import AiohttpTransport
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.cache import cache_key
from replaybench.config import Candidate, Settings
from replaybench.errors import ReplaybenchError
from replaybench.limits import limiter_for
from replaybench.pricing import Costing, PriceTable
from replaybench.providers import Completion, provider_class
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0
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

    @property
    def dead(self) -> bool:
        """Every request failed: the endpoint is down, misconfigured, or refuses us."""
        return self.requested > 0 and self.ok == 0


def journal_path(settings: Settings, run: Run, candidate: Candidate) -> Path:
    folder = settings.warehouse.with_name(settings.warehouse.name + ".journal")
    return folder / f"{run.run_id}--{candidate.name}.jsonl"


class ReplayWriter:
    """Journals each answer at once; appends them to `replays` (and the cache) in batches."""

    def __init__(self, wh: Warehouse, run: Run, candidate: Candidate, prices: PriceTable,
                 journal: Path):
        self.wh, self.run, self.candidate, self.prices = wh, run, candidate, prices
        self._costings: dict[str | None, Costing | None] = {}
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.ok = self.failed = self.reused = 0
        journal.parent.mkdir(parents=True, exist_ok=True)
        self.journal = journal
        self._fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._flushing: asyncio.Future | None = None

    def row(self, request: dict[str, Any], answer: Completion, from_cache: bool) -> dict[str, Any]:
        costing = self.costing(request["send_params"].get("model")
                               if self.candidate.replays_production else None)
        row = answer.as_row()
        row.update(
            run_id=self.run.run_id, request_id=request["request_id"], model=self.candidate.name,
            prompt_version=request["prompt_version"], provider=self.candidate.provider,
            base_url=self.candidate.base_url,
            model_sent=request["send_params"].get("model", self.candidate.model)
            if self.candidate.replays_production else self.candidate.model,
            params=json.dumps(request["send_params"]), cache_key=request["cache_key"],
            from_cache=from_cache,
            cost_usd=costing.cost(answer.input_tokens, answer.cached_tokens,
                                  answer.output_tokens) if costing else None,
            price_version=costing.version if costing else None,
        )
        return row

    def costing(self, model: str | None) -> Costing | None:
        """The price of the run's day for the candidate (or, replaying production, for `model`)."""
        if model not in self._costings:
            day = self.run.run_date - timedelta(days=1)  # the (last) day the run replays
            self._costings[model] = self.prices.costing(self.candidate, day, model)
        return self._costings[model]

    def add(self, request: dict[str, Any], answer: Completion, from_cache: bool = False) -> None:
        row = self.row(request, answer, from_cache)
        if not from_cache:  # a cached answer is in the warehouse already; nothing to lose
            os.write(self._fd, (json.dumps(row) + "\n").encode())
        self.rows.append(row)
        if answer.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.reused += from_cache
        due = len(self.rows) >= FLUSH_ROWS or time.monotonic() - self.last_flush > FLUSH_SECONDS
        if due and (self._flushing is None or self._flushing.done()):
            # DuckDB releases the GIL while it writes: store in a thread, keep the loop answering
            batch, self.rows = self.rows, []
            self.last_flush = time.monotonic()
            self._flushing = asyncio.ensure_future(asyncio.to_thread(self._store, batch))

    def _store(self, batch: list[dict[str, Any]]) -> None:
        store(self.wh, pl.DataFrame(batch, infer_schema_length=None), self.run.run_id)

    async def close(self, finished: bool) -> None:
        """Store what is left; the journal goes once every answer is in the warehouse."""
        if self._flushing is not None:
            await self._flushing
        if self.rows:
            self._store(self.rows)
            self.rows = []
        os.close(self._fd)
        if finished:
            self.journal.unlink(missing_ok=True)


def store(wh: Warehouse, rows: pl.DataFrame, run_id: str) -> int:
    """Append replay rows, and cache the fresh successful answers, in one transaction."""
    fresh = rows.filter((pl.col("status") == "ok") & ~pl.col("from_cache"))
    with wh.transaction():
        added = wh.insert("replays", rows, "ON CONFLICT DO NOTHING")
        if not fresh.is_empty():
            wh.insert("response_cache",
                      fresh.select(CACHE_COLUMNS).with_columns(paid_by_run=pl.lit(run_id)),
                      "ON CONFLICT (cache_key) DO UPDATE SET output_text = excluded.output_text, "
                      "reasoning_text = excluded.reasoning_text, input_tokens = excluded.input_tokens, "
                      "output_tokens = excluded.output_tokens, "
                      "reasoning_tokens = excluded.reasoning_tokens, "
                      "cached_tokens = excluded.cached_tokens, latency_ms = excluded.latency_ms, "
                      "ttft_ms = excluded.ttft_ms, paid_by_run = excluded.paid_by_run")
    return added


def recover_journal(wh: Warehouse, path: Path, run_id: str) -> int:
    """Load the answers a killed attempt journaled but never stored; return how many were new."""
    if not path.exists():
        return 0
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the line being written when the process died
    added = store(wh, pl.DataFrame(rows, infer_schema_length=None), run_id) if rows else 0
    path.unlink()
    return added


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
    """Each pending request with its messages, parameters and cache key."""
    requests = []
    for row in pending.iter_rows(named=True):
        messages = json.loads(row["messages"])
        params = request_params(row["params"], candidate, row.get("model_id"))
        requests.append({**row, "messages": messages, "send_params": params,
                         "cache_key": cache_key(candidate, messages, params)})
    return requests


def cached_answers(wh: Warehouse, keys: list[str]) -> dict[str, Completion]:
    """Answers already paid for, by cache key."""
    if not keys:
        return {}
    with wh.registered("_keys", pl.DataFrame({"cache_key": keys})):
        found = wh.frame("cached_answers")
    fields = set(Completion.__dataclass_fields__)
    return {r["cache_key"]: Completion(**{k: v for k, v in r.items() if k in fields})
            for r in found.iter_rows(named=True)}


def http_client(candidate: Candidate) -> httpx.AsyncClient:
    """An AsyncClient on aiohttp's pool, sized to the candidate's concurrency."""
    limits = httpx.Limits(max_connections=candidate.max_concurrency,
                          max_keepalive_connections=candidate.max_concurrency)
    timeout = httpx.Timeout(candidate.timeout_s, connect=min(10.0, candidate.timeout_s))
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)


async def replay_candidate(settings: Settings, run: Run, candidate: Candidate,
                           use_cache: bool = True) -> ReplayOutcome:
    """Send the run's pending requests to one candidate and store every answer."""
    api_key = settings.api_key(candidate)
    prices = PriceTable.load(settings.prices)
    journal = journal_path(settings, run, candidate)
    redacted = settings.needs_redaction(candidate)
    with open_warehouse(settings.warehouse) as wh:
        if redacted and wh.run("unredacted_samples", run_id=run.run_id):
            raise ReplaybenchError(f"{candidate.name} gets redacted requests, but run {run.run_id} "
                                   "has sampled requests not redacted yet: run the redact step first")
        recovered = recover_journal(wh, journal, run.run_id)
        requests = prepare(wh.frame("pending_replays", run_id=run.run_id, model=candidate.name,
                                    redacted=redacted), candidate)
        cached = cached_answers(wh, [r["cache_key"] for r in requests]) if use_cache else {}
        writer = ReplayWriter(wh, run, candidate, prices, journal)
        to_send: dict[str, list[dict[str, Any]]] = {}  # identical requests are asked once
        for request in requests:
            if request["cache_key"] in cached:
                answer = cached[request["cache_key"]]
                writer.add(request, dataclasses.replace(answer, attempts=0), from_cache=True)
            else:
                to_send.setdefault(request["cache_key"], []).append(request)
        finished = False
        try:
            await send_all(candidate, api_key, list(to_send.values()), writer)
            finished = True
        finally:
            await writer.close(finished)
    return ReplayOutcome(candidate.name, len(requests) + recovered, writer.ok + recovered,
                         writer.failed, from_cache=writer.reused, from_journal=recovered)


async def send_all(candidate: Candidate, api_key: str | None,
                   requests: list[list[dict[str, Any]]], writer: ReplayWriter) -> None:
    """Ask every group of identical requests once, concurrently, within the candidate's limits;
    stop sending once the endpoint has failed `retry.breaker` requests in a row."""
    if not requests:
        return
    async with http_client(candidate) as client:
        provider = provider_class(candidate.provider)(candidate, api_key, client,
                                                      limiter_for(candidate))
        gate = asyncio.Semaphore(candidate.max_concurrency)
        streak: list[Completion] = []  # consecutive failures, newest last

        async def ask(same: list[dict[str, Any]]) -> None:
            request = same[0]
            async with gate:
                if len(streak) >= candidate.retry.breaker:
                    last = streak[-1]
                    answer = Completion(
                        status="error", error_kind=last.error_kind, attempts=0,
                        error=f"not sent: {candidate.name} failed {len(streak)} requests in a "
                              f"row (last: {last.error})"[:500])
                else:
                    answer = await provider.complete(request["messages"], request["send_params"])
                    if answer.status == "ok":
                        streak.clear()
                    else:
                        streak.append(answer)
            writer.add(request, answer)
            for twin in same[1:]:  # the same question asked again: the same answer, paid once
                writer.add(twin, dataclasses.replace(answer, attempts=0), from_cache=answer.status == "ok")

        await asyncio.gather(*(ask(r) for r in requests))


@task(name="replay", task_run_name="replay-{candidate.name}", cache_policy=NO_CACHE)
async def replay_task(settings: Settings, run: Run, candidate: Candidate,
                      use_cache: bool = True) -> ReplayOutcome:
    return await replay_candidate(settings, run, candidate, use_cache)
