"""The replay step under a heavy fault mix, killed and resumed, cached: nothing lost, nothing
paid twice. Real fleet on loopback, real DuckDB files, Prefect's harness for the flow."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from flows.nightly import nightly
from replaybench import runs
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.replay import replay_candidate
from replaybench.replay.files import journal_path
from replaybench.sample import draw_sample
from replaybench.sim.server import ProcessFleet, ThreadedFleet
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config

RUN_DATE = date(2026, 11, 28)
HEAVY = {"rate_limited": 0.08, "retry_after_s": 0.05, "server_error": 0.08, "unavailable": 0.05,
         "stall": 0.03, "stall_s": 3, "reset": 0.05, "truncated": 0.05, "sse_cut": 0.05}
FAST_RETRY = {"max_attempts": 12, "backoff_s": 0.01, "max_backoff_s": 0.05}


def stats(fleet, detail=False) -> dict:
    root = fleet.base_url.removesuffix("/v1")
    return httpx.get(f"{root}/_sim/stats" + ("?detail=1" if detail else "")).json()["models"]


def candidates(fleet, **over) -> list[dict]:
    return [{"name": name, "base_url": fleet.base_url, "model": name, "max_concurrency": 8,
             "timeout_s": 1.0, "retry": FAST_RETRY, "trusted": True, **over}
            for name in ("glm-5.2", "minimax-m3")]


@pytest.mark.e2e
def test_a_heavy_fault_mix_ends_in_one_row_per_request_and_nothing_paid_twice(
        tmp_path, prefect_harness, demo_slice):
    with ThreadedFleet(time_scale=0, faults={"*": HEAVY}) as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet),
                              sample={"per_prompt_version": 15, "seed": 7})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        first = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
        served = stats(fleet, detail=True)

        with open_warehouse(settings.warehouse) as wh:
            sampled = wh.execute("SELECT count(*) FROM samples").fetchone()[0]
            rows = wh.execute("SELECT model, count(*), count(DISTINCT request_id), "
                              "count(*) FILTER (WHERE status = 'ok' AND NOT from_cache), max(attempts) "
                              "FROM replays GROUP BY 1").fetchall()
        assert first["status"] == "completed"
        for model, n, distinct, ok, attempts in rows:
            assert n == distinct == sampled              # exactly one row per request
            assert ok == served[model]["completed"]      # every answer paid for was stored
            assert attempts > 1                          # the faults were real
            assert max(served[model]["completed_by_key"].values()) == 1  # none paid twice
            assert sum(served[model]["faults"].values()) > 0

        # a forced rerun of the same day reuses every answer: nothing is sent
        forced = asyncio.run(nightly(run_date=RUN_DATE, config=str(config), force=True))
        assert forced["status"] == "completed"
        assert {m: s["requests"] for m, s in stats(fleet).items()} == \
            {m: s["requests"] for m, s in served.items()}
        with open_warehouse(settings.warehouse) as wh:
            cached = wh.execute("SELECT count(*), bool_and(from_cache) FROM replays "
                                "WHERE run_id = $r AND status = 'ok'",
                                {"r": forced["run_id"]}).fetchone()
        assert cached[0] == 2 * sampled and cached[1]

        # --no-cache asks again
        asyncio.run(nightly(run_date=RUN_DATE, config=str(config), force=True, use_cache=False))
        assert all(stats(fleet)[m]["completed"] == 2 * served[m]["completed"] for m in served)


def test_a_dead_candidate_fails_fast_and_the_others_finish(tmp_path, prefect_harness, demo_slice):
    with ThreadedFleet(time_scale=0, faults={"glm-5.2": {"server_error": 1}}) as fleet:
        config = write_config(tmp_path, fleet.base_url,
                              candidates=candidates(fleet, retry={**FAST_RETRY, "max_attempts": 3,
                                                                  "breaker": 5}),
                              sample={"per_prompt_version": 20, "seed": 7})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
        sent = stats(fleet)["glm-5.2"]["requests"]
    with open_warehouse(settings.warehouse) as wh:
        dead = wh.execute("SELECT count(*), count(*) FILTER (WHERE error LIKE 'not sent:%') "
                          "FROM replays WHERE model = 'glm-5.2' AND status = 'error'").fetchone()
        alive = wh.execute("SELECT count(*) FROM replays WHERE model = 'minimax-m3' "
                           "AND status = 'ok'").fetchone()[0]
        sampled = wh.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert result["status"] == "partial"
    assert dead[0] == sampled and dead[1] > 0 and alive > 0
    assert sent < sampled * 3  # the breaker stopped the retries of the rest


def test_a_journal_left_by_a_killed_attempt_is_loaded_not_resent(tmp_path, demo_slice):
    with ThreadedFleet(time_scale=0) as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet)[:1],
                              sample={"per_prompt_version": 5, "seed": 7})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, RUN_DATE, "nightly")
            draw_sample(wh, settings, run)
        candidate = settings.candidates[0]
        asyncio.run(replay_candidate(settings, run, candidate))
        # as if the process died after journaling but before storing: move the rows back
        with open_warehouse(settings.warehouse) as wh:
            rows = wh.frame("SELECT * EXCLUDE (created_at) FROM replays").to_dicts()
            wh.execute("DELETE FROM replays")
        journal = journal_path(settings, run, candidate)
        journal.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows)
                           + '{"half a li')
        before = stats(fleet)["glm-5.2"]["requests"]
        outcome = asyncio.run(replay_candidate(settings, run, candidate))
        assert stats(fleet)["glm-5.2"]["requests"] == before
    assert outcome.from_journal == len(rows) and not journal.exists()
    with open_warehouse(settings.warehouse) as wh:
        assert wh.execute("SELECT count(*) FROM replays").fetchone()[0] == len(rows)


@pytest.mark.e2e
def test_a_run_killed_with_sigkill_resumes_and_loses_only_what_was_in_flight(tmp_path):
    """`replaybench run` in its own process, killed mid-replay, then run again."""
    with ProcessFleet(fixed_latency_ms=150) as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet),
                              sample={"per_prompt_version": 40, "seed": 7})
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "replaybench.cli", "run", "--date", str(RUN_DATE),
                   "--config", str(config)]
        ingest = subprocess.run([sys.executable, "-m", "replaybench.cli", "ingest",
                                 str(ROOT / "data/demo/production_logs.jsonl.gz"),
                                 "--config", str(config)], env=env, capture_output=True)
        assert ingest.returncode == 0
        victim = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        done = 0
        for _ in range(6000):  # bounded: at most ~10 minutes of polling
            done = sum(m["completed"] for m in stats(fleet).values())
            if done >= 150 or victim.poll() is not None:
                break
            time.sleep(0.1)  # waiting for the condition above, bounded by the loop
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        assert done >= 150, "the run ended before it could be killed"

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        served = stats(fleet, detail=True)

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        run_rows = wh.execute("SELECT run_id, status FROM runs").fetchall()
        sampled = wh.execute("SELECT count(*) FROM samples").fetchone()[0]
        per_model = wh.execute("SELECT model, count(*), count(DISTINCT request_id) FROM replays "
                               "GROUP BY 1").fetchall()
    assert len(run_rows) == 1 and run_rows[0][1] == "completed"  # the same run, resumed
    assert all(n == distinct == sampled for _, n, distinct in per_model)
    paid_twice = sum(c - 1 for m in served.values() for c in m["completed_by_key"].values())
    in_flight_bound = sum(c["max_concurrency"] for c in candidates(fleet))
    assert paid_twice <= in_flight_bound


def test_api_keys_never_reach_the_warehouse_the_report_or_the_logs(
        tmp_path, prefect_harness, demo_slice, monkeypatch, caplog):
    key, wrong = "sk-test-RECOGNISABLE-7d1e9b3c5a", "sk-test-RECOGNISABLE-WRONG-0042"
    monkeypatch.setenv("RB_GOOD_KEY", key)
    monkeypatch.setenv("RB_BAD_KEY", wrong)
    with ThreadedFleet(time_scale=0, api_key=key) as fleet:
        good, bad = candidates(fleet)
        config = write_config(tmp_path, fleet.base_url,
                              candidates=[{**good, "api_key_env": "RB_GOOD_KEY"},
                                          {**bad, "api_key_env": "RB_BAD_KEY"}],
                              sample={"per_prompt_version": 5, "seed": 7})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        with caplog.at_level("DEBUG"):
            result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    assert result["status"] == "partial"  # the wrong key: every request refused
    with open_warehouse(settings.warehouse) as wh:
        kinds = {r[0] for r in wh.execute("SELECT DISTINCT error_kind FROM replays "
                                          "WHERE model = 'minimax-m3'").fetchall()}
        dump = tmp_path / "dump"
        wh.execute(f"EXPORT DATABASE '{dump}' (FORMAT csv)")
    assert kinds == {"auth"}
    texts = [p.read_text(errors="replace") for p in dump.iterdir() if p.is_file()]
    texts += [Path(result["report"]).read_text(), caplog.text]
    texts += [p.read_text() for p in tmp_path.rglob("*.jsonl")]
    for text in texts:
        assert "RECOGNISABLE" not in text
    assert any("RB_BAD_KEY" in t or "HTTP 401" in t for t in texts)
