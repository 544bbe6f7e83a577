"""Validate a run's answers: one row per (answer, check) in `checks`.

The checks themselves live in `replaybench.checks`: suites from `data/suites/*.yaml`, run as the
run's Checkpoint in the Great Expectations project (`gx/`), Data Docs beside the reports.
"""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.checks.derive import derive_columns
from replaybench.checks.run import check_answers, redact_reasons, run_checks
from replaybench.checks.suites import CheckSpec, JudgeSpec, SuiteError, SuiteSpec, load_suite, load_suites
from replaybench.config import Settings
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse

__all__ = ["CheckSpec", "JudgeSpec", "SuiteError", "SuiteSpec", "derive_columns", "load_suite",
           "load_suites", "redact_reasons", "run_checks", "validate_run", "validate_task"]


def validate_run(settings: Settings, run: Run) -> int:
    """Check every answer of the run (production's and the candidates'); store one row per
    answer and check, replacing any from an earlier attempt. Returns the number of check rows.
    The warehouse is held only to read the answers and to write the checks: the checks
    themselves (and a judge's HTTP calls) run without it, so another run is not kept waiting."""
    with open_warehouse(settings.warehouse) as wh:
        answers = wh.frame("answers", run_id=run.run_id)
    checks = check_answers(settings, answers, run.run_id)
    with open_warehouse(settings.warehouse) as wh, wh.transaction():
        wh.execute("DELETE FROM checks WHERE run_id = $r", {"r": run.run_id})
        wh.insert("checks", checks.with_columns(run_id=pl.lit(run.run_id)))
    return len(checks)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings, run: Run) -> int:
    return validate_run(settings, run)
