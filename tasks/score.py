"""The score step: tonight's scores, and the decisions their evidence serves (replaybench.decide);
each decision the night looked at becomes a Prefect event and the newest version of its artifact
(replaybench.events)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
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
    publish_decisions(looked)
    return scored


def publish_decisions(looked: list[dict[str, Any]]) -> None:
    """An event per decision (`replaybench.decision.<recommendation>`) and a new version of its
    artifact, keyed by prompt_version and candidate. Neither may fail the night."""
    from prefect.artifacts import create_markdown_artifact

    flow_run = events.current_flow_run()
    events.send(events.decision_event(row, flow_run) for row in looked)
    for row in looked:
        try:
            create_markdown_artifact(
                markdown=events.decision_markdown(row),
                key=events.decision_artifact_key(row["prompt_version"], row["candidate"]),
                description=f"{row['prompt_version']} × {row['candidate']}: "
                            f"{row['recommendation']} ({row['state']})")
        except Exception:
            get_run_logger().warning("artifact of decision %s × %s not written",
                                     row["prompt_version"], row["candidate"], exc_info=True)
