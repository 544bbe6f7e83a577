"""What a run tells Prefect: an event for each decision it looked at and one when it ends, and an
artifact per decision whose key stays the same night after night (the UI shows its history).

Everything is built here from warehouse rows, as plain values, without Prefect; `send` and
`publish_decisions` hand them to Prefect, from a task. The vocabulary (a name keeps its meaning;
new names may be added):

    replaybench.decision.<recommendation>   promote | canary | hold | reject
        A run looked at the decision (tonight's pairs were added to its evidence); the name is
        its recommendation after that look. Resource `replaybench.decision.<prompt_version>.
        <candidate>`, labelled `prompt_version`, `candidate`, `replaybench.state` (open |
        improved | regressed | equivalent | non_inferior | inconclusive) and
        `replaybench.recommendation`. A decision reached on an earlier night is not looked at
        again, so it sends nothing more until it is reopened.
    replaybench.run.<status>                completed | partial | failed
        A run ended: completed or partial once its report is written, failed when it failed
        (the reason in the payload). Resource `replaybench.run.<run_id>`, labelled
        `replaybench.kind` (nightly | backfill) and `replaybench.status`.

Each event is related to its run (role `run`) and, inside Prefect, to the flow run (role
`flow-run`); Prefect adds the flow, the deployment and the work pool. Payloads carry names,
numbers and scrubbed sentences: never a secret, a prompt or an answer. An event's id is derived
from what it reports, so a resumed run that reports the same look again sends the same event,
and Prefect stores and acts on it once.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from replaybench.decide.scores import outward
from replaybench.errors import scrub
from replaybench.progress import slug
from replaybench.warehouse import Warehouse

log = logging.getLogger(__name__)

DECISION, RUN = "replaybench.decision", "replaybench.run"
RUN_ENDS = ("completed", "partial", "failed")
_IDS = uuid.UUID("5f1c0e52-7c1e-4a59-9f0e-3c2b1f6a8d47")  # namespace of replaybench's event ids


@dataclass(frozen=True)
class Event:
    """One Prefect event: its name, primary resource, related resources and payload."""

    name: str
    resource: dict[str, str]
    payload: dict[str, Any]
    id: uuid.UUID
    related: list[dict[str, str]] = field(default_factory=list)


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _event_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_IDS, "\x00".join(str(p) for p in parts))


def flow_run_resource(flow_run_id: object, name: str | None = None) -> dict[str, str]:
    """A Prefect flow run as a related resource (role `flow-run`), as Prefect itself names it."""
    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run"}
    if name:
        resource["prefect.resource.name"] = name
    return resource


def run_resource(run_id: str, role: str | None = None) -> dict[str, str]:
    resource = {"prefect.resource.id": f"{RUN}.{run_id}", "prefect.resource.name": run_id}
    if role:
        resource["prefect.resource.role"] = role
    return resource


def _related(run_id: str, flow_run: dict[str, str] | None) -> list[dict[str, str]]:
    return [run_resource(run_id, role="run"), *([flow_run] if flow_run else [])]


# --- decisions ----------------------------------------------------------------------------------

def looked_decisions(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """The decisions the run looked at, as they stand after its look (with the run's kind and
    run_date)."""
    return wh.frame("looked_decisions", run_id=run_id).to_dicts()


def decision_event(row: dict[str, Any], flow_run: dict[str, str] | None = None) -> Event:
    """`replaybench.decision.<recommendation>` for one row of `looked_decisions`."""
    pv, candidate = str(row["prompt_version"]), str(row["candidate"])
    recommendation = row["recommendation"] or "hold"  # every look recommends; never left empty
    name = f"{DECISION}.{recommendation}"
    resource = {"prefect.resource.id": f"{DECISION}.{pv}.{candidate}",
                "prefect.resource.name": f"{pv} × {candidate}",
                "prompt_version": pv, "candidate": candidate,
                "replaybench.state": row["state"], "replaybench.recommendation": recommendation}
    payload = {
        "prompt_version": pv, "candidate": candidate, "state": row["state"],
        "recommendation": recommendation, "reached": bool(row["reached_tonight"]),
        "reason": scrub(row["reason"]) if row["reason"] else None,
        "delta": row["delta"], "delta_low": row["delta_low"], "delta_high": row["delta_high"],
        "margin": row["margin"], "pairs": row["pairs"], "planned_pairs": row["planned_pairs"],
        "nights": row["nights"], "look": row["look"], "cost_ratio": row["cost_ratio"],
        "error_rate": row["error_rate"], "decision_id": row["decision_id"],
        "generation": row["generation"], "opened_on": _iso(row["opened_on"]),
        "reached_on": _iso(row["reached_on"]), "run_id": row["run_id"], "kind": row["kind"],
        "day": _iso(row["run_date"] - timedelta(days=1)),  # the night's day of traffic
    }
    return Event(name, resource, payload,
                 _event_id(name, resource["prefect.resource.id"], row["decision_id"],
                           row["run_id"], row["look"]),
                 _related(row["run_id"], flow_run))


def decision_artifact_key(prompt_version: str, candidate: str) -> str:
    """The key of a decision's artifact: the same every night, so the UI keeps its history.
    Lowercase letters, digits and dashes, as Prefect requires; a short hash of the exact names
    keeps apart the decisions whose names would slug alike (`triage@v4` and `triage-v4`)."""
    digest = hashlib.sha256(f"{prompt_version}\x00{candidate}".encode()).hexdigest()[:6]
    return f"decision-{slug(prompt_version)}-{slug(candidate)}-{digest}"


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f} pts"


def decision_markdown(row: dict[str, Any]) -> str:
    """A decision after a run's look, as the Markdown of its artifact."""
    state = row["state"] + (f", reached on {row['reached_on']}" if row["reached_on"] else "")
    interval = ("" if row["delta_low"] is None
                else "[{}, {}]".format(*outward(row["delta_low"], row["delta_high"])))
    cost = "unknown" if row["cost_ratio"] is None else f"{row['cost_ratio']:.2f}× the baseline's"
    lines = [
        f"**{row['prompt_version']} × {row['candidate']}: {row['recommendation']}** ({state})",
        "",
        scrub(row["reason"]) if row["reason"] else "", "",
        "| | |", "|---|---|",
        f"| quality vs baseline | {' '.join(filter(None, (_pts(row['delta']), interval)))} |",
        f"| evidence | {row['pairs']} of {row['planned_pairs']} planned pairs, "
        f"{row['nights']} night{'s' if row['nights'] != 1 else ''} (look {row['look']}) |",
        f"| cost per success | {cost} |",
        f"| calls failed | {(row['error_rate'] or 0) * 100:.0f} % |",
        f"| run | {row['run_id']} ({row['kind']}, day {row['run_date'] - timedelta(days=1)}) |",
    ]
    return "\n".join(lines)


# --- runs -----------------------------------------------------------------------------------------

def run_event(row: dict[str, Any], flow_run: dict[str, str] | None = None) -> Event:
    """`replaybench.run.<status>` for a stored run that ended (a row of `runs`)."""
    status = row["status"]
    if status not in RUN_ENDS:
        raise ValueError(f"run {row['run_id']} has not ended: it is {status}")
    name = f"{RUN}.{status}"
    resource = {**run_resource(row["run_id"]), "replaybench.kind": row["kind"],
                "replaybench.status": status}
    payload = {
        "run_id": row["run_id"], "kind": row["kind"], "status": status,
        "reason": scrub(row["error"]) if row["error"] else None,
        "day": _iso(row["run_date"] - timedelta(days=1)), "run_date": _iso(row["run_date"]),
        "window_start": _iso(row["window_start"]), "window_end": _iso(row["window_end"]),
        "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"]),
        "report_path": row["report_path"],
    }
    # the end, not only the run: a run resumed after a failure may fail again
    return Event(name, resource, payload,
                 _event_id(name, row["run_id"], _iso(row["finished_at"])),
                 [flow_run] if flow_run else [])


# --- sending --------------------------------------------------------------------------------------

def current_flow_run() -> dict[str, str] | None:
    """The flow run this code runs in, as a related resource; None outside one."""
    from prefect.runtime import flow_run

    return flow_run_resource(flow_run.id, flow_run.name) if flow_run.id else None


def send(events: Iterable[Event]) -> int:
    """Emit the events to Prefect (its API, or the ephemeral one); how many were handed over.
    Never raises: an event is a report on the night, never a reason for it to fail."""
    from prefect.events import emit_event

    sent = 0
    for e in events:
        try:
            if emit_event(event=e.name, resource=e.resource, related=e.related,
                          payload=e.payload, id=e.id) is not None:
                sent += 1
        except Exception:
            log.warning("event %s for %s not sent", e.name, e.resource["prefect.resource.id"],
                        exc_info=True)
    return sent


def publish_decisions(looked: list[dict[str, Any]]) -> None:
    """An event per decision (`replaybench.decision.<recommendation>`) and a new version of its
    artifact, keyed by prompt_version and candidate. Neither may fail the night."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    flow_run = current_flow_run()
    send(decision_event(row, flow_run) for row in looked)
    for row in looked:
        try:
            create_markdown_artifact(
                markdown=decision_markdown(row),
                key=decision_artifact_key(row["prompt_version"], row["candidate"]),
                description=f"{row['prompt_version']} × {row['candidate']}: "
                            f"{row['recommendation']} ({row['state']})")
        except Exception:
            get_run_logger().warning("artifact of decision %s × %s not written",
                                     row["prompt_version"], row["candidate"], exc_info=True)
