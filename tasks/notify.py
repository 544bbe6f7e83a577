"""The e-mail step as a Prefect task (`replaybench.report.email`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.report.email import notify


@task(name="notify", cache_policy=NO_CACHE)
def notify_task(settings: Settings, run_id: str, report: str | None) -> str:
    return notify(settings, run_id, report)
