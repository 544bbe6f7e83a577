"""The report step as a Prefect task: render and publish (`replaybench.report.page`), then link
the report from the Prefect UI (`replaybench.report.publish.publish_artifacts`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.report.page import report_and_publish
from replaybench.report.publish import publish_artifacts
from replaybench.warehouse import open_warehouse


@task(name="report", cache_policy=NO_CACHE)
def report_task(settings: Settings, run_id: str) -> str:
    path, outcome = report_and_publish(settings, run_id)
    with open_warehouse(settings.warehouse) as wh:
        publish_artifacts(wh, run_id, outcome.url or path.as_uri(), outcome.url is not None)
    return str(path)
