"""Backfill: the nightly regression once per day over a date range, a few days at a time, each
day a `nightly` sub-flow of kind `backfill`, ending with a summary of what became of every day."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from flows.nightly import nightly
from replaybench.config import DEFAULT_CONFIG, ConfigParam, as_settings
from replaybench.errors import ReplaybenchError
from replaybench.runs import COMPLETED, FAILED, PARTIAL, stored_run

MAX_DAYS = 366  # a year of nightly runs at most: a longer range is more likely a typo than a plan
SKIPPED = "skipped"  # a day already completed


def days_between(start_date: date, end_date: date, today: date) -> list[date]:
    """The days start..end (inclusive); a clear error for a reversed, too long or unfinished range."""
    if start_date > end_date:
        raise ReplaybenchError(f"backfill start {start_date} is after its end {end_date}")
    if end_date >= today:
        raise ReplaybenchError(f"backfill end {end_date} is not over yet (today is {today} in the "
                               "configured timezone): end on yesterday at the latest")
    count = (end_date - start_date).days + 1
    if count > MAX_DAYS:
        raise ReplaybenchError(f"backfill of {count} days ({start_date} to {end_date}) is longer "
                               f"than {MAX_DAYS} days: split it into several backfills")
    return [start_date + timedelta(days=i) for i in range(count)]


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """The per-day summary as a Markdown table (the Prefect artifact)."""
    counts = {s: sum(r["status"] == s for r in rows) for s in (COMPLETED, PARTIAL, FAILED, SKIPPED)}
    lines = [f"Backfill of {rows[0]['date']} to {rows[-1]['date']}: "
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n), "",
             "| day | status | run | report | reason |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r["date"], r["status"], r["run_id"] or "—", r["report"] or "—", r["reason"] or ""]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ")
                                        for c in cells) + " |")
    return "\n".join(lines)


@flow(name="replaybench-backfill")
async def backfill(start_date: date, end_date: date, config: ConfigParam = DEFAULT_CONFIG,
                   force: bool = False, parallel: int = 1, fleet_url: str | None = None,
                   use_cache: bool = True) -> list[dict[str, Any]]:
    """One nightly run for each day from `start_date` to `end_date` (inclusive), `parallel` at a time.

    A day means that day's traffic, midnight to midnight in the configured timezone: the day D is
    run as `replaybench run --date D+1` would run it (`run_date` = D + 1, kind `backfill`), so
    backfilling 2026-11-26..2026-11-27 gives the runs that the nights of the 27th and 28th would
    have. `config` is the configuration file, or the settings a caller already parsed from it.
    A completed day is skipped unless `force`; a day whose run died is resumed under its
    run id; a day that fails is reported and does not stop the others. Returns one dict per day:
    date, status (completed, partial, failed, skipped), run_id, report, reason.
    """
    if parallel < 1:
        raise ReplaybenchError(f"parallel must be at least 1, not {parallel}")
    settings = as_settings(config)  # parsed once, handed to every day
    days = days_between(start_date, end_date, settings.default_date())
    logger = get_run_logger()
    gate = asyncio.Semaphore(parallel)

    async def one(day: date) -> dict[str, Any]:
        row: dict[str, Any] = {"date": day.isoformat(), "status": FAILED, "run_id": None,
                               "report": None, "reason": None}
        run_date = day + timedelta(days=1)  # a run covers the day(s) before its run_date
        async with gate:
            try:
                result = await nightly.with_options(flow_run_name=f"backfill-{day}")(
                    run_date=run_date, config=settings, force=force, kind="backfill",
                    fleet_url=fleet_url, use_cache=use_cache)
            except Exception as exc:  # one bad day must not stop the others
                reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
                row.update(reason=reason, run_id=stored_run(settings.warehouse, run_date)["run_id"])
                return row
        stored = stored_run(settings.warehouse, run_date)
        if result is None:
            row.update(status=SKIPPED, run_id=stored["run_id"], report=stored["report_path"],
                       reason="already completed (force runs it again)")
        else:
            row.update(status=result["status"], run_id=result["run_id"],
                       report=str(result["report"]) if result["report"] else None,
                       reason=stored["error"] if result["status"] != COMPLETED else None)
        return row

    rows = await asyncio.gather(*(one(day) for day in days))
    for r in rows:
        log = logger.warning if r["status"] in (FAILED, PARTIAL) else logger.info
        log("%s %s run=%s report=%s%s", r["date"], r["status"], r["run_id"] or "—",
            r["report"] or "—", f" reason: {r['reason']}" if r["reason"] else "")
    await acreate_markdown_artifact(markdown=summary_markdown(rows), key="backfill-summary",
                                    description=f"backfill {start_date} to {end_date}")
    return rows
