"""Fetch task: the night's first step, reading its window's logs from every configured source
(`replaybench.ingest.sources.fetch_for_run`)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.ingest.sources import SourcesRead, fetch_for_run
from replaybench.runs import Run


@task(name="fetch-logs", cache_policy=NO_CACHE)
def fetch_task(settings: Settings, run: Run) -> SourcesRead:
    return fetch_for_run(settings, run, get_run_logger())
