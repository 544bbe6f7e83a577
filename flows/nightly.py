"""The nightly regression: fetch yesterday's logs from the sources, sample them, replay them
against every candidate, validate the answers, score them against production, write the report,
and announce how the night ended (a Prefect event: replaybench.events)."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from flows.replay import replay_all
from replaybench.checks.rows import failed_count
from replaybench.config import DEFAULT_CONFIG, ConfigParam, as_settings
from replaybench.lifecycle import forget_kept, keep_for_hooks, mark_run_failed
from tasks.ingest import fetch_task
from tasks.lifecycle import announce_run_task, fail_run_task, finish_run_task, start_run_task
from tasks.notify import notify_task
from tasks.redact import redact_task
from tasks.report import report_task
from tasks.sample import sample_task
from tasks.score import score_task
from tasks.validate import validate_task


@flow(name="replaybench-nightly", on_failure=[mark_run_failed], on_crashed=[mark_run_failed],
      on_cancellation=[mark_run_failed], on_completion=[forget_kept])
async def nightly(run_date: date | None = None, config: ConfigParam = DEFAULT_CONFIG,
                  force: bool = False, kind: str = "nightly",
                  fleet_url: str | None = None, use_cache: bool = True) -> dict | None:
    """Regression for the day(s) before `run_date` (default: today in the configured timezone).

    `config` is the configuration file, or the settings a caller already parsed from it.
    `fleet_url` points the candidates served by the local model fleet at one started elsewhere
    (the demo and the tests start it on a free port). `use_cache=False` asks every request afresh
    instead of reusing answers already paid for. Returns the run's id, status and report
    path; None when that day was already completed. An end the try/except below cannot see
    (timeout, cancellation, crash) is recorded on the run by the `mark_run_failed` hook.
    """
    log = get_run_logger()
    settings = as_settings(config)
    if fleet_url:
        settings = settings.with_fleet(fleet_url)
    keep_for_hooks(settings)
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
        log.info("redacted: %s", redact_task(settings, run).summary())
        outcomes = await replay_all(settings, run, use_cache)
        for o in outcomes:
            log.info("replayed %s: %d ok, %d failed, %d from cache, %d from journal", o.model,
                     o.ok, o.failed, o.from_cache, o.from_journal)
        checks = validate_task(settings, run)
        log.info("validated: %d checks, %d failed", checks, failed_count(settings.warehouse, run.run_id))
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
