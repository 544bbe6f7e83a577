"""The nightly regression: sample yesterday's traffic, replay it against every candidate,
validate the answers, score them against production, and write the report."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from replaybench.config import DEFAULT_CONFIG, load_settings
from tasks.lifecycle import fail_run_task, finish_run_task, start_run_task
from tasks.notify import notify_task
from tasks.redact import redact_task
from tasks.replay import replay_all
from tasks.report import report_task
from tasks.sample import sample_task
from tasks.score import score_task
from tasks.validate import validate_task


@flow(name="nightly")
async def nightly(run_date: date | None = None, config: str = DEFAULT_CONFIG,
                  force: bool = False, kind: str = "nightly",
                  fleet_url: str | None = None, use_cache: bool = True) -> dict | None:
    """Regression for the day(s) before `run_date` (default: today in the configured timezone).

    `fleet_url` points the candidates served by the local model fleet at one started elsewhere
    (the demo and the tests start it on a free port). `use_cache=False` asks every request afresh
    instead of reusing answers already paid for. Returns the run's id, status and report
    path; None when that day was already completed.
    """
    settings = load_settings(config)
    if fleet_url:
        settings = settings.with_fleet(fleet_url)
    run = start_run_task(settings, run_date or settings.default_date(), kind, force)
    if run is None:
        return None
    try:
        sample_task(settings, run)
        redact_task(settings, run)
        outcomes = await replay_all(settings, run, use_cache)
        validate_task(settings, run)
        score_task(settings, run)
        status = finish_run_task(settings, run, outcomes)
        report = report_task(settings, run.run_id)
    except Exception as exc:
        fail_run_task(settings, run, f"{type(exc).__name__}: {exc}")
        raise
    try:  # the e-mail records its own failure; nothing about it may fail the night
        notify_task(settings, run.run_id, report)
    except Exception:
        get_run_logger().warning("e-mail step failed", exc_info=True)
    return {"run_id": run.run_id, "status": status, "report": report}
