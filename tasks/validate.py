"""Validate a run's answers: one row per (answer, check) in `checks` (`replaybench.checks.run`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.checks.run import validate_run
from replaybench.config import Settings
from replaybench.runs import Run


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings, run: Run) -> int:
    """Check every answer of the run and store the rows; returns how many."""
    return validate_run(settings, run)
