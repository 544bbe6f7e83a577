"""The sample step as a Prefect task (`replaybench.sample`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.runs import Run
from replaybench.sample import draw_sample
from replaybench.warehouse import open_warehouse


@task(name="sample", cache_policy=NO_CACHE)
def sample_task(settings: Settings, run: Run) -> dict[str, int]:
    with open_warehouse(settings.warehouse) as wh:
        return draw_sample(wh, settings, run)
