"""End to end on a real Prefect server: the deployments from prefect.yaml, deployed with the CLI,
run by a process worker, triggered with `prefect deployment run`, against the local model fleet;
set up as docs/prefect.md says:

- the fleet wants an API key, which the flow runs get from a Prefect Secret block through the work
  pool's base job template (resolved by the worker at run time, never stored in a deployment);
- the shipped automation docs/automations/notify-on-reject.yaml, created with `prefect automation
  create --from-file`, notifies through a Prefect notification block (a custom webhook pointing at
  a recorder on loopback) when a night rejects a candidate: one candidate of the fleet answers
  right one time in ten, so its decisions regress and are rejected.

Everything Prefect-side runs in subprocesses with their own environment (see prefect_server.py);
this process only prepares the data, serves the fleet and the webhook, watches the server through
its REST API (polling on conditions, each with a deadline), and reads the warehouse once the
worker is gone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from replaybench import events
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.progress import slug
from replaybench.replay.files import file_stem
from replaybench.sim.server import ThreadedFleet
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config
from .prefect_server import Stack
from .test_events import profiles_with_a_weak_model

pytestmark = pytest.mark.e2e

CANDIDATES = ["deepseek-v4-pro", "glm-5.2", "weak-model"]
KEY = "sk-e2e-fleet-4f1d9c2b7a-only-in-a-secret-block"
KEY_ENV = "E2E_FLEET_KEY"  # named by the candidates; set nowhere but in the work pool's template

# Run against the server (its API URL in the environment): the key as a Secret block, and the
# notification block the automation sends through; prints the notification block's id.
BLOCKS = """
import sys
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
key, url = sys.argv[1:]
Secret(value=key).save("fleet-key")
hook = CustomWebhookNotificationBlock(name="replaybench-alerts", url=url,
                                      json_data={"subject": "{{subject}}", "body": "{{body}}"})
print(hook.save("replaybench-alerts"))
"""


class Webhook:
    """A webhook on loopback that keeps the JSON body of every POST it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def server_events(stack: Stack, prefix: str, since: datetime) -> list[dict]:
    """Every event on the server whose name starts with `prefix`, all pages (REST API)."""
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        page = client.post("/events/filter", json={
            "filter": {"event": {"prefix": [prefix]}, "occurred": {"since": since.isoformat()}},
            "limit": 50}).raise_for_status().json()
        found = page["events"]
        while page.get("next_page"):
            page = client.get(page["next_page"]).raise_for_status().json()
            found += page["events"]
    return found


def pool_template_with_the_key(stack: Stack) -> Path:
    """The process work pool's default base job template with the key's variable defaulting to
    the Secret block (docs/prefect.md, "Secrets")."""
    template = json.loads(stack.cli("work-pool", "get-default-base-job-template", "--type",
                                    "process"))
    template["variables"]["properties"]["env"]["default"] = {
        KEY_ENV: "{{ prefect.blocks.secret.fleet-key }}"}
    path = stack.folder / "pool.json"
    path.write_text(json.dumps(template))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_slice):
    folder = tmp_path_factory.mktemp("e2e")
    with ThreadedFleet(time_scale=0, profiles=profiles_with_a_weak_model(folder),
                       api_key=KEY) as fleet, Webhook() as hook, \
            pytest.MonkeyPatch.context() as env:
        env.delenv(KEY_ENV, raising=False)  # the worker must get the key from the block alone
        config = write_config(  # absolute paths: the worker runs in the repo root
            folder / "data", fleet.base_url,
            candidates=[{"name": name, "base_url": fleet.base_url, "model": name,
                         "api_key_env": KEY_ENV} for name in CANDIDATES])
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        since = datetime.now(UTC) - timedelta(minutes=5)

        stack = Stack(folder / "prefect")
        try:
            stack.start_server()
            block_id = subprocess.run(
                [sys.executable, "-c", BLOCKS, KEY, hook.url], cwd=ROOT, env=stack.env(),
                capture_output=True, text=True, check=True, timeout=120).stdout.split()[-1]
            stack.cli("work-pool", "create", "replaybench", "--type", "process",
                      "--base-job-template", str(pool_template_with_the_key(stack)))
            automation = folder / "notify-on-reject.yaml"
            automation.write_text((ROOT / "docs" / "automations" / "notify-on-reject.yaml")
                                  .read_text().replace("REPLACE-WITH-YOUR-BLOCK-ID", block_id))
            created = stack.cli("automation", "create", "--from-file", str(automation))
            automation_id = re.search(r"with id\s+([0-9a-f-]{36})", created).group(1)
            deployed = stack.cli("--no-prompt", "deploy", "--all")
            stack.start_worker("replaybench")
            flow_run_id = stack.run_deployment(
                "replaybench-backfill/backfill", start_date="2026-11-26", end_date="2026-11-27",
                config=str(config), fleet_url=fleet.base_url)
            flow_run = stack.wait_for_flow_run(flow_run_id, deadline_s=300)

            # The automation acts on events as the server processes them: wait (bounded) until
            # both nights have announced their end and every reject has had its notification.
            deadline = time.monotonic() + 120
            while True:
                rejects = server_events(stack, "replaybench.decision.reject", since)
                ended = server_events(stack, "replaybench.run.", since)
                if (len(ended) >= 2 and rejects and len(hook.received) >= len(rejects)) \
                        or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            sent = server_events(stack, "replaybench.", since)
            actions = server_events(stack, "prefect.automation.action.", since)
            with httpx.Client(base_url=stack.api_url, timeout=10) as client:
                deployments = client.post("/deployments/filter", json={}).json()
                pool = client.get("/work_pools/replaybench").json()
                artifacts = client.post("/artifacts/filter", json={"limit": 200}).json()
        finally:
            survivors = stack.stop()
        notified = list(hook.received)

    with open_warehouse(settings.warehouse) as wh:  # the worker is gone: the file is free
        runs = wh.frame("SELECT * FROM runs ORDER BY window_start").to_dicts()
        looks = wh.frame("SELECT l.run_id, d.prompt_version, d.candidate, d.recommendation, "
                         "d.reached_run FROM decision_looks l JOIN decisions d USING "
                         "(decision_id)").to_dicts()
    return {"deployed": deployed, "flow_run": flow_run, "worker": stack.output("worker"),
            "survivors": survivors, "runs": runs, "looks": looks, "rejects": rejects,
            "sent": sent, "actions": actions, "automation_id": automation_id,
            "notified": notified, "deployments": deployments, "pool": pool,
            "artifacts": artifacts}


def test_a_deployment_runs_on_a_real_server_and_worker(served):
    assert "'replaybench-nightly/nightly'" in served["deployed"]
    assert "'replaybench-backfill/backfill'" in served["deployed"]
    assert served["flow_run"]["state"]["type"] == "COMPLETED", (
        f"flow run {served['flow_run']['state']}\nworker output:\n{served['worker']}")
    assert served["survivors"] == [], f"still alive after stopping the server and worker: " \
                                      f"{served['survivors']}"
    runs = served["runs"]
    assert [(r["kind"], r["status"]) for r in runs] == [("backfill", "completed")] * 2
    assert [r["window_start"].date().isoformat() for r in runs] == ["2026-11-26", "2026-11-27"]
    for run in runs:
        html = Path(run["report_path"]).read_text(encoding="utf-8")
        assert any(name in html for name in CANDIDATES), run["report_path"]


def test_the_key_comes_from_a_secret_block_at_run_time_and_is_stored_nowhere_else(served):
    # the fleet refuses a request without the key: both nights completed, so the runs had it
    assert [r["status"] for r in served["runs"]] == ["completed"] * 2
    assert KEY not in json.dumps(served["deployments"])
    assert KEY not in json.dumps(served["pool"])
    assert "{{ prefect.blocks.secret.fleet-key }}" in json.dumps(served["pool"])
    assert KEY not in json.dumps(served["sent"]) and KEY not in json.dumps(served["notified"])


def test_every_reject_notifies_through_the_block_with_what_and_why(served):
    looks, rejects = served["looks"], served["rejects"]
    # what the warehouse decided: the weak model regresses, and each reject is sent on the night
    # it is reached (a reached decision is not looked at again)
    decided = {(r["prompt_version"], r["candidate"], r["reached_run"]) for r in looks
               if r["recommendation"] == "reject"}
    assert "weak-model" in {c for _, c, _ in decided}
    assert {(e["resource"]["prompt_version"], e["resource"]["candidate"], e["payload"]["run_id"])
            for e in rejects} == decided and len(rejects) == len(decided)
    failed = [a for a in served["actions"] if a["event"] == "prefect.automation.action.failed"]
    assert not failed, failed
    subjects = Counter(n["subject"] for n in served["notified"])
    assert subjects == Counter(f"replaybench: reject {c} for {pv}" for pv, c, _ in decided), (
        served["notified"], served["actions"])
    for note in served["notified"]:
        assert "(decision regressed)" in note["body"] and "pairs over" in note["body"]
    executed = [a for a in served["actions"] if a["event"] == "prefect.automation.action.executed"
                and a["resource"]["prefect.resource.id"]
                == f"prefect.automation.{served['automation_id']}"]
    assert len(executed) == len(decided)


def test_the_server_holds_an_event_per_night_and_per_decision_looked_at(served):
    runs, looks, sent = served["runs"], served["looks"], served["sent"]
    ended = sorted((e["event"], e["resource"]["prefect.resource.id"]) for e in sent
                   if e["event"].startswith("replaybench.run."))
    assert ended == sorted(("replaybench.run.completed", f"replaybench.run.{r['run_id']}")
                           for r in runs)
    decided = [e for e in sent if e["event"].startswith("replaybench.decision.")]
    assert sorted((e["payload"]["run_id"], e["resource"]["prompt_version"],
                   e["resource"]["candidate"]) for e in decided) == sorted(
        (r["run_id"], r["prompt_version"], r["candidate"]) for r in looks)
    for e in decided:
        roles = {r["prefect.resource.role"]: r for r in e["related"]}
        assert {"run", "flow-run", "flow"} <= set(roles), e["related"]  # a sub-flow: no deployment
        assert roles["flow"]["prefect.resource.name"] == "replaybench-nightly"


def test_artifact_keys_stay_the_same_night_after_night(served):
    versions = Counter(a["key"] for a in served["artifacts"] if a["key"])
    looked = Counter(events.decision_artifact_key(r["prompt_version"], r["candidate"])
                     for r in served["looks"])
    assert {k: n for k, n in versions.items() if k.startswith("decision-")} == looked
    assert 2 in looked.values()  # a decision still open after two nights: one key, two versions
    replay = {k: n for k, n in versions.items() if k.startswith("replay-")}
    assert set(replay) == {slug(f"replay-{file_stem(name)}") for name in CANDIDATES}
    assert replay[slug(f"replay-{file_stem('glm-5.2')}")] == 2
    for run in served["runs"]:
        assert not any(run["run_id"].lower() in key for key in replay | looked)
