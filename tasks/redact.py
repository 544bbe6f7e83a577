"""The redact step as a Prefect task (`replaybench.redact.requests`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.redact.requests import Redaction, redact_run
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


@task(name="redact", cache_policy=NO_CACHE)
def redact_task(settings: Settings, run: Run) -> Redaction:
    with open_warehouse(settings.warehouse) as wh:
        return redact_run(wh, settings, run)
