"""Backfills end to end: the backfill flow under Prefect's test harness, on the demo logs of
2026-11-26 and 2026-11-27, against the local model fleet on a loopback port. Asserts on the
warehouse, the reports, the fleet's own request counts, and the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
import yaml

from flows.backfill import MAX_DAYS, backfill, days_between
from replaybench.config import load_settings
from replaybench.errors import ReplaybenchError
from replaybench.ingest import ingest_paths
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config

DAY1, DAY2 = date(2026, 11, 26), date(2026, 11, 27)  # the two days of traffic in demo_slice
EMPTY_DAY = date(2026, 11, 25)  # no traffic in demo_slice
SMALL = {"per_prompt_version": 8, "seed": 7}


def completions(fleet) -> int:
    """Answers the fleet has completed so far, over every model."""
    stats = httpx.get(fleet.base_url.removesuffix("/v1") + "/_sim/stats").json()
    return sum(stats["completions"].values())


def stored_runs(settings) -> list[dict]:
    with open_warehouse(settings.warehouse) as wh:
        return wh.frame("SELECT * FROM runs ORDER BY run_date, started_at").to_dicts()


def run_backfill(config: Path, start: date, end: date, **options) -> list[dict]:
    return asyncio.run(backfill(start_date=start, end_date=end, config=str(config), **options))


# --- the date range, without Prefect ------------------------------------------------------------

def test_the_range_is_inclusive_and_refuses_reversed_long_or_unfinished_ranges():
    today = date(2026, 11, 29)
    assert days_between(DAY1, DAY2, today) == [DAY1, DAY2]
    assert days_between(DAY2, DAY2, today) == [DAY2]
    with pytest.raises(ReplaybenchError, match="is after its end"):
        days_between(DAY2, DAY1, today)
    with pytest.raises(ReplaybenchError, match="not over yet"):
        days_between(DAY1, today, today)
    with pytest.raises(ReplaybenchError, match=f"longer than {MAX_DAYS} days"):
        days_between(date(2024, 1, 1), DAY2, today)


# --- two days, then again, then forced ----------------------------------------------------------

@pytest.fixture(scope="module")
def first(tmp_path_factory, prefect_harness, fleet, demo_slice):
    folder = tmp_path_factory.mktemp("backfill")
    config = write_config(folder, fleet.base_url, sample=SMALL)
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    before = completions(fleet)
    rows = run_backfill(config, DAY1, DAY2)
    return settings, config, rows, completions(fleet) - before


@pytest.fixture(scope="module")
def second(first, fleet):
    settings, config, _, _ = first
    before = completions(fleet)
    rows = run_backfill(config, DAY1, DAY2)
    return rows, completions(fleet) - before


@pytest.fixture(scope="module")
def forced(second, first, fleet):
    settings, config, _, _ = first
    before = completions(fleet)
    rows = run_backfill(config, DAY1, DAY2, force=True)
    return rows, completions(fleet) - before


@pytest.mark.e2e
def test_each_day_gets_one_backfill_run_of_that_days_traffic(first):
    settings, _, rows, asked = first
    assert [(r["date"], r["status"], r["reason"]) for r in rows] == [
        ("2026-11-26", "completed", None), ("2026-11-27", "completed", None)]
    stored = stored_runs(settings)
    assert [r["run_id"] for r in stored] == [r["run_id"] for r in rows]
    assert {r["kind"] for r in stored} == {"backfill"} and {r["status"] for r in stored} == {"completed"}
    # the 26th is the traffic of the 26th: what `replaybench run --date 2026-11-27` would replay
    assert [r["run_date"] for r in stored] == [date(2026, 11, 27), date(2026, 11, 28)]
    assert [r["window_start"].isoformat() for r in stored] == [
        "2026-11-26T00:00:00+00:00", "2026-11-27T00:00:00+00:00"]
    reports = [Path(r["report"]) for r in rows]
    assert len(set(reports)) == 2 and all(p.is_file() for p in reports)
    assert [r["report_path"] for r in stored] == [str(p) for p in reports]
    assert asked > 0


@pytest.mark.e2e
def test_a_second_backfill_skips_both_days_and_asks_the_fleet_nothing(first, second):
    _, _, done, _ = first
    rows, asked = second
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert [(r["run_id"], r["report"]) for r in rows] == [(r["run_id"], r["report"]) for r in done]
    assert asked == 0


@pytest.mark.e2e
def test_force_runs_both_days_again_from_answers_already_paid_for(first, forced):
    settings, _, done, _ = first
    rows, asked = forced
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert {r["run_id"] for r in rows}.isdisjoint(r["run_id"] for r in done)
    assert asked == 0  # every answer came from the response cache
    with open_warehouse(settings.warehouse) as wh:
        fresh = wh.execute("SELECT count(*), count(*) FILTER (WHERE NOT from_cache) FROM replays "
                           "WHERE run_id IN (SELECT unnest($ids))",
                           {"ids": [r["run_id"] for r in rows]}).fetchone()
    assert fresh[0] > 0 and fresh[1] == 0


@pytest.mark.e2e
def test_the_summary_is_published_as_a_prefect_artifact(first):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _, _, rows, _ = first

    async def latest():
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["backfill-summary"])))
            return found

    found = asyncio.run(latest())
    assert found and all(a.type == "markdown" for a in found)
    assert any(rows[0]["run_id"] in a.data and "| 2026-11-26 | completed |" in a.data for a in found)


# --- a day that fails, and resuming -------------------------------------------------------------

@pytest.mark.e2e
def test_a_failing_day_is_reported_and_the_others_complete_and_resume(tmp_path, prefect_harness,
                                                                     fleet, demo_slice):
    config = write_config(tmp_path, fleet.base_url, sample=SMALL)
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    rows = run_backfill(config, EMPTY_DAY, DAY1, parallel=1)
    failed, done = rows
    assert failed["date"] == "2026-11-25" and failed["status"] == "failed" and failed["reason"]
    assert failed["report"] is None and failed["run_id"]  # it got as far as opening its run
    assert done["status"] == "completed" and Path(done["report"]).is_file()
    stored = {r["run_id"]: r for r in stored_runs(settings)}
    assert stored[failed["run_id"]]["status"] == "failed" and stored[failed["run_id"]]["error"]

    # a killed backfill leaves its run `running`: the next backfill resumes both under their ids
    with open_warehouse(settings.warehouse) as wh:
        wh.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = $r",
                   {"r": done["run_id"]})
    again = run_backfill(config, EMPTY_DAY, DAY1)
    assert [(r["run_id"], r["status"]) for r in again] == [(failed["run_id"], "failed"),
                                                          (done["run_id"], "completed")]
    stored = stored_runs(settings)
    assert len(stored) == 2 and {r["kind"] for r in stored} == {"backfill"}


# --- prices ---------------------------------------------------------------------------------------

def price_tripling_on_day2(folder: Path) -> Path:
    """The bundled price table, but glm-5.2 costs three times as much from DAY2 (no cache discount)."""
    table = yaml.safe_load((ROOT / "data" / "prices.yaml").read_text())
    table["models"]["glm-5.2"] = [
        {"effective_from": "2026-09-01", "input": 1.0, "cached_input": 1.0, "output": 2.0},
        {"effective_from": str(DAY2), "input": 3.0, "cached_input": 3.0, "output": 6.0}]
    prices = folder / "prices.yaml"
    prices.write_text(yaml.safe_dump(table))
    return prices


@pytest.mark.e2e
def test_each_day_is_costed_at_the_prices_in_force_that_day(tmp_path, prefect_harness, fleet,
                                                            demo_slice):
    prices = price_tripling_on_day2(tmp_path)
    config = write_config(tmp_path, fleet.base_url, sample=SMALL, prices=str(prices),
                          candidates=[{"name": "glm-5.2", "base_url": fleet.base_url,
                                       "model": "glm-5.2"}])
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    rows = run_backfill(config, DAY1, DAY2)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    with open_warehouse(settings.warehouse) as wh:
        per_day = {run_id: (usd * 1e6 / units, versions) for run_id, usd, units, versions in wh.execute(
            "SELECT run_id, sum(cost_usd), sum(input_tokens + 2 * output_tokens), "
            "list(DISTINCT price_version) FROM replays WHERE status = 'ok' GROUP BY 1").fetchall()}
    (usd1, versions1), (usd2, versions2) = (per_day[r["run_id"]] for r in rows)
    assert usd1 == pytest.approx(1.0) and usd2 == pytest.approx(3.0)  # USD per 1M input tokens
    assert [v.rsplit("@", 1)[1] for v in versions1 + versions2] == ["2026-09-01", "2026-11-27"]


@pytest.mark.e2e
def test_a_run_over_two_days_costs_each_request_at_its_own_days_prices(tmp_path, prefect_harness,
                                                                      fleet, demo_slice):
    from flows.nightly import nightly

    prices = price_tripling_on_day2(tmp_path)
    config = write_config(tmp_path, fleet.base_url, prices=str(prices),
                          sample={**SMALL, "window_days": 2},
                          candidates=[{"name": "glm-5.2", "base_url": fleet.base_url,
                                       "model": "glm-5.2"}])
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    result = asyncio.run(nightly(run_date=DAY2 + (DAY2 - DAY1), config=str(config)))
    assert result["status"] == "completed"
    with open_warehouse(settings.warehouse) as wh:
        per_day = dict(wh.execute(
            """SELECT l.ts::DATE, round(sum(r.cost_usd) * 1e6 / sum(r.input_tokens + 2 * r.output_tokens), 6)
               FROM replays r JOIN logs l USING (request_id)
               WHERE r.status = 'ok' AND r.model = 'glm-5.2' GROUP BY 1""").fetchall())
    assert per_day == {DAY1: pytest.approx(1.0), DAY2: pytest.approx(3.0)}  # USD per 1M input tokens


# --- the command line -----------------------------------------------------------------------------

@pytest.mark.e2e
def test_the_command_prints_the_summary_and_exits_non_zero_when_a_day_failed(tmp_path,
                                                                              prefect_harness,
                                                                              fleet, demo_slice):
    from typer.testing import CliRunner

    from replaybench.cli import app

    config = write_config(tmp_path, fleet.base_url, sample=SMALL)
    ingest_paths(load_settings(config).warehouse, [demo_slice])
    result = CliRunner().invoke(app, ["backfill", "--start", "2026-11-25", "--end", "2026-11-26",
                                      "--config", str(config)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any("2026-11-25" in line and "failed" in line for line in lines)
    assert any("2026-11-26" in line and "completed" in line for line in lines)

    again = CliRunner().invoke(app, ["backfill", "--start", "2026-11-26", "--end", "2026-11-26",
                                     "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert any("2026-11-26" in line and "skipped" in line for line in again.output.splitlines())


def test_bad_dates_exit_non_zero_with_a_one_line_reason(tmp_path):
    config = write_config(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "replaybench.cli", "backfill", *args,
                               "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    reversed_ = cli("--start", "2026-11-27", "--end", "2026-11-26")
    assert reversed_.returncode == 2
    assert reversed_.stderr.strip().splitlines() == [
        "error: backfill start 2026-11-27 is after its end 2026-11-26"]
    malformed = cli("--start", "26.11.2026", "--end", "2026-11-27")
    assert malformed.returncode == 2 and "--start must be a date like" in malformed.stderr
    assert not (tmp_path / "warehouse.duckdb").exists()  # refused before anything was opened


@pytest.mark.e2e
def test_days_run_side_by_side_never_pay_twice_for_a_prompt_they_share(tmp_path, prefect_harness,
                                                                        demo_slice):
    from replaybench.sim.server import ThreadedFleet

    with ThreadedFleet(time_scale=0, fixed_latency_ms=50) as own_fleet:
        config = write_config(tmp_path, own_fleet.base_url,
                              sample={"per_prompt_version": 40, "seed": 7})
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [demo_slice])
        rows = run_backfill(config, DAY1, DAY2, parallel=2)
        root = own_fleet.base_url.removesuffix("/v1")
        served = httpx.get(f"{root}/_sim/stats?detail=1").json()["models"]
    assert [r["status"] for r in rows] == ["completed", "completed"]
    with open_warehouse(settings.warehouse) as wh:
        shared = wh.execute("""SELECT count(*) FROM (
                                 SELECT cache_key FROM replays GROUP BY cache_key
                                 HAVING count(DISTINCT run_id) = 2)""").fetchone()[0]
    assert shared > 0  # the two days do ask some of the same questions
    asked = [n for model in served.values() for n in model.get("completed_by_key", {}).values()]
    assert asked and max(asked) == 1  # and each was paid for once
