"""End to end on a real Prefect server: the deployments from prefect.yaml, deployed with the CLI,
run by a process worker, triggered with `prefect deployment run`, against the local model fleet.

Everything Prefect-side runs in subprocesses with their own environment (see prefect_server.py);
this process only prepares the data, watches the flow run through the REST API, and reads the
warehouse once the worker is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .prefect_server import Stack

pytestmark = pytest.mark.slow

CANDIDATES = ["deepseek-v4-pro", "glm-5.2", "minimax-m3"]


def test_a_deployment_runs_on_a_real_server_and_worker(tmp_path, fleet, demo_slice):
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(data, fleet.base_url)  # absolute: the worker runs in the repo root
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])

    stack = Stack(tmp_path / "prefect")
    try:
        stack.start_server()
        stack.cli("work-pool", "create", "replaybench", "--type", "process")
        deployed = stack.cli("--no-prompt", "deploy", "--all")
        assert "'nightly/nightly'" in deployed and "'backfill/backfill'" in deployed, deployed
        stack.start_worker("replaybench")
        flow_run_id = stack.run_deployment(
            "backfill/backfill", start_date="2026-11-26", end_date="2026-11-27",
            config=str(config), fleet_url=fleet.base_url)
        flow_run = stack.wait_for_flow_run(flow_run_id, deadline_s=300)
        assert flow_run["state"]["type"] == "COMPLETED", (
            f"flow run {flow_run['state']}\nworker output:\n{stack.output('worker')}")
    finally:
        survivors = stack.stop()
    assert survivors == [], f"still alive after stopping the server and worker: {survivors}"

    with open_warehouse(settings.warehouse) as wh:  # the worker is gone: the file is free
        runs = wh.frame("SELECT * FROM runs ORDER BY window_start").to_dicts()
    assert [(r["kind"], r["status"]) for r in runs] == [("backfill", "completed")] * 2
    assert [r["window_start"].date().isoformat() for r in runs] == ["2026-11-26", "2026-11-27"]
    for run in runs:
        html = Path(run["report_path"]).read_text(encoding="utf-8")
        assert any(name in html for name in CANDIDATES), run["report_path"]
