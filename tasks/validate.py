"""Validate a run's answers: one row per (answer, check) in `checks`.

The checks themselves live in `replaybench.checks`: suites from `data/suites/*.yaml`, run as the
run's Checkpoint in the Great Expectations project (`gx/`), Data Docs beside the reports; the
answers read from the warehouse in chunks (`replaybench.checks.answers`).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.checks.derive import derive_columns
from replaybench.checks.run import check_answers, redact_reasons, run_checks, validate_run
from replaybench.checks.suites import CheckSpec, JudgeSpec, SuiteError, SuiteSpec, load_suite, load_suites
from replaybench.config import Settings
from replaybench.runs import Run

__all__ = ["CheckSpec", "JudgeSpec", "SuiteError", "SuiteSpec", "check_answers", "derive_columns",
           "load_suite", "load_suites", "redact_reasons", "run_checks", "validate_run",
           "validate_task"]


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings, run: Run) -> int:
    return validate_run(settings, run)
