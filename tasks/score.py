"""The score step as a Prefect task: tonight's scores and the decisions their evidence serves
(`replaybench.decide.scores`); each decision the night looked at becomes a Prefect event and the
newest version of its artifact (`replaybench.events.publish_decisions`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import events
from replaybench.config import Settings
from replaybench.decide.scores import score_run
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


@task(name="score", cache_policy=NO_CACHE)
def score_task(settings: Settings, run: Run) -> int:
    with open_warehouse(settings.warehouse) as wh:
        scored = len(score_run(wh, settings, run))
        looked = events.looked_decisions(wh, run.run_id)
    events.publish_decisions(looked)
    return scored

