"""Replay: ask one candidate every sampled request it has not answered yet in this run.

One task per candidate; inside it, one `httpx.AsyncClient` with at most `max_concurrency` requests
in flight. Answers are written to `replays` in small batches as they arrive, with their provenance
(base URL, model sent, parameters, price entry), so a killed run keeps what it had paid for.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Candidate, Settings
from replaybench.pricing import Costing, PriceTable
from replaybench.providers import Completion, provider_class
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0


@dataclass
class ReplayOutcome:
    """What one candidate's replay did in this run."""

    model: str
    requested: int
    ok: int
    failed: int

    @property
    def dead(self) -> bool:
        """Every request failed: the endpoint is down, misconfigured, or refuses us."""
        return self.requested > 0 and self.ok == 0


class ReplayWriter:
    """Buffers answers and appends them to `replays` every FLUSH_ROWS rows or FLUSH_SECONDS."""

    def __init__(self, wh: Warehouse, run: Run, candidate: Candidate, costing: Costing | None):
        self.wh, self.run, self.candidate, self.costing = wh, run, candidate, costing
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.ok = self.failed = 0

    def add(self, request: dict[str, Any], params: dict[str, Any], answer: Completion) -> None:
        row = answer.as_row()
        row.update(
            run_id=self.run.run_id, request_id=request["request_id"], model=self.candidate.name,
            prompt_version=request["prompt_version"], provider=self.candidate.provider,
            base_url=self.candidate.base_url, model_sent=self.candidate.model,
            params=json.dumps(params),
            cost_usd=self.costing.cost(answer.input_tokens, answer.cached_tokens,
                                       answer.output_tokens) if self.costing else None,
            price_version=self.costing.version if self.costing else None,
        )
        self.rows.append(row)
        if answer.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if len(self.rows) >= FLUSH_ROWS or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.wh.insert("replays", pl.DataFrame(self.rows, infer_schema_length=None),
                           "ON CONFLICT DO NOTHING")
            self.rows.clear()
        self.last_flush = time.monotonic()


def request_params(logged: str | None, candidate: Candidate) -> dict[str, Any]:
    """The sampling parameters to send: the logged ones, overridden by the candidate's."""
    params = json.loads(logged) if logged else {}
    params.update(candidate.params)
    return params


async def replay_candidate(settings: Settings, run: Run, candidate: Candidate) -> ReplayOutcome:
    """Send the run's pending requests to one candidate and store every answer."""
    api_key = settings.api_key(candidate)
    costing = PriceTable.load(settings.prices).costing(candidate, run.window_start.date())
    with open_warehouse(settings.warehouse) as wh:
        pending = wh.frame("pending_replays", run_id=run.run_id, model=candidate.name)
        writer = ReplayWriter(wh, run, candidate, costing)
        slots = candidate.max_concurrency
        limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
        timeout = httpx.Timeout(candidate.timeout_s, connect=min(10.0, candidate.timeout_s))
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            provider = provider_class(candidate.provider)(candidate, api_key, client)
            gate = asyncio.Semaphore(slots)

            async def ask(request: dict[str, Any]) -> None:
                params = request_params(request["params"], candidate)
                async with gate:
                    answer = await provider.complete(json.loads(request["messages"]), params)
                writer.add(request, params, answer)

            try:
                await asyncio.gather(*(ask(r) for r in pending.iter_rows(named=True)))
            finally:
                writer.flush()
    return ReplayOutcome(candidate.name, len(pending), writer.ok, writer.failed)


@task(name="replay", task_run_name="replay-{candidate.name}", cache_policy=NO_CACHE)
async def replay_task(settings: Settings, run: Run, candidate: Candidate) -> ReplayOutcome:
    return await replay_candidate(settings, run, candidate)
