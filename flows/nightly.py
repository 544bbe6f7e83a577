"""The nightly regression: fetch yesterday's logs from the sources, sample them, replay them
against every candidate, validate the answers, score them against production, write the report,
and announce how the night ended (a Prefect event: replaybench.events)."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from flows.replay import replay_all
from replaybench.config import DEFAULT_CONFIG, load_settings
from tasks.ingest import fetch_task
from tasks.lifecycle import (
    announce_run_task,
    count_failed_checks,
    fail_run_task,
    finish_run_task,
    mark_run_failed,
    start_run_task,
)
from tasks.notify import notify_task
from tasks.redact import Redaction, redact_task
from tasks.report import report_task
from tasks.sample import sample_task
from tasks.score import score_task
from tasks.validate import validate_task


@flow(name="replaybench-nightly", on_failure=[mark_run_failed], on_crashed=[mark_run_failed],
      on_cancellation=[mark_run_failed])
async def nightly(run_date: date | None = None, config: str = DEFAULT_CONFIG,
                  force: bool = False, kind: str = "nightly",
                  fleet_url: str | None = None, use_cache: bool = True) -> dict | None:
    """Regression for the day(s) before `run_date` (default: today in the configured timezone).

    `fleet_url` points the candidates served by the local model fleet at one started elsewhere
    (the demo and the tests start it on a free port). `use_cache=False` asks every request afresh
    instead of reusing answers already paid for. Returns the run's id, status and report
    path; None when that day was already completed. An end the try/except below cannot see
    (timeout, cancellation, crash) is recorded on the run by the `mark_run_failed` hook.
    """
    log = get_run_logger()
    settings = load_settings(config)
    if fleet_url:
        settings = settings.with_fleet(fleet_url)
    run_date = run_date or settings.default_date()
    run = start_run_task(settings, run_date, kind, force)
    if run is None:
        log.info("skipped: the day before %s is already completed", run_date)
        return None
    try:
        fetched = fetch_task(settings, run)
        log.info("logs: %s", fetched.summary)
        if fetched.incomplete:
            log.warning("%s: the night runs on what it has and ends partial", fetched.incomplete)
        sizes = sample_task(settings, run)
        log.info("sampled %d requests over %d prompt_versions", sum(sizes.values()), len(sizes))
        log.info("redacted %s", describe_redaction(redact_task(settings, run)))
        outcomes = await replay_all(settings, run, use_cache)
        for o in outcomes:
            log.info("replayed %s: %d ok, %d failed, %d from cache, %d from journal", o.model,
                     o.ok, o.failed, o.from_cache, o.from_journal)
        checks = validate_task(settings, run)
        log.info("validated: %d checks, %d failed", checks, count_failed_checks(settings, run))
        log.info("scored %d (prompt_version, model) pairs", score_task(settings, run))
        status = finish_run_task(settings, run, outcomes)
        log.info("finished run %s: %s", run.run_id, status)
        report = report_task(settings, run.run_id)
        log.info("report: %s", report)
        announce_run_task(settings, run)
    except Exception as exc:
        fail_run_task(settings, run, f"{type(exc).__name__}: {exc}")
        raise
    try:  # the e-mail records its own failure; nothing about it may fail the night
        log.info("e-mail: %s", notify_task(settings, run.run_id, report))
    except Exception:
        log.warning("e-mail: the step failed", exc_info=True)
    return {"run_id": run.run_id, "status": status, "report": report}


def describe_redaction(redaction: Redaction) -> str:
    """"3 values (email 2, phone 1) in 40 requests", or why nothing was redacted."""
    if not redaction.candidates:
        return "nothing: no candidate needs it"
    kinds = ", ".join(f"{kind} {n}" for kind, n in redaction.counts.most_common())
    values = sum(redaction.counts.values())
    return f"{values} values{f' ({kinds})' if kinds else ''} in {redaction.requests} requests"
