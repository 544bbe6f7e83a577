"""Prefect events and per-decision artifacts (replaybench/events.py): how they are built from
warehouse rows, that the shipped automations match them and render with Prefect's own trigger and
template code, and what a backfill of three nights actually sends to a Prefect server (Prefect's
test harness) — a failed night, partial nights, regressed and dead candidates."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from replaybench import events
from replaybench.errors import register_secret

from .conftest import ROOT, write_config

AUTOMATIONS = ROOT / "docs" / "automations"
SECRET = "sk-live-0123456789abcdef-never-in-an-event"
KEY_ENV = "REPLAYBENCH_TEST_EVENTS_KEY"


def decision_row(**overrides) -> dict:
    """A row of `looked_decisions` as the warehouse returns it."""
    row = {
        "decision_id": "6fdcdb79e168feb2", "prompt_version": "triage@v4", "candidate": "glm-5.2",
        "generation": 1, "state": "regressed", "recommendation": "reject",
        "delta": -0.25, "delta_low": -0.41, "delta_high": -0.09, "margin": 0.03, "pairs": 40,
        "planned_pairs": 612, "nights": 1, "cost_ratio": 1.4, "error_rate": 0.0,
        "reason": "quality -25.0 pts [-41.0, -9.0] over 40 pairs in 1 night: worse: reject",
        "opened_on": date(2026, 11, 26), "reached_on": date(2026, 11, 26), "reached_tonight": True,
        "look": 1, "run_id": "20261127-a4338b", "kind": "nightly", "run_date": date(2026, 11, 27),
    }
    return row | overrides


def run_row(**overrides) -> dict:
    """A row of `runs` for a run that ended."""
    row = {
        "run_id": "20261127-a4338b", "kind": "nightly", "run_date": date(2026, 11, 27),
        "window_start": datetime(2026, 11, 26, tzinfo=UTC),
        "window_end": datetime(2026, 11, 27, tzinfo=UTC), "status": "partial",
        "started_at": datetime(2026, 11, 27, 2, 30, tzinfo=UTC),
        "finished_at": datetime(2026, 11, 27, 2, 41, tzinfo=UTC),
        "report_path": "reports/20261127-a4338b.html", "error": "no answers from glm-5.2",
        "seed": 7, "config_hash": "abc", "candidates": '[{"name": "glm-5.2"}]',
    }
    return row | overrides


# --- building -------------------------------------------------------------------------------------

def test_a_decision_event_is_named_by_its_recommendation_on_the_decisions_resource():
    flow_run = events.flow_run_resource(uuid.UUID(int=1), "backfill-2026-11-26")
    event = events.decision_event(decision_row(), flow_run)
    assert event.name == "replaybench.decision.reject"
    assert event.resource == {
        "prefect.resource.id": "replaybench.decision.triage@v4.glm-5.2",
        "prefect.resource.name": "triage@v4 × glm-5.2",
        "prompt_version": "triage@v4", "candidate": "glm-5.2",
        "replaybench.state": "regressed", "replaybench.recommendation": "reject"}
    assert event.related == [
        {"prefect.resource.id": "replaybench.run.20261127-a4338b",
         "prefect.resource.name": "20261127-a4338b", "prefect.resource.role": "run"},
        {"prefect.resource.id": f"prefect.flow-run.{uuid.UUID(int=1)}",
         "prefect.resource.role": "flow-run", "prefect.resource.name": "backfill-2026-11-26"}]
    p = event.payload
    assert (p["state"], p["recommendation"], p["reached"], p["day"]) == (
        "regressed", "reject", True, "2026-11-26")
    assert (p["delta"], p["delta_low"], p["delta_high"], p["pairs"], p["look"]) == (
        -0.25, -0.41, -0.09, 40, 1)
    json.dumps(p)  # plain JSON: what the Prefect API stores


def test_an_events_id_is_what_it_reports_so_a_resumed_run_sends_the_same_event_again():
    first = events.decision_event(decision_row())
    assert events.decision_event(decision_row()).id == first.id
    assert events.decision_event(decision_row(look=2, run_id="20261128-0c11e2")).id != first.id
    assert events.decision_event(decision_row(candidate="minimax-m3")).id != first.id
    ended = events.run_event(run_row(status="failed", error="x"))
    again = events.run_event(run_row(status="failed", error="x",
                                     finished_at=datetime(2026, 11, 27, 5, tzinfo=UTC)))
    assert ended.id != again.id  # a resumed run that fails again has failed again


def test_a_run_event_says_how_the_run_ended_and_why():
    event = events.run_event(run_row())
    assert event.name == "replaybench.run.partial"
    assert event.resource == {"prefect.resource.id": "replaybench.run.20261127-a4338b",
                              "prefect.resource.name": "20261127-a4338b",
                              "replaybench.kind": "nightly", "replaybench.status": "partial"}
    assert event.payload["reason"] == "no answers from glm-5.2"
    assert event.payload["day"] == "2026-11-26"
    assert event.payload["report_path"] == "reports/20261127-a4338b.html"
    assert set(event.payload).isdisjoint({"seed", "config_hash", "candidates"})
    assert events.run_event(run_row(status="completed", error=None)).payload["reason"] is None
    with pytest.raises(ValueError, match="has not ended"):
        events.run_event(run_row(status="running"))


def test_payload_texts_are_scrubbed_of_secrets():
    register_secret(SECRET)
    decision = events.decision_event(decision_row(reason=f"failed: Bearer {SECRET} refused"))
    run = events.run_event(run_row(status="failed", error=f"HTTPError: key {SECRET} refused"))
    for event in (decision, run):
        assert SECRET not in json.dumps([event.payload, event.resource, event.related])
    assert "[REDACTED]" in decision.payload["reason"] and "[REDACTED]" in run.payload["reason"]
    assert SECRET not in events.decision_markdown(decision_row(reason=SECRET))


def test_artifact_keys_are_prefect_keys_stable_per_decision_and_never_collide():
    key = events.decision_artifact_key("triage@v4", "glm-5.2")
    assert re.fullmatch(r"[a-z0-9-]+", key) and key.startswith("decision-triage-v4-glm-5-2-")
    assert events.decision_artifact_key("triage@v4", "glm-5.2") == key  # no run in it
    assert events.decision_artifact_key("triage-v4", "glm-5.2") != key
    assert events.decision_artifact_key("Triage@V4", "GLM 5.2") != key
    assert events.decision_artifact_key("triage@v4", "glm-5.3") != key


def test_the_artifact_shows_the_decision_and_its_evidence():
    text = events.decision_markdown(decision_row())
    assert "**triage@v4 × glm-5.2: reject** (regressed, reached on 2026-11-26)" in text
    assert "-25.0 pts [-41.0, -9.0]" in text and "40 of 612 planned pairs, 1 night" in text
    opened = events.decision_markdown(decision_row(state="open", recommendation="hold",
                                                   reached_on=None, delta=None, delta_low=None,
                                                   delta_high=None, cost_ratio=None))
    assert "hold** (open)\n" in opened and "| — |" in opened and "unknown" in opened


# --- the shipped automations, read by Prefect's own models --------------------------------------

def automation(name: str) -> dict:
    """A shipped automation file as `prefect automation create --from-file` reads it, with a
    block id where the file asks for one."""
    text = (AUTOMATIONS / name).read_text(encoding="utf-8")
    assert "REPLACE-WITH-YOUR-BLOCK-ID" in text
    return yaml.safe_load(text.replace("REPLACE-WITH-YOUR-BLOCK-ID", str(uuid.UUID(int=7))))


def received(event: events.Event):
    """Our event as the Prefect server receives it."""
    from prefect.server.events.schemas.events import ReceivedEvent

    return ReceivedEvent(event=event.name, resource=event.resource, related=event.related,
                         payload=event.payload, id=event.id, occurred=datetime.now(UTC))


@pytest.mark.parametrize("name", ["notify-on-reject.yaml", "notify-on-bad-night.yaml"])
def test_the_shipped_automations_are_valid_for_prefect(name):
    from prefect.events.schemas.automations import AutomationCore
    from prefect.server.events.schemas.automations import AutomationCore as ServerAutomation

    data = automation(name)
    AutomationCore.model_validate(data)  # what the CLI sends
    ServerAutomation.model_validate(data)  # what the server accepts (templates are checked here)
    with pytest.raises(ValueError, match="UUID"):  # an unset block id fails at once, loudly
        AutomationCore.model_validate(yaml.safe_load((AUTOMATIONS / name).read_text()))


def test_notify_on_reject_fires_on_rejects_only_and_says_what_and_why():
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.utilities.user_templates import render_user_template_sync

    data = automation("notify-on-reject.yaml")
    trigger = EventTrigger.model_validate(data["trigger"])
    reject = received(events.decision_event(decision_row()))
    assert trigger.covers(reject)
    for other in (events.decision_event(decision_row(recommendation="hold", state="open")),
                  events.decision_event(decision_row(recommendation="promote", state="improved")),
                  events.run_event(run_row())):
        assert not trigger.covers(received(other))
    action = data["actions"][0]
    assert action["type"] == "send-notification"
    subject = render_user_template_sync(action["subject"], {"event": reject})
    body = render_user_template_sync(action["body"], {"event": reject})
    assert subject == "replaybench: reject glm-5.2 for triage@v4"
    assert "(decision regressed)" in body and decision_row()["reason"] in body
    assert "40 pairs over 1 night(s); 0 % of calls failed" in body
    assert "Run 20261127-a4338b (nightly) of the traffic of 2026-11-26" in body


def test_notify_on_bad_night_fires_on_failed_and_partial_runs_with_the_reason():
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.utilities.user_templates import render_user_template_sync

    data = automation("notify-on-bad-night.yaml")
    trigger = EventTrigger.model_validate(data["trigger"])
    failed = received(events.run_event(run_row(status="failed", error="no logs for the window")))
    assert trigger.covers(failed) and trigger.covers(received(events.run_event(run_row())))
    assert not trigger.covers(received(events.run_event(run_row(status="completed", error=None))))
    assert not trigger.covers(received(events.decision_event(decision_row())))
    body = render_user_template_sync(data["actions"][0]["body"], {"event": failed})
    assert "ended failed" in body and "Reason: no logs for the window" in body


# --- what a backfill sends to a Prefect server ----------------------------------------------------

def profiles_with_a_weak_model(folder: Path, name: str = "weak-model") -> Path:
    """The fleet's profiles plus `name`: minimax-m3 answering right one time in ten, so that its
    decisions regress within a night of 40 requests per prompt_version."""
    raw = yaml.safe_load((ROOT / "data" / "sim" / "profiles.yaml").read_text())
    weak = copy.deepcopy(next(p for p in raw["profiles"] if p["name"] == "minimax-m3"))
    weak.update(name=name, description="answers right one time in ten (tests)",
                accuracy=dict.fromkeys(weak["accuracy"], 0.1))
    raw["profiles"].append(weak)
    path = folder / "profiles.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def read_events(prefix: str = "replaybench.") -> list:
    """Every event on the Prefect server whose name starts with `prefix`, all pages."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    window = EventOccurredFilter(since=datetime.now(UTC) - timedelta(days=1))
    async with get_client() as client:
        page = await client.read_events(filter=EventFilter(
            event=EventNameFilter(prefix=[prefix]), occurred=window), limit=50)
        found = list(page.events)
        while page.next_page:
            page = await client.read_events_page(page.next_page)
            found += page.events
    return found


def events_until(done, deadline_s: float = 60) -> list:
    """Poll the server until `done(events)` holds (the server stores events in batches), bounded."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = asyncio.run(read_events())
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture(scope="module")
def nights(tmp_path_factory, prefect_harness, demo_slice):
    """A backfill of 2026-11-25 (no traffic: fails) to 2026-11-27 with three candidates: glm-5.2,
    a weak model (regresses), and a dead endpoint (no answers: the nights are partial, and its
    decisions recommend reject on the error rate). The dead one has an API key."""
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker

    from flows.backfill import backfill
    from replaybench.config import load_settings
    from replaybench.ingest import ingest_paths
    from replaybench.sim.server import ThreadedFleet
    from replaybench.warehouse import open_warehouse

    from .test_nightly import closed_port_url

    folder = tmp_path_factory.mktemp("events")
    with ThreadedFleet(time_scale=0, profiles=profiles_with_a_weak_model(folder)) as fleet, \
            pytest.MonkeyPatch.context() as env:
        env.setenv(KEY_ENV, SECRET)
        candidates = [
            {"name": "glm-5.2", "base_url": fleet.base_url, "model": "glm-5.2"},
            {"name": "weak-model", "base_url": fleet.base_url, "model": "weak-model"},
            {"name": "dead-endpoint", "base_url": closed_port_url(), "model": "glm-5.2",
             "timeout_s": 5, "api_key_env": KEY_ENV,
             "retry": {"max_attempts": 1, "backoff_s": 0, "breaker": 1}}]
        config = write_config(folder, fleet.base_url, candidates=candidates)
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        rows = asyncio.run(backfill(start_date=date(2026, 11, 25), end_date=date(2026, 11, 27),
                                    config=str(config)))
    EventsWorker.drain_all(timeout=30)
    with open_warehouse(settings.warehouse) as wh:  # each look, and the decision's last one
        looks = wh.frame("SELECT l.run_id, d.prompt_version, d.candidate, l.state, "
                         "d.recommendation, l.look = max(l.look) OVER (PARTITION BY decision_id) "
                         "AS last FROM decision_looks l JOIN decisions d USING (decision_id)"
                         ).to_dicts()
    ours = {r["run_id"] for r in rows}

    def mine(found: list) -> list:
        return [e for e in found if e.payload.get("run_id") in ours]

    def complete(found: list) -> bool:
        found = mine(found)
        return (sum(e.event.startswith("replaybench.decision.") for e in found) >= len(looks)
                and sum(e.event.startswith("replaybench.run.") for e in found) >= len(rows))

    sent = mine(events_until(complete))

    async def artifacts():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        keys = sorted({events.decision_artifact_key(r["prompt_version"], r["candidate"])
                       for r in looks})
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))

    return rows, looks, sent, asyncio.run(artifacts())


def test_each_night_ends_in_one_run_event_with_its_reason(nights):
    rows, _, sent, _ = nights
    assert [r["status"] for r in rows] == ["failed", "partial", "partial"]
    ended = {e.payload["run_id"]: e for e in sent if e.event.startswith("replaybench.run.")}
    assert len(ended) == 3 == len([e for e in sent if e.event.startswith("replaybench.run.")])
    for row in rows:
        event = ended[row["run_id"]]
        assert event.event == f"replaybench.run.{row['status']}"
        assert event.resource.id == f"replaybench.run.{row['run_id']}"
        assert event.payload["day"] == row["date"] and event.payload["kind"] == "backfill"
        assert row["reason"][:60] in event.payload["reason"]
    assert "dead-endpoint" in ended[rows[1]["run_id"]].payload["reason"]
    assert ended[rows[1]["run_id"]].payload["report_path"] == rows[1]["report"]


def test_each_decision_a_night_looked_at_is_one_event_named_by_its_recommendation(nights):
    _, looks, sent, _ = nights
    decided = [e for e in sent if e.event.startswith("replaybench.decision.")]
    assert sorted((e.payload["run_id"], e.resource["prompt_version"], e.resource["candidate"],
                   e.resource["replaybench.state"]) for e in decided) == sorted(
        (r["run_id"], r["prompt_version"], r["candidate"], r["state"]) for r in looks)
    named = {(e.payload["run_id"], e.resource["prompt_version"], e.resource["candidate"]): e.event
             for e in decided}
    for r in looks:
        if r["last"]:  # the decision as it stands is what its last event said
            assert named[r["run_id"], r["prompt_version"], r["candidate"]] == (
                f"replaybench.decision.{r['recommendation']}")
    assert len({e.id for e in decided}) == len(decided)
    by_candidate = {}
    for e in decided:
        by_candidate.setdefault(e.resource["candidate"], set()).add(
            (e.event, e.resource["replaybench.state"]))
    assert ("replaybench.decision.reject", "regressed") in by_candidate["weak-model"]
    assert by_candidate["dead-endpoint"] == {("replaybench.decision.reject", "open")}
    assert all(e.event != "replaybench.decision.reject" for e in decided
               if e.resource["candidate"] == "glm-5.2")
    for e in decided:
        roles = {r.role: r for r in e.related}
        assert roles["run"].id == f"replaybench.run.{e.payload['run_id']}"
        assert roles["flow-run"].id.startswith("prefect.flow-run.")
        assert roles["flow"]["prefect.resource.name"] == "replaybench-nightly"  # added by Prefect


def test_no_event_carries_the_api_key(nights):
    _, _, sent, _ = nights
    assert sent and all(SECRET not in e.model_dump_json() for e in sent)


def test_a_decisions_artifact_keeps_one_key_across_nights(nights):
    rows, looks, _, artifacts = nights
    nights_per_key: dict[str, set[str]] = {}
    for r in looks:
        key = events.decision_artifact_key(r["prompt_version"], r["candidate"])
        nights_per_key.setdefault(key, set()).add(r["run_id"])
    for key, looked_by in nights_per_key.items():
        versions = {run_id for a in artifacts if a.key == key
                    for run_id in looked_by if run_id in str(a.data)}
        assert versions == looked_by, key  # one version per night that looked at it
        assert not any(r["run_id"].lower() in key for r in rows if r["run_id"])
    assert any(len(v) == 2 for v in nights_per_key.values())  # open on both nights: one key


def test_a_night_that_timed_out_is_announced_failed_by_the_flows_state_hook(tmp_path, monkeypatch):
    """The hook path (timeout, cancellation, crash), which the night's own try/except never sees."""
    from types import SimpleNamespace

    from replaybench import runs
    from replaybench.config import load_settings
    from replaybench.lifecycle import mark_run_failed
    from replaybench.warehouse import open_warehouse

    config = write_config(tmp_path)
    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
    sent: list[events.Event] = []
    monkeypatch.setattr(events, "send", lambda batch: sent.extend(batch) or len(sent))
    flow_run = SimpleNamespace(id=uuid.UUID(int=3), name="nightly-2026-11-28",
                               parameters={"config": str(config), "run_date": "2026-11-28"})
    state = SimpleNamespace(name="TimedOut", message="Flow run exceeded timeout of 1.0 second(s)")
    mark_run_failed(None, flow_run, state)
    [event] = sent
    assert event.name == "replaybench.run.failed"
    assert event.resource["prefect.resource.id"] == f"replaybench.run.{run.run_id}"
    assert event.payload["reason"] == "TimedOut: Flow run exceeded timeout of 1.0 second(s)"
    assert event.related == [events.flow_run_resource(uuid.UUID(int=3), "nightly-2026-11-28")]
