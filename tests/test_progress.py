"""Progress and the night's account of itself: the in-process progress hub (counts, console bars,
Prefect progress artifacts), the ingest's bars in the CLI, the nightly flow's line per phase, and
the state hook that marks a run failed when the flow ends in a way its try/except cannot see."""

import asyncio
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from datetime import date

import pytest
from rich.console import Console

from replaybench import progress
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config

RUN_DATE = date(2026, 11, 28)  # covers 2026-11-27 (UTC in the test config)


def test_a_phase_counts_every_advance_from_many_threads():
    with progress.phase("threads", total=80_000) as p:
        def work():
            for _ in range(10_000):
                p.advance()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert p.done == 80_000 and p.percent() == 100.0 and p.closed
    p.close()  # closing twice is harmless


def test_console_bars_show_each_phase_with_its_count():
    out = io.StringIO()
    before = progress.phase("opened before the bars", total=3)
    before.advance(2)
    with progress.console_bars(Console(file=out, width=120)):
        with progress.phase("replay glm-5.2", total=1_000) as p:
            p.advance(400)
            p.advance(600)
        with progress.phase("ingest logs.jsonl", total=2_000_000, unit="B") as b:
            b.advance(1_000_000)
        with progress.phase("ingest spans.json", unit="records") as r:
            r.advance(12)
        before.close()
    text = out.getvalue()
    assert "replay glm-5.2" in text and "1,000/1,000" in text
    assert "ingest logs.jsonl" in text and "1.0 MB/2.0 MB" in text
    assert "ingest spans.json" in text and "12/12 records" in text  # the total, once known
    assert "opened before the bars" in text and "2/3" in text


def test_bars_stay_silent_when_stderr_is_not_a_terminal(capfd):
    with progress.console_bars(), progress.phase("quiet", total=10) as p:
        p.advance(10)
    assert capfd.readouterr().err == ""


def test_no_artifact_outside_a_prefect_run():
    with progress.phase("plain", total=5, key="plain-phase") as p:
        p.advance(5)
    assert p._artifact is None


def test_slug_makes_an_artifact_key():
    assert progress.slug("replay 20261128-ab12cd GLM-5.2") == "replay-20261128-ab12cd-glm-5-2"


async def _read_progress_artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_a_phase_in_a_flow_run_keeps_a_progress_artifact_that_ends_at_100(prefect_harness):
    from prefect import flow

    key = f"replay-test-{uuid.uuid4().hex[:8]}"
    out = io.StringIO()

    @flow
    async def replaying():
        with progress.phase("replay test", total=500, key=key) as p:
            for _ in range(500):
                p.advance()
                await asyncio.sleep(0)
        return p.done

    with progress.console_bars(Console(file=out, width=120)):
        assert asyncio.run(replaying()) == 500
    artifacts = asyncio.run(_read_progress_artifacts(key))
    assert len(artifacts) == 1
    assert artifacts[0].type == "progress" and artifacts[0].data == 100
    assert artifacts[0].flow_run_id is not None
    assert "replay test: 500 of 500" in artifacts[0].description
    assert "replay test" in out.getvalue() and "500/500" in out.getvalue()


def test_ingest_phase_follows_duckdb_and_ends_at_the_file_size(tmp_path, demo_slice):
    seen = []
    with progress.console_bars(Console(file=io.StringIO())):
        original = progress.Phase.close

        def spy(self):
            seen.append((self.name, self.done, self.total, self.unit))
            original(self)

        progress.Phase.close = spy
        try:
            ingest_paths(tmp_path / "w.duckdb", [demo_slice])
        finally:
            progress.Phase.close = original
    size = demo_slice.stat().st_size
    assert seen == [(f"ingest {demo_slice.name}", size, size, "B")]


def test_the_ingest_command_draws_a_bar_per_file_on_a_terminal(tmp_path, demo_slice):
    config = write_config(tmp_path)
    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}  # rich: stderr is a terminal
    done = subprocess.run([sys.executable, "-m", "replaybench.cli", "ingest", str(demo_slice),
                           "--config", str(config)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"ingest {demo_slice.name}" in done.stderr
    size = f"{demo_slice.stat().st_size / 1e6:.1f} MB"
    assert f"{size}/{size}" in done.stderr
    assert "ingested" in done.stdout and "ingest " not in done.stdout


# --- the nightly flow's account of itself ------------------------------------------------------

def test_the_nightly_flow_logs_one_line_per_phase_in_order(tmp_path, prefect_harness, fleet,
                                                           demo_slice):
    from flows.nightly import nightly

    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 5, "seed": 7})
    ingest_paths(load_settings(config).warehouse, [demo_slice])
    # a handler on Prefect's run logger itself: another test's CLI run may have set up Prefect's
    # logging so that run records no longer propagate to the root logger caplog listens on
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    run_logger = logging.getLogger("prefect.flow_runs")
    level = run_logger.level
    run_logger.addHandler(handler)
    run_logger.setLevel(logging.INFO)  # the tests run at WARNING
    try:
        result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    finally:
        run_logger.removeHandler(handler)
        run_logger.setLevel(level)
    assert result["status"] == "completed"
    lines = [r.getMessage() for r in records]
    phases = ["sampled", "redacted", "replayed", "validated", "scored", "finished", "report",
              "e-mail"]
    firsts = [next(i for i, line in enumerate(lines) if line.startswith(p + " ")
                   or line.startswith(p + ":")) for p in phases]
    assert firsts == sorted(firsts), lines
    assert any(line.startswith("sampled ") and "prompt_versions" in line for line in lines)
    replayed = [line for line in lines if line.startswith("replayed ")]
    assert len(replayed) == 3 and all(" ok, 0 failed" in line for line in replayed)
    assert f"finished run {result['run_id']}: completed" in lines
    assert f"report: {result['report']}" in lines
    assert "e-mail: skipped" in lines or "e-mail: sent" in lines or "e-mail: failed" in lines


@pytest.fixture
def silent_endpoint():
    """A loopback port that takes connections and never answers: a hung model endpoint."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(256)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"


def test_a_timed_out_night_is_marked_failed_by_the_hook(tmp_path, prefect_harness, fleet,
                                                        demo_slice, silent_endpoint):
    """A flow timeout cancels the flow: no `except Exception` sees it; the hook records it."""
    from flows.nightly import nightly

    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 3, "seed": 7},
                          candidates=[{"name": "hung", "base_url": silent_endpoint,
                                       "model": "glm-5.2", "timeout_s": 600}])
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    state = asyncio.run(nightly.with_options(timeout_seconds=8)(
        run_date=RUN_DATE, config=str(config), return_state=True))
    assert state.name == "TimedOut"
    with open_warehouse(settings.warehouse) as wh:
        run = wh.frame("SELECT status, error, finished_at FROM runs").row(0, named=True)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert run["error"].startswith("TimedOut: Flow run exceeded timeout of 8")


def test_the_hook_leaves_a_run_the_flow_already_closed(tmp_path, prefect_harness, fleet,
                                                       demo_slice):
    """An ordinary exception: the flow's own except records its reason; the hook keeps it."""
    from flows.nightly import nightly

    suites = tmp_path / "suites"  # two suites for one prompt_version: validate raises
    suites.mkdir()
    for name in ("a.yaml", "b.yaml"):
        shutil.copy(ROOT / "data" / "suites" / "triage@v4.yaml", suites / name)
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 3, "seed": 7},
                          suites=str(suites))
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    state = asyncio.run(nightly(run_date=RUN_DATE, config=str(config), return_state=True))
    assert state.is_failed()
    with open_warehouse(settings.warehouse) as wh:
        run = wh.frame("SELECT status, error FROM runs").row(0, named=True)
    assert run["status"] == "failed"
    assert run["error"].startswith("SuiteError: ")  # the flow's own reason, not the hook's
