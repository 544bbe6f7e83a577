"""Run lifecycle steps: open the night's run (or skip a completed day), close it with its status."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import runs
from replaybench.config import Settings
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse
from tasks.replay import ReplayOutcome


def run_status(outcomes: list[ReplayOutcome]) -> str:
    """`partial` when a candidate could not answer at all, else `completed`."""
    return runs.PARTIAL if any(o.dead for o in outcomes) else runs.COMPLETED


@task(name="start-run", cache_policy=NO_CACHE)
def start_run_task(settings: Settings, run_date: date, kind: str, force: bool) -> Run | None:
    for candidate in settings.candidates:  # a missing key fails the night before anything is paid
        settings.api_key(candidate)
    with open_warehouse(settings.warehouse) as wh:
        return runs.begin(wh, settings, run_date, kind, force)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run_task(settings: Settings, run: Run, outcomes: list[ReplayOutcome]) -> str:
    status = run_status(outcomes)
    dead = [o.model for o in outcomes if o.dead]
    error = f"no answers from {', '.join(dead)}" if dead else None
    with open_warehouse(settings.warehouse) as wh:
        runs.finish(wh, run.run_id, status, error=error)
    return status


@task(name="fail-run", cache_policy=NO_CACHE)
def fail_run_task(settings: Settings, run: Run, reason: str) -> None:
    with open_warehouse(settings.warehouse) as wh:
        runs.finish(wh, run.run_id, runs.FAILED, error=reason)
