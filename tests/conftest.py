"""Shared fixtures: Prefect's test harness (once per session), the local model fleet on a
loopback port, a config file pointing at a warehouse in a temporary folder."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_LOGS = ROOT / "data" / "demo" / "production_logs.jsonl.gz"
# the columns of the `answers` view that validation reads (see warehouse/sql/answer_macros.sql)
ANSWER_SCHEMA = {
    "request_id": pl.String,
    "model": pl.String,
    "prompt_version": pl.String,
    "output_text": pl.String,
    "reference": pl.String,
    "output_tokens": pl.Int64,
    "latency_ms": pl.Float64,
    "production_text": pl.String,
}
# How many generated inputs each property-based fuzz test checks. The full budget (10,000) is what
# `make test-e2e` (and CI) runs; `make test` runs 1,000 for a quick answer on a newcomer's machine.
FUZZ_RECORDS = int(os.environ.get("FUZZ_RECORDS", "10000"))

# All local state in a throwaway folder; Prefect and GX quiet and offline.
os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-test-"))
from replaybench.config import prepare_environment  # noqa: E402

prepare_environment()


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def fleet():
    """The local model fleet, a real HTTP server on 127.0.0.1, answering without sleeping."""
    from replaybench.sim.server import ThreadedFleet

    with ThreadedFleet(time_scale=0) as running:
        yield running


@pytest.fixture(scope="session")
def demo_slice(tmp_path_factory) -> Path:
    """The demo logs of 2026-11-26 and 2026-11-27 (UTC) only: small enough for end-to-end tests."""
    out = tmp_path_factory.mktemp("logs") / "slice.jsonl"
    with gzip.open(DEMO_LOGS, "rt") as src, out.open("w") as dst:
        for line in src:
            try:
                ts = json.loads(line).get("ts", "")
            except json.JSONDecodeError:
                continue
            if ts.startswith(("2026-11-26", "2026-11-27")):
                dst.write(line)
    return out


def write_config(folder: Path, fleet_url: str = "http://127.0.0.1:9/v1", **overrides) -> Path:
    """A config like the bundled one, with its warehouse and reports inside `folder`; candidates
    are trusted (requests go as logged) unless they say `trusted: False`."""
    config = {
        "timezone": "UTC",
        "warehouse": str(folder / "warehouse.duckdb"),
        "reports_dir": str(folder / "reports"),
        "sample": {"per_prompt_version": 40, "seed": 7},
        # tests write a few hand-made logs at odd hours: only a window with none at all is stale
        # (test_sources.py sets its own freshness)
        "freshness": {"max_lag": "24h"},
        "suites": str(ROOT / "data" / "suites"),
        "prices": str(ROOT / "data" / "prices.yaml"),
        "candidates": [
            {"name": name, "base_url": fleet_url, "model": name, "max_concurrency": 16,
             "trusted": True}  # the local fleet: requests go as logged, as in the bundled config
            for name in ("glm-5.2", "deepseek-v4-pro", "minimax-m3")
        ],
    }
    config.update(overrides)
    for candidate in config["candidates"]:
        # the local fleet is trusted, as in the bundled config; a test of redaction says otherwise
        candidate.setdefault("trusted", True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "replaybench.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path
