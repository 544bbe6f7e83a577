"""End to end: the nightly flow under Prefect's test harness, on a slice of the demo logs,
against the local model fleet on a loopback port; asserts on the warehouse and the report."""

import asyncio
import re
import socket
import urllib.parse
from datetime import date
from pathlib import Path

import pytest

from flows.nightly import nightly
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.warehouse import open_warehouse

from .conftest import write_config

RUN_DATE = date(2026, 11, 28)  # covers 2026-11-27 (UTC in the test config)
CANDIDATES = ["deepseek-v4-pro", "glm-5.2", "minimax-m3"]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens here once the socket is closed


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, prefect_harness, fleet, demo_slice):
    folder = tmp_path_factory.mktemp("nightly")
    config = write_config(folder, fleet.base_url)
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    return settings, config, result


def test_the_run_completes_and_is_recorded(finished_run):
    settings, _, result = finished_run
    assert result["status"] == "completed"
    with open_warehouse(settings.warehouse) as wh:
        run = wh.frame("SELECT * FROM runs").row(0, named=True)
    assert run["run_id"] == result["run_id"] and run["status"] == "completed"
    assert run["window_start"].isoformat() == "2026-11-27T00:00:00+00:00"
    assert run["report_path"] == result["report"]
    assert "api_key" not in run["candidates"]


def test_every_sampled_request_has_one_answer_per_candidate(finished_run):
    settings, _, result = finished_run
    with open_warehouse(settings.warehouse) as wh:
        sampled = wh.execute("SELECT prompt_version, count(*) FROM samples GROUP BY 1").fetchall()
        per_model = dict(wh.execute("SELECT model, count(*) FROM replays GROUP BY 1").fetchall())
        failed = wh.execute("SELECT count(*) FROM replays WHERE status <> 'ok'").fetchone()[0]
        stored = wh.frame("SELECT * FROM replays LIMIT 5").to_dicts()
    total = sum(n for _, n in sampled)
    assert len(sampled) >= 5 and all(n == 40 for _, n in sampled)
    assert per_model == {m: total for m in CANDIDATES}
    assert failed == 0
    for row in stored:  # provenance and usage with every answer
        assert row["base_url"].startswith("http://127.0.0.1:") and row["simulated"]
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0
        assert row["latency_ms"] > 0 and row["ttft_ms"] is not None
        assert row["cost_usd"] > 0 and row["price_version"].startswith("prices.yaml@")


def test_checks_are_per_row_and_cover_production_and_candidates(finished_run):
    settings, _, _ = finished_run
    with open_warehouse(settings.warehouse) as wh:
        models = {r[0] for r in wh.execute("SELECT DISTINCT model FROM checks").fetchall()}
        names = {r[0] for r in wh.execute('SELECT DISTINCT "check" FROM checks').fetchall()}
        unchecked = wh.execute(
            "SELECT count(*) FROM answers a WHERE run_id = (SELECT any_value(run_id) FROM runs) "
            "AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.request_id = a.request_id "
            "AND c.model = a.model)").fetchone()[0]
        label_failures = wh.execute(
            "SELECT count(*) FROM checks WHERE \"check\" = 'label_in_set' AND NOT passed "
            "AND prompt_version = 'triage@v3'").fetchone()[0]
    assert models == {"production", *CANDIDATES}
    assert {"label_in_set", "matches_schema", "answer_correct", "reference_match",
            "length_40_120_words"} <= names
    assert unchecked == 0
    assert label_failures > 0  # production's v3 format drift is caught


def test_scores_per_prompt_version_and_model(finished_run):
    settings, _, _ = finished_run
    with open_warehouse(settings.warehouse) as wh:
        scores = wh.frame("SELECT * FROM scores").to_dicts()
    pvs = {s["prompt_version"] for s in scores}
    assert len(scores) == len(pvs) * 4
    for s in scores:
        assert s["n"] == 40
        assert s["pass_rate_low"] <= s["pass_rate"] <= s["pass_rate_high"]
        if s["model"] == "production":
            assert s["verdict"] is None
        else:
            assert s["verdict"] in {"open", "improved", "regressed", "equivalent",
                                    "non_inferior", "inconclusive"}
            assert s["decision_pairs"] == 40 and s["decision_nights"] == 1
            assert s["recommendation"] in {"promote", "canary", "hold", "reject"}
            assert s["cost_per_task_usd"] > 0 and s["latency_p95_ms"] >= s["latency_p50_ms"]
            assert s["reason"].endswith(s["recommendation"])


def test_the_report_carries_the_decision_and_says_it_is_simulated(finished_run):
    settings, _, result = finished_run
    html = Path(result["report"]).read_text(encoding="utf-8")
    with open_warehouse(settings.warehouse) as wh:
        pvs = [r[0] for r in wh.execute("SELECT DISTINCT prompt_version FROM samples").fetchall()]
    first_screen = html[: html.index("<section id=")]
    for pv in pvs:
        assert pv in first_screen
    assert "Simulated numbers" in first_screen
    assert all(name in html for name in CANDIDATES)
    assert "Failing answers, next to production" in html
    assert "<script" not in html.lower()


def test_a_completed_day_is_skipped_unless_forced(finished_run):
    settings, config, first = finished_run
    assert asyncio.run(nightly(run_date=RUN_DATE, config=str(config))) is None
    forced = asyncio.run(nightly(run_date=RUN_DATE, config=str(config), force=True))
    assert forced["run_id"] != first["run_id"] and forced["status"] == "completed"
    with open_warehouse(settings.warehouse) as wh:
        a, b = (wh.execute("SELECT list(request_id ORDER BY request_id) FROM samples "
                           "WHERE run_id = $r", {"r": r}).fetchone()[0]
                for r in (first["run_id"], forced["run_id"]))
    assert a == b  # same seed, same data: the same sample


def test_a_dead_candidate_marks_the_run_partial(tmp_path, prefect_harness, fleet, demo_slice):
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 5, "seed": 7})
    settings = load_settings(config)
    dead = {"name": "dead-endpoint", "base_url": closed_port_url(), "model": "glm-5.2",
            "timeout_s": 5}
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 5, "seed": 7},
                          candidates=[{"name": "glm-5.2", "base_url": fleet.base_url,
                                       "model": "glm-5.2"}, dead])
    ingest_paths(settings.warehouse, [demo_slice])
    result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    assert result["status"] == "partial"
    with open_warehouse(settings.warehouse) as wh:
        rows = dict(wh.execute("SELECT model, count(*) FILTER (WHERE status = 'ok') FROM replays "
                               "GROUP BY 1").fetchall())
        kinds = {r[0] for r in wh.execute("SELECT DISTINCT error_kind FROM replays "
                                          "WHERE model = 'dead-endpoint'").fetchall()}
        run = wh.frame("SELECT status, error FROM runs").row(0, named=True)
    assert rows["dead-endpoint"] == 0 and rows["glm-5.2"] > 0
    assert kinds == {"server_error"}
    assert "dead-endpoint" in run["error"]
    assert "This run is partial" in Path(result["report"]).read_text(encoding="utf-8")


def test_the_report_shows_money_frontier_and_the_trend_of_earlier_runs(finished_run):
    from replaybench.report.page import render_report

    settings, config, result = finished_run
    earlier = asyncio.run(nightly(run_date=date(2026, 11, 27), config=str(config)))
    assert earlier["status"] == "completed"
    with open_warehouse(settings.warehouse) as wh:
        html = render_report(wh, settings, result["run_id"]).read_text(encoding="utf-8")
    assert "Money, frontier and trend" in html and "on the frontier" in html
    assert "vs median of 1" in html          # tonight against the run of the day before
    assert "monthly cost (" in html          # at the production volume from the logs


def test_replaying_production_itself_shows_the_noise_floor(tmp_path, prefect_harness, fleet,
                                                           demo_slice):
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 20, "seed": 7},
                          candidates=[{"name": "glm-5.2", "base_url": fleet.base_url,
                                       "model": "glm-5.2"},
                                      {"name": "production-replay", "base_url": fleet.base_url,
                                       "model": "@logged"}])
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    with open_warehouse(settings.warehouse) as wh:
        sent = dict(wh.execute("SELECT prompt_version, list(DISTINCT model_sent) FROM replays "
                               "WHERE model = 'production-replay' GROUP BY 1").fetchall())
        priced = wh.execute("SELECT count(*) FILTER (WHERE price_version LIKE '%gpt-5-mini%') "
                            "FROM replays WHERE model = 'production-replay' "
                            "AND prompt_version = 'triage@v4'").fetchone()[0]
    assert sent["triage@v4"] == ["gpt-5-mini"] and sent["tutor-math@v1"] == ["gpt-5"]
    assert priced == 20  # each answer costed at its own model's price
    with open_warehouse(settings.warehouse) as wh:
        recs = {r[0] for r in wh.execute("SELECT DISTINCT recommendation FROM scores "
                                         "WHERE model = 'production-replay'").fetchall()}
    assert recs == {None}  # the noise floor is no candidate to move to
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "Noise floor:" in html


def test_the_index_lists_every_run_and_prefect_shows_the_outcome(finished_run):
    from prefect.client.orchestration import get_client

    settings, _, result = finished_run
    index = (settings.reports_dir / "index.html").read_text(encoding="utf-8")
    assert f'href="{Path(result["report"]).name}"' in index and "completed" in index
    assert "promote" in index and "hold" in index

    async def artifacts():  # by key: the server returns at most 200, in no useful order
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(like_=f"replaybench-{result['run_id'].lower()}-%")))

    keys = {a.key for a in asyncio.run(artifacts())}
    run = result["run_id"].lower()
    assert {f"replaybench-{run}-decisions", f"replaybench-{run}-report"} <= keys


def test_the_report_links_each_prompt_version_to_its_data_docs_page(finished_run):
    settings, _, result = finished_run
    report = Path(result["report"])
    html = report.read_text(encoding="utf-8")
    links = re.findall(r'href="(data-docs/validations/[^"]+)"', html)
    with open_warehouse(settings.warehouse) as wh:
        versions = {r[0] for r in wh.execute("SELECT DISTINCT prompt_version FROM samples").fetchall()}
    assert len(links) == len(versions)
    for link in links:  # each opens: a page of the Data Docs site beside the report
        page = report.parent / urllib.parse.unquote(link)
        assert page.is_file() and "Great Expectations" in page.read_text(encoding="utf-8")
