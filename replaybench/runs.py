"""The `runs` table: a run's life from `running` to `completed`, `partial` or `failed`, and what
became of its report, e-mail and publication. This module is the one writer of `runs`; the others
read a run through `get`, `latest` and `stored_run` (report queries join the table by run_id).

One run covers one window (the day(s) before its run_date). A day already completed is not run
again unless forced; a day whose run died part-way is resumed under the same run_id, so the
answers it already stored are kept and only what is missing is asked for. A day's run is leased
to one process at a time (replaybench.locks).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from replaybench.config import Settings, git_revision
from replaybench.errors import WarehouseError, scrub
from replaybench.locks import day_leased_elsewhere, lease_day, release_day
from replaybench.warehouse import Warehouse, open_warehouse

RUNNING, COMPLETED, PARTIAL, FAILED = "running", "completed", "partial", "failed"


def _trimmed(error: str | None) -> str | None:
    """An error as stored: secrets scrubbed, at most 1000 characters."""
    return scrub(error)[:1000] if error else None


@dataclass(frozen=True)
class Run:
    run_id: str
    kind: str
    run_date: date
    window_start: datetime
    window_end: datetime
    resumed: bool = False


def begin(wh: Warehouse, settings: Settings, run_date: date, kind: str,
          force: bool = False) -> Run | None:
    """Start (or resume) the run for `run_date`; None when that day is already completed.
    RunInProgress when another process is running that day right now."""
    start, end = settings.window(run_date)
    lease_day(wh.path, run_date)
    found = latest(wh, run_date)
    if found and not force:
        if found["status"] == COMPLETED:
            release_day(wh.path, run_date)
            return None
        if found["status"] != PARTIAL:  # running (killed) or failed: pick up where it stopped
            wh.execute("UPDATE runs SET status = 'running', error = NULL, finished_at = NULL "
                       "WHERE run_id = $r", {"r": found["run_id"]})
            return Run(found["run_id"], kind, run_date, start, end, resumed=True)
    run = Run(f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:6]}", kind, run_date, start, end)
    candidates = [{"name": c.name, "provider": c.provider, "base_url": c.base_url,
                   "model": c.model} for c in settings.candidates]
    wh.query("insert_run", run_id=run.run_id, kind=kind, run_date=run_date, start=start, end=end,
           now=datetime.now(UTC), seed=settings.sample.seed, hash=settings.config_hash(),
           git=git_revision(settings.source.parent if settings.source else None),
           baseline=settings.baseline, candidates=json.dumps(candidates))
    return run


def finish(wh: Warehouse, run_id: str, status: str, report_path: str | None = None,
           error: str | None = None) -> str:
    """Record how a run ended, and give back the day's lease; the status recorded. A run whose
    logs were incomplete (`note_incomplete_logs`) ends `partial` at best, and its reason says so
    first."""
    incomplete = wh.execute("SELECT logs_incomplete FROM runs WHERE run_id = $r",
                            {"r": run_id}).fetchone()
    if incomplete and incomplete[0]:
        if status == COMPLETED:
            status = PARTIAL
        error = "; ".join(part for part in (incomplete[0], error) if part)
    wh.execute(
        "UPDATE runs SET status = $s, finished_at = $now, report_path = coalesce($p, report_path),"
        " error = $e WHERE run_id = $r",
        {"s": status, "now": datetime.now(UTC), "p": report_path, "e": _trimmed(error),
         "r": run_id},
    )
    day = wh.execute("SELECT run_date FROM runs WHERE run_id = $r", {"r": run_id}).fetchone()
    if day:
        release_day(wh.path, day[0])
    return status


def fail_if_running(warehouse: Path, run_date: date, reason: str) -> str | None:
    """Mark the run of `run_date` failed with `reason`, if it is still `running`; its id, or None.
    A run already closed (completed, partial, or failed with its own reason) is left, and so is
    one another process is running."""
    if day_leased_elsewhere(warehouse, run_date):
        return None
    with open_warehouse(warehouse) as wh:
        found = latest(wh, run_date, RUNNING)
        if found is None:
            return None
        finish(wh, found["run_id"], FAILED, error=reason)
        return found["run_id"]


def note_incomplete_logs(wh: Warehouse, run_id: str, reason: str | None) -> None:
    """Record why the run's logs count as incomplete (None: they are complete); `finish` then
    ends the run `partial` with that reason."""
    wh.execute("UPDATE runs SET logs_incomplete = $why WHERE run_id = $r",
               {"why": _trimmed(reason), "r": run_id})


def set_report_path(wh: Warehouse, run_id: str, path: str | Path) -> None:
    """Record where the run's report was written."""
    wh.execute("UPDATE runs SET report_path = $p WHERE run_id = $r", {"p": str(path), "r": run_id})


def record_email(wh: Warehouse, run_id: str, status: str, error: str | None = None,
                 emailed_at: datetime | None = None) -> None:
    """Record how e-mailing the run's outcome went (sent, failed, skipped) and when it was sent."""
    wh.execute("UPDATE runs SET email_status = $s, email_error = $e, emailed_at = $t "
               "WHERE run_id = $r",
               {"s": status, "e": _trimmed(error), "t": emailed_at, "r": run_id})


def record_publication(wh: Warehouse, run_id: str, status: str, error: str | None = None,
                       url: str | None = None) -> None:
    """Record how publishing the run's report went; a failure keeps an earlier publication's URL."""
    wh.query("record_publication", run_id=run_id, status=status, error=_trimmed(error), url=url,
           now=datetime.now(UTC))


def latest(wh: Warehouse, run_date: date, status: str | None = None) -> dict | None:
    """The newest run stored for `run_date`, or the newest in `status` (run_id, status,
    report_path, error); None when there is none."""
    found = wh.frame("latest_run", run_date=run_date, status=status).to_dicts()
    return found[0] if found else None


def get(wh: Warehouse, run_id: str) -> dict:
    """One stored run as a dict; a clear error if there is none."""
    frame = wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run_id)
    if frame.is_empty():
        raise WarehouseError(f"no run {run_id!r} in {wh.path} (see `replaybench runs`)")
    return frame.row(0, named=True)


def listing(wh: Warehouse) -> list[dict[str, Any]]:
    """Every stored run, newest first (run_id, kind, window, status, times, report_path)."""
    return wh.frame("run_listing").to_dicts()


def scores(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """The run's stored scores, one row per (prompt_version, model)."""
    return wh.frame("run_scores", run_id=run_id).to_dicts()


def last_full_day(wh: Warehouse, tz: str) -> date | None:
    """The latest local day whose traffic is at least half a typical day's: the day to run on a
    static export of logs (the demo's); None when there are no logs."""
    return wh.query("last_full_day", tz=tz).fetchone()[0]


def stored_run(warehouse: Path, run_date: date) -> dict:
    """`latest` for a warehouse file (run_id, status, report_path, error), all None when there is
    no run for that day or the warehouse cannot be read (it may be why the day failed)."""
    try:
        with open_warehouse(warehouse) as wh:
            found = latest(wh, run_date)
    except Exception:
        found = None
    return found or dict.fromkeys(("run_id", "status", "report_path", "error"))
