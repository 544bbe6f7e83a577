"""The `runs` table: a run's life from `running` to `completed`, `partial` or `failed`.

One run covers one window (the day(s) before its run_date). A day already completed is not run
again unless forced; a day whose run died part-way is resumed under the same run_id, so the
answers it already stored are kept and only what is missing is asked for.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from replaybench.config import Settings, git_revision
from replaybench.errors import WarehouseError, scrub
from replaybench.warehouse import Warehouse

RUNNING, COMPLETED, PARTIAL, FAILED = "running", "completed", "partial", "failed"


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
    """Start (or resume) the run for `run_date`; None when that day is already completed."""
    start, end = settings.window(run_date)
    latest = wh.execute(
        "SELECT run_id, status FROM runs WHERE run_date = $d ORDER BY started_at DESC LIMIT 1",
        {"d": run_date},
    ).fetchone()
    if latest and not force:
        run_id, status = latest
        if status == COMPLETED:
            return None
        if status != PARTIAL:  # running (killed) or failed: pick up where it stopped
            wh.execute("UPDATE runs SET status = 'running', error = NULL, finished_at = NULL "
                       "WHERE run_id = $r", {"r": run_id})
            return Run(run_id, kind, run_date, start, end, resumed=True)
    run = Run(f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:6]}", kind, run_date, start, end)
    candidates = [{"name": c.name, "provider": c.provider, "base_url": c.base_url,
                   "model": c.model} for c in settings.candidates]
    wh.execute(
        """INSERT INTO runs (run_id, kind, run_date, window_start, window_end, status, started_at,
                             seed, config_hash, git_rev, baseline, candidates)
           VALUES ($run_id, $kind, $run_date, $start, $end, 'running', $now, $seed, $hash,
                   $git, $baseline, $candidates)""",
        {"run_id": run.run_id, "kind": kind, "run_date": run_date, "start": start, "end": end,
         "now": datetime.now(UTC), "seed": settings.sample.seed, "hash": settings.config_hash(),
         "git": git_revision(settings.source.parent if settings.source else None),
         "baseline": settings.baseline, "candidates": json.dumps(candidates)},
    )
    return run


def finish(wh: Warehouse, run_id: str, status: str, report_path: str | None = None,
           error: str | None = None) -> None:
    """Record how a run ended."""
    wh.execute(
        "UPDATE runs SET status = $s, finished_at = $now, report_path = coalesce($p, report_path),"
        " error = $e WHERE run_id = $r",
        {"s": status, "now": datetime.now(UTC), "p": report_path,
         "e": scrub(error)[:1000] if error else None, "r": run_id},
    )


def get(wh: Warehouse, run_id: str) -> dict:
    """One stored run as a dict; a clear error if there is none."""
    frame = wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run_id)
    if frame.is_empty():
        raise WarehouseError(f"no run {run_id!r} in {wh.path} (see `replaybench runs`)")
    return frame.row(0, named=True)
