"""Beyond one process: replay chunks sent by the workers of a real Dask cluster (worker processes,
each writing its own Parquet shards, loaded by this process), and two `replaybench` processes
sharing one warehouse file at the same time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date

import httpx
import pytest
from prefect import flow

from flows.replay import replay_all
from replaybench import locks, runs
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.locks import WarehouseLock
from replaybench.replay.files import shard_folder
from replaybench.sample import draw_sample
from replaybench.sim.server import ThreadedFleet
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config

RUN_DATE = date(2026, 11, 28)


def completed_by_key(fleet) -> dict:
    root = fleet.base_url.removesuffix("/v1")
    models = httpx.get(f"{root}/_sim/stats?detail=1").json()["models"]
    return {m: v.get("completed_by_key", {}) for m, v in models.items()}


@pytest.mark.e2e
def test_replay_fans_out_over_a_dask_cluster_of_two_worker_processes(tmp_path, prefect_harness,
                                                                      demo_slice):
    with ThreadedFleet(time_scale=0) as fleet:
        config = write_config(tmp_path, fleet.base_url,
                              sample={"per_prompt_version": 20, "seed": 7},
                              runner={"kind": "dask", "workers": 2, "chunk_size": 25})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, RUN_DATE, "nightly")
            sampled = draw_sample(wh, settings, run)

        @flow
        async def replay_only():
            return await replay_all(settings, run)

        outcomes = asyncio.run(replay_only())
        served = completed_by_key(fleet)

    total = sum(sampled.values())
    senders = {pid for o in outcomes for pid in o.senders}
    assert len(senders) >= 2 and os.getpid() not in senders  # sent by two worker processes
    with open_warehouse(settings.warehouse) as wh:
        rows = dict(wh.execute("SELECT model, count(DISTINCT request_id) FROM replays "
                               "WHERE run_id = $r AND status = 'ok' GROUP BY 1", {"r": run.run_id}))
        dupes = wh.execute("SELECT count(*) - count(DISTINCT (model, request_id)) FROM replays"
                           ).fetchone()[0]
    assert rows == {c.name: total for c in settings.candidates}
    assert dupes == 0
    assert all(n == 1 for keys in served.values() for n in keys.values())  # nobody asked twice
    assert not list(shard_folder(settings).glob("*.parquet"))  # every shard loaded, then deleted


def test_a_second_process_waits_for_the_warehouse_instead_of_failing(tmp_path):
    """One process holds the warehouse; another opens it, waits, and gets it once it is free."""
    warehouse = tmp_path / "w.duckdb"
    script = ("import sys; from replaybench.warehouse import open_warehouse\n"
              "with open_warehouse(sys.argv[1]) as wh:\n"
              "    print(wh.execute('SELECT count(*) FROM runs').fetchone()[0], flush=True)\n")
    with WarehouseLock(warehouse):
        waiter = subprocess.Popen([sys.executable, "-c", script, str(warehouse)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # it says it is waiting (and so has not failed) while this process holds the file
        line = waiter.stderr.readline()
        assert "waiting for the warehouse" in line and f"pid {os.getpid()}" in line
        assert waiter.poll() is None
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    assert out.strip() == "0"


def test_a_warehouse_busy_for_too_long_is_a_clear_error(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    script = ("import sys; from replaybench.locks import WarehouseLock\n"
              "from pathlib import Path\n"
              "from replaybench.errors import WarehouseError\n"
              "try:\n"
              "    with WarehouseLock(Path(sys.argv[1]), wait_s=0.2): pass\n"
              "except WarehouseError as e: print(e)\n")
    with WarehouseLock(warehouse):
        out = subprocess.run([sys.executable, "-c", script, str(warehouse)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert "stayed busy" in out.stdout and f"pid {os.getpid()}" in out.stdout


@pytest.mark.e2e
def test_a_nightly_run_and_a_backfill_share_the_warehouse_at_the_same_time(tmp_path, demo_slice):
    """Two processes, one DuckDB file: both complete, each answer stored once."""
    with ThreadedFleet(time_scale=0, fixed_latency_ms=150) as fleet:
        config = write_config(tmp_path, fleet.base_url,
                              sample={"per_prompt_version": 20, "seed": 7},
                              candidates=[{"name": n, "base_url": fleet.base_url, "model": n,
                                           "max_concurrency": 4}
                                          for n in ("glm-5.2", "minimax-m3")])
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        commands = {
            "nightly": ["run", "--date", "2026-11-28"],            # the traffic of the 27th
            "backfill": ["backfill", "--start", "2026-11-26", "--end", "2026-11-26"],
        }
        procs = {}
        for kind, args in commands.items():
            env = {**os.environ, "PYTHONPATH": str(ROOT),
                   "PREFECT_HOME": str(tmp_path / f"prefect-{kind}")}  # each its own Prefect
            procs[kind] = subprocess.Popen(
                [sys.executable, "-m", "replaybench.cli", *args, "--config", str(config)],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outputs = {kind: p.communicate(timeout=600)[0] for kind, p in procs.items()}
        served = completed_by_key(fleet)

    for kind, p in procs.items():
        assert p.returncode == 0, f"{kind}:\n{outputs[kind][-3000:]}"
    with open_warehouse(settings.warehouse) as wh:
        done = wh.execute("SELECT kind, status, started_at, finished_at, run_id FROM runs "
                          "ORDER BY kind").fetchall()
        per_run = dict(wh.execute(
            "SELECT r.run_id, count(*) = count(DISTINCT (r.model, r.request_id)) "
            "AND count(*) = 2 * (SELECT count(*) FROM samples s WHERE s.run_id = r.run_id) "
            "FROM replays r GROUP BY 1").fetchall())
        paid = wh.execute("SELECT count(*) FROM replays WHERE status = 'ok' AND NOT from_cache"
                          ).fetchone()[0]
    assert [(k, s) for k, s, *_ in done] == [("backfill", "completed"), ("nightly", "completed")]
    (_, _, start_a, end_a, run_a), (_, _, start_b, end_b, run_b) = done
    assert start_a < end_b and start_b < end_a  # the two runs were under way at the same time
    assert per_run == {run_a: True, run_b: True}  # one row per request and candidate, each run
    # every answer the fleet gave is stored once, and no question was paid for twice, though the
    # two processes share some (each waits for, or reads, the other's answer)
    assert sum(n for keys in served.values() for n in keys.values()) == paid
    assert max(n for keys in served.values() for n in keys.values()) == 1
    with open_warehouse(settings.warehouse) as wh:
        shared = wh.execute("SELECT count(*) FROM (SELECT model, cache_key FROM replays "
                            "GROUP BY ALL HAVING count(DISTINCT run_id) = 2)").fetchone()[0]
    assert shared > 0


@pytest.mark.e2e
def test_a_day_under_way_in_another_process_is_not_started_twice(tmp_path, demo_slice):
    """This process holds the day's run; `replaybench run` for the same day in another process
    is refused with the holder named, and the run under way is left alone."""
    config = write_config(tmp_path, sample={"per_prompt_version": 2, "seed": 7})
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, RUN_DATE, "nightly")  # under way here, leased to us
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
        other = subprocess.run([sys.executable, "-m", "replaybench.cli", "run", "--date",
                                str(RUN_DATE), "--config", str(config)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=600)
        assert other.returncode != 0
        assert f"under way in pid {os.getpid()}" in other.stderr + other.stdout
        with open_warehouse(settings.warehouse) as wh:
            stored = wh.execute("SELECT run_id, status, error FROM runs").fetchall()
        assert stored == [(run.run_id, "running", None)]  # not failed by the other's hook
    finally:
        locks.release_day(settings.warehouse, RUN_DATE)
    assert not locks.day_leased_elsewhere(settings.warehouse, RUN_DATE)


def test_two_runs_asking_the_same_question_at_once_in_one_process_pay_once(tmp_path, demo_slice):
    """A backfill's days side by side: planned before either has an answer, sent at the same
    time; a question both ask is sent once, and the other run takes its answer."""
    from replaybench.replay.load import load_replay
    from replaybench.replay.plan import plan_replay
    from replaybench.replay.send import send_plan

    with ThreadedFleet(time_scale=0, fixed_latency_ms=50) as fleet:
        config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 80, "seed": 7},
                              candidates=[{"name": "glm-5.2", "base_url": fleet.base_url,
                                           "model": "glm-5.2", "max_concurrency": 8}])
        settings = load_settings(config)
        candidate = settings.candidates[0]
        ingest_paths(settings.warehouse, [demo_slice])
        days = []
        with open_warehouse(settings.warehouse) as wh:
            for run_date in (date(2026, 11, 27), date(2026, 11, 28)):
                run = runs.begin(wh, settings, run_date, "backfill")
                draw_sample(wh, settings, run)
                days.append(run)
        plans = [plan_replay(settings, run, candidate) for run in days]
        shared = ({g[0]["cache_key"] for g in plans[0].groups()}
                  & {g[0]["cache_key"] for g in plans[1].groups()})
        twins = sum(len(g) - 1 for p in plans for g in p.groups())  # read before the plans end

        async def both():
            return await asyncio.gather(*(send_plan(p) for p in plans))

        sent = asyncio.run(both())
        outcomes = [load_replay(settings, run, candidate, plan, [s])
                    for run, plan, s in zip(days, plans, sent, strict=True)]
        asked = completed_by_key(fleet)["glm-5.2"]

    assert shared  # the two days do share questions, and both planned to ask them
    assert max(asked.values()) == 1 and sum(asked.values()) == \
        sum(p.size for p in plans) - twins - len(shared)
    assert all(o.ok == o.requested for o in outcomes)
    assert sum(s.reused for s in sent) >= len(shared)
