"""Run lifecycle steps: open the night's run (or skip a completed day), close it with its status,
announce its end as a Prefect event (`replaybench.run.<status>`, replaybench.events), and a
Prefect state hook that marks the run failed when the flow ends in a way its own try/except
cannot see (timeout, cancellation, interrupt, crash)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import events, runs
from replaybench.config import DEFAULT_CONFIG, Settings, load_settings
from replaybench.errors import scrub
from replaybench.replay import ReplayOutcome
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


def run_status(outcomes: list[ReplayOutcome]) -> str:
    """`partial` when a candidate could not answer at all, else `completed`."""
    return runs.PARTIAL if any(o.dead for o in outcomes) else runs.COMPLETED


@task(name="start-run", cache_policy=NO_CACHE)
def start_run_task(settings: Settings, run_date: date, kind: str, force: bool) -> Run | None:
    for candidate in settings.candidates:  # a missing key fails the night before anything is paid
        settings.api_key(candidate)
    with open_warehouse(settings.warehouse) as wh:
        return runs.begin(wh, settings, run_date, kind, force)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run_task(settings: Settings, run: Run, outcomes: list[ReplayOutcome]) -> str:
    status = run_status(outcomes)
    dead = [o.model for o in outcomes if o.dead]
    error = f"no answers from {', '.join(dead)}" if dead else None
    with open_warehouse(settings.warehouse) as wh:
        return runs.finish(wh, run.run_id, status, error=error)


@task(name="announce-run", cache_policy=NO_CACHE)
def announce_run_task(settings: Settings, run: Run) -> None:
    """The run's end as it is stored (completed or partial, with its reason and report) as a
    Prefect event; called once the report is written."""
    announce_end(settings, run.run_id, events.current_flow_run())


@task(name="fail-run", cache_policy=NO_CACHE)
def fail_run_task(settings: Settings, run: Run, reason: str) -> None:
    with open_warehouse(settings.warehouse) as wh:
        runs.finish(wh, run.run_id, runs.FAILED, error=reason)
    announce_end(settings, run.run_id, events.current_flow_run())


def announce_end(settings: Settings, run_id: str, flow_run: dict[str, str] | None) -> None:
    """Send `replaybench.run.<status>` for the run as stored. Never raises: the event reports
    on the night and must not change how it ends."""
    try:
        with open_warehouse(settings.warehouse) as wh:
            row = runs.get(wh, run_id)
        events.send([events.run_event(row, flow_run)])
    except Exception:
        logging.getLogger("replaybench.lifecycle").warning(
            "the end of run %s was not announced", run_id, exc_info=True)


def count_failed_checks(settings: Settings, run: Run) -> int:
    """How many of the run's stored checks failed: for the flow's log line."""
    with open_warehouse(settings.warehouse) as wh:
        return wh.execute("SELECT count(*) FROM checks WHERE run_id = $r AND NOT passed",
                          {"r": run.run_id}).fetchone()[0]


def state_reason(state: Any) -> str:
    """Why a flow run ended as it did, in one scrubbed line: "TimedOut: Flow run exceeded …"."""
    message = " ".join(str(state.message or "").split()) or "no message"
    return scrub(f"{state.name}: {message}")


def fail_running_run(settings: Settings, run_date: date, reason: str) -> str | None:
    """Mark the run of `run_date` failed with `reason`, if it is still `running`; its id, or None.
    A run the flow already closed (completed, partial, or failed with its own reason) is left, and
    so is one another process is running (this flow run may have failed because it was)."""
    if runs.leased_elsewhere(settings.warehouse, run_date):
        return None
    with open_warehouse(settings.warehouse) as wh:
        row = wh.execute("SELECT run_id FROM runs WHERE run_date = $d AND status = $s "
                         "ORDER BY started_at DESC LIMIT 1", {"d": run_date, "s": runs.RUNNING}
                         ).fetchone()
        if row is None:
            return None
        runs.finish(wh, row[0], runs.FAILED, error=reason)
        return row[0]


def mark_run_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect state hook (on_failure, on_crashed, on_cancellation) of the nightly flow.

    The run is found from the flow run's own parameters (config, run_date), so the hook works
    in the flow's process and in a runner's alike. A day's run is leased to one process at a
    time, so a `running` run not leased elsewhere is this flow run's. Never raises: Prefect
    would only log it."""
    log = logging.getLogger("replaybench.lifecycle")
    params = flow_run.parameters or {}
    try:
        settings = load_settings(params.get("config") or DEFAULT_CONFIG)
        run_date = params.get("run_date")
        if isinstance(run_date, str):
            run_date = date.fromisoformat(run_date[:10])
        run_date = run_date or settings.default_date()
        run_id = fail_running_run(settings, run_date, state_reason(state))
    except Exception:
        log.exception("could not mark the run of flow run %s failed", flow_run.id)
        return
    if run_id:
        log.warning("run %s marked failed: %s", run_id, state_reason(state))
        announce_end(settings, run_id, events.flow_run_resource(flow_run.id, flow_run.name))
