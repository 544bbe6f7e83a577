"""The score step: tonight's scores, and the decisions their evidence serves (replaybench.decide)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.decide.scores import score_run
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


@task(name="score", cache_policy=NO_CACHE)
def score_task(settings: Settings, run: Run) -> int:
    with open_warehouse(settings.warehouse) as wh:
        return len(score_run(wh, settings, run))
