"""A run's lifecycle around the nightly flow: open the night's run (or skip a completed day),
close it with its status, announce its end as a Prefect event (`replaybench.run.<status>`,
replaybench.events), and a Prefect state hook that marks the run failed when the flow ends in a
way its own try/except cannot see (timeout, cancellation, interrupt, crash)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from prefect import runtime

from replaybench import events, runs
from replaybench.config import DEFAULT_CONFIG, Settings, as_settings
from replaybench.errors import scrub
from replaybench.replay import ReplayOutcome
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


def run_status(outcomes: list[ReplayOutcome]) -> str:
    """`partial` when a candidate could not answer at all, else `completed`."""
    return runs.PARTIAL if any(o.dead for o in outcomes) else runs.COMPLETED


def start_run(settings: Settings, run_date: date, kind: str, force: bool) -> Run | None:
    """The night's run, begun; None when the day is completed (and not `force`d)."""
    for candidate in settings.candidates:  # a missing key fails the night before anything is paid
        settings.api_key(candidate)
    with open_warehouse(settings.warehouse) as wh:
        return runs.begin(wh, settings, run_date, kind, force)


def finish_run(settings: Settings, run: Run, outcomes: list[ReplayOutcome]) -> str:
    """Close the run: `partial` (naming the candidates that gave no answer) or `completed`."""
    status = run_status(outcomes)
    dead = [o.model for o in outcomes if o.dead]
    error = f"no answers from {', '.join(dead)}" if dead else None
    with open_warehouse(settings.warehouse) as wh:
        return runs.finish(wh, run.run_id, status, error=error)


def fail_run(settings: Settings, run: Run, reason: str) -> None:
    """Close the run as failed, and announce it."""
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


def state_reason(state: Any) -> str:
    """Why a flow run ended as it did, in one scrubbed line: "TimedOut: Flow run exceeded …"."""
    message = " ".join(str(state.message or "").split()) or "no message"
    return scrub(f"{state.name}: {message}")


# The settings each flow run in this process runs with, kept for its state hooks so that a hook
# does not read the config again (a hook run in another process, a runner's, reads it from the
# flow run's parameters).
_kept: dict[str, Settings] = {}


def keep_for_hooks(settings: Settings) -> None:
    """Keep the flow run's settings for `mark_run_failed`, should the flow run end in failure."""
    if runtime.flow_run.id:
        _kept[runtime.flow_run.id] = settings


def forget_kept(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect state hook (on_completion): a completed flow run's settings are no longer needed."""
    _kept.pop(str(flow_run.id), None)


def mark_run_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect state hook (on_failure, on_crashed, on_cancellation) of the nightly flow.

    The run is found from the flow run's settings (kept by the flow, or read from its `config`
    parameter) and its `run_date`, so the hook works in the flow's process and in a runner's
    alike. A day's run is leased to one process at a
    time, so a `running` run not leased elsewhere is this flow run's. Never raises: Prefect
    would only log it."""
    log = logging.getLogger("replaybench.lifecycle")
    params = flow_run.parameters or {}
    try:
        settings = _kept.pop(str(flow_run.id), None) or as_settings(
            params.get("config") or DEFAULT_CONFIG)
        run_date = params.get("run_date")
        if isinstance(run_date, str):
            run_date = date.fromisoformat(run_date[:10])
        run_date = run_date or settings.default_date()
        run_id = runs.fail_if_running(settings.warehouse, run_date, state_reason(state))
    except Exception:
        log.exception("could not mark the run of flow run %s failed", flow_run.id)
        return
    if run_id:
        log.warning("run %s marked failed: %s", run_id, state_reason(state))
        announce_end(settings, run_id, events.flow_run_resource(flow_run.id, flow_run.name))
