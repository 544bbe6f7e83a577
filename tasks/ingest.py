"""Fetch: the night's first step reads its window's logs from every configured source (the ledger
skips what was read already), waits for late logs within `freshness.wait`, and records on the run
why its logs count as incomplete, if they do (the run then ends `partial` with that reason)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from replaybench import runs
from replaybench.config import Settings
from replaybench.ingest import sources
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


@dataclass
class SourcesRead:
    """What the fetch did (a one-line summary) and why the logs are incomplete (None: complete)."""

    summary: str
    incomplete: str | None


@task(name="fetch-logs", cache_policy=NO_CACHE)
def fetch_task(settings: Settings, run: Run) -> SourcesRead:
    log = get_run_logger()
    with open_warehouse(settings.warehouse) as wh:
        if not settings.sources:
            check = sources.freshness(wh, settings, run.window_start, run.window_end)
            fetched = sources.Fetched()
        else:
            fetched, check = sources.fetch_until_fresh(wh, settings, run.window_start, run.window_end)
        for failure in fetched.failures:
            log.warning("source %s: %s not read: %s", failure.source, failure.item, failure.error)
        runs.note_incomplete_logs(wh, run.run_id, check.reason())
    return SourcesRead(fetched.summary() if settings.sources else "no sources configured",
                       check.reason())
