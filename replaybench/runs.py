"""The `runs` table: a run's life from `running` to `completed`, `partial` or `failed`.

One run covers one window (the day(s) before its run_date). A day already completed is not run
again unless forced; a day whose run died part-way is resumed under the same run_id, so the
answers it already stored are kept and only what is missing is asked for.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from replaybench import pidlock
from replaybench.config import Settings, git_revision
from replaybench.errors import ReplaybenchError, WarehouseError, scrub
from replaybench.warehouse import Warehouse, open_warehouse

RUNNING, COMPLETED, PARTIAL, FAILED = "running", "completed", "partial", "failed"


class RunInProgress(ReplaybenchError):
    """The run of a day is under way in another process: it is not started twice."""


# A day's run is leased to the process running it: an exclusive `flock` on
# `<warehouse>.runs/<day>.lock`, taken when the run begins and given back when it ends (the kernel
# frees a killed process's lease, and the next attempt resumes the run). A second process that
# asks for the same day meanwhile is refused instead of resuming a run that is still going.
_leases: dict[Path, int] = {}
_lease_guard = threading.Lock()


def _lease_path(warehouse: Path, run_date: date) -> Path:
    return warehouse.with_name(warehouse.name + ".runs") / f"{run_date:%Y-%m-%d}.lock"


def take_lease(warehouse: Path, run_date: date) -> None:
    """Lease the day's run to this process; RunInProgress when another process holds it."""
    path = _lease_path(warehouse, run_date)
    with _lease_guard:
        if path in _leases:
            return
        try:
            _leases[path] = pidlock.try_take(path)
        except pidlock.Busy as busy:
            raise RunInProgress(f"the run of {run_date} is under way in {busy.holder}; it is not "
                                "started twice (wait for it, or stop it first)") from None


def release_lease(warehouse: Path, run_date: date) -> None:
    with _lease_guard:
        fd = _leases.pop(_lease_path(warehouse, run_date), None)
        if fd is not None:
            pidlock.give_back(fd)


def leased_elsewhere(warehouse: Path, run_date: date) -> bool:
    """True when another process holds the day's lease (its run is under way there)."""
    path = _lease_path(warehouse, run_date)
    with _lease_guard:
        if path in _leases or not path.exists():
            return False
        try:
            pidlock.give_back(pidlock.try_take(path))
        except pidlock.Busy:
            return True
        return False


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
    take_lease(wh.path, run_date)
    latest = wh.execute(
        "SELECT run_id, status FROM runs WHERE run_date = $d ORDER BY started_at DESC LIMIT 1",
        {"d": run_date},
    ).fetchone()
    if latest and not force:
        run_id, status = latest
        if status == COMPLETED:
            release_lease(wh.path, run_date)
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
        {"s": status, "now": datetime.now(UTC), "p": report_path,
         "e": scrub(error)[:1000] if error else None, "r": run_id},
    )
    day = wh.execute("SELECT run_date FROM runs WHERE run_id = $r", {"r": run_id}).fetchone()
    if day:
        release_lease(wh.path, day[0])
    return status


def note_incomplete_logs(wh: Warehouse, run_id: str, reason: str | None) -> None:
    """Record why the run's logs count as incomplete (None: they are complete); `finish` then
    ends the run `partial` with that reason."""
    wh.execute("UPDATE runs SET logs_incomplete = $why WHERE run_id = $r",
               {"why": scrub(reason)[:1000] if reason else None, "r": run_id})


def latest(wh: Warehouse, run_date: date) -> dict | None:
    """The newest run stored for `run_date` (run_id, status, report_path, error), or None."""
    found = wh.frame("SELECT run_id, status, report_path, error FROM runs WHERE run_date = $d "
                     "ORDER BY started_at DESC LIMIT 1", d=run_date).to_dicts()
    return found[0] if found else None


def get(wh: Warehouse, run_id: str) -> dict:
    """One stored run as a dict; a clear error if there is none."""
    frame = wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run_id)
    if frame.is_empty():
        raise WarehouseError(f"no run {run_id!r} in {wh.path} (see `replaybench runs`)")
    return frame.row(0, named=True)


def stored_run(warehouse: Path, run_date: date) -> dict:
    """`latest` for a warehouse file (run_id, status, report_path, error), all None when there is
    no run for that day or the warehouse cannot be read (it may be why the day failed)."""
    try:
        with open_warehouse(warehouse) as wh:
            found = latest(wh, run_date)
    except Exception:
        found = None
    return found or dict.fromkeys(("run_id", "status", "report_path", "error"))
