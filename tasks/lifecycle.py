"""Run lifecycle tasks (`replaybench.lifecycle`): start the night's run, finish it, fail it,
announce its end."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import events, lifecycle
from replaybench.config import Settings
from replaybench.replay import ReplayOutcome
from replaybench.runs import Run


@task(name="start-run", cache_policy=NO_CACHE)
def start_run_task(settings: Settings, run_date: date, kind: str, force: bool) -> Run | None:
    return lifecycle.start_run(settings, run_date, kind, force)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run_task(settings: Settings, run: Run, outcomes: list[ReplayOutcome]) -> str:
    return lifecycle.finish_run(settings, run, outcomes)


@task(name="announce-run", cache_policy=NO_CACHE)
def announce_run_task(settings: Settings, run: Run) -> None:
    """The run's end as it is stored (completed or partial, with its reason and report) as a
    Prefect event; called once the report is written."""
    lifecycle.announce_end(settings, run.run_id, events.current_flow_run())


@task(name="fail-run", cache_policy=NO_CACHE)
def fail_run_task(settings: Settings, run: Run, reason: str) -> None:
    lifecycle.fail_run(settings, run, reason)
