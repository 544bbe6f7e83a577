"""Decisions in a real DuckDB warehouse: evidence accumulates across runs, counts each request
once, starts afresh when its key changes or it is reopened, and steers the next night's sample."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from replaybench import runs
from replaybench.config import load_settings
from replaybench.decide import evidence, rules
from replaybench.errors import ReplaybenchError
from replaybench.ingest import ingest_paths
from replaybench.sample import draw_sample
from replaybench.warehouse import open_warehouse

from .conftest import write_config

PV = "t@v1"


def outcomes(ids, candidate_passes, baseline_passes, *, model="glm-5.2", cand_cost=0.001,
             base_cost=0.002, pv=PV, status="ok", kind="bad_request"):
    """Per-answer outcomes (the `outcomes` query's shape) for a candidate and production."""
    n = len(ids)

    def frame(name, passes, cost, st):
        return pl.DataFrame({
            "request_id": ids, "prompt_version": [pv] * n, "model": [name] * n,
            "status": [st] * n, "output_tokens": [10] * n, "reasoning_tokens": [0] * n,
            "cost_usd": [cost] * n, "latency_ms": [100.0] * n, "ttft_ms": [50.0] * n,
            "output_tps": [80.0] * n, "passed": passes,
            "error_kind": [None if st == "ok" else kind] * n, "attempts": [1] * n,
            "production_model": ["openai/gpt-5-mini"] * n,
        }, schema_overrides={"cost_usd": pl.Float64, "error_kind": pl.String})

    return pl.concat([frame(model, candidate_passes, cand_cost, status),
                      frame("production", baseline_passes, base_cost, "ok")])


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_config(tmp_path))


def record(wh, settings, run, frame: pl.DataFrame):
    """`evidence.record_night` on outcomes held in a frame (score_run gathers them in DuckDB)."""
    with wh.registered("_outcomes", frame):
        return evidence.record_night(wh, settings, run, "_outcomes")


def night(wh, settings, day: int, frame: pl.DataFrame, force: bool = False):
    run = runs.begin(wh, settings, date(2026, 11, day), "nightly", force)
    after = record(wh, settings, run, frame)
    runs.finish(wh, run.run_id, runs.COMPLETED)
    return run, after


def ids(start, n):
    return [f"r{i}" for i in range(start, start + n)]


def test_evidence_accumulates_across_nights_and_counts_a_request_once(settings):
    same = [True] * 90 + [False] * 10
    with open_warehouse(settings.warehouse) as wh:
        _, first = night(wh, settings, 20, outcomes(ids(0, 100), same, same))
        dec = first[(PV, "glm-5.2")]
        assert (dec["state"], dec["pairs"], dec["nights"]) == ("open", 100, 1)
        assert dec["family_size"] == 1 and dec["alpha"] == pytest.approx(0.05)
        run2, second = night(wh, settings, 21, outcomes(ids(100, 100), same, same))
        dec = second[(PV, "glm-5.2")]
        assert (dec["pairs"], dec["nights"]) == (200, 2)
        # scoring the same run again changes nothing; a forced rerun of the same requests adds none
        again = record(wh, settings, run2, outcomes(ids(100, 100), same, same))
        assert again[(PV, "glm-5.2")]["pairs"] == 200
        _, forced = night(wh, settings, 21, outcomes(ids(100, 100), same, same), force=True)
        assert forced[(PV, "glm-5.2")]["pairs"] == 200
        looks = wh.execute("SELECT look, pairs FROM decision_looks ORDER BY look").fetchall()
        assert [p for _, p in looks][:2] == [100, 200]


def test_a_changed_candidate_or_suite_starts_afresh(settings, tmp_path):
    same = [True] * 50
    with open_warehouse(settings.warehouse) as wh:
        night(wh, settings, 20, outcomes(ids(0, 50), same, same))
        changed = settings.model_copy(update={"candidates": [
            settings.candidates[0].model_copy(update={"params": {"temperature": 0.7}}),
            *settings.candidates[1:]]})
        _, after = night(wh, changed, 21, outcomes(ids(50, 50), same, same))
        assert after[(PV, "glm-5.2")]["pairs"] == 50          # new key: old evidence not used
        assert wh.execute("SELECT count(*) FROM decisions").fetchone()[0] == 2
        live = [r for r in evidence.listing(wh) if r["candidate"] == "glm-5.2"]
        assert len(live) == 1 and live[0]["key_parts"].count("0.7")   # the old key is history
        old = [r for r in evidence.listing(wh, every=True) if r["closed_at"] is not None]
        assert [r["closed_reason"] for r in old] == ["superseded: the evidence key changed"]
        suites = tmp_path / "suites"
        suites.mkdir()
        (suites / "t.yaml").write_text(f"prompt_version: {PV}\nexpectations: []\n")
        _, after = night(wh, changed.model_copy(update={"suites": suites}), 22,
                         outcomes(ids(100, 50), same, same))
        assert after[(PV, "glm-5.2")]["pairs"] == 50          # a suite now: new key again


def test_a_reached_decision_stays_until_reopened_then_starts_from_zero(settings):
    with open_warehouse(settings.warehouse) as wh:
        _, after = night(wh, settings, 20, outcomes(ids(0, 200), [False] * 200, [True] * 200))
        dec = after[(PV, "glm-5.2")]
        assert dec["state"] == rules.REGRESSED and dec["recommendation"] == "reject"
        assert str(dec["reached_on"]) == "2026-11-19"
        # the next night's equal answers do not move a reached decision
        _, later = night(wh, settings, 21, outcomes(ids(200, 100), [True] * 100, [True] * 100))
        assert later[(PV, "glm-5.2")]["state"] == rules.REGRESSED
        assert later[(PV, "glm-5.2")]["pairs"] == 200
        assert evidence.reopen(wh, PV, "glm-5.2", "new prompt") == 1
        with pytest.raises(ReplaybenchError, match="no live decision"):
            evidence.reopen(wh, PV, "glm-5.2", "twice")
        _, fresh = night(wh, settings, 22, outcomes(ids(300, 100), [True] * 100, [True] * 100))
        dec = fresh[(PV, "glm-5.2")]
        assert (dec["generation"], dec["pairs"], dec["state"]) == (2, 100, "open")
        history = evidence.listing(wh, every=True)
        assert [r["closed_reason"] for r in history if r["candidate"] == "glm-5.2"] == \
            [None, "reopened: new prompt"]


def test_unknown_cost_is_never_promoted(settings):
    better = [True] * 300
    worse = [True] * 150 + [False] * 150
    with open_warehouse(settings.warehouse) as wh:
        _, after = night(wh, settings, 20, outcomes(ids(0, 300), better, worse, cand_cost=None))
    dec = after[(PV, "glm-5.2")]
    assert dec["state"] == rules.IMPROVED and dec["cost_ratio"] is None
    assert dec["recommendation"] == "canary"


def test_a_candidate_that_errors_on_every_request_is_rejected(settings):
    with open_warehouse(settings.warehouse) as wh:
        _, after = night(wh, settings, 20, outcomes(ids(0, 100), [False] * 100, [True] * 100,
                                                    status="error", cand_cost=None))
    dec = after[(PV, "glm-5.2")]
    assert dec["error_rate"] == 1.0 and dec["recommendation"] == "reject"


def test_no_shared_requests_make_no_decision(settings):
    frame = outcomes(ids(0, 20), [True] * 20, [True] * 20)
    frame = frame.with_columns(request_id=pl.when(pl.col("model") == "production")
                               .then(pl.lit("other-") + pl.col("request_id"))
                               .otherwise(pl.col("request_id")))
    with open_warehouse(settings.warehouse) as wh:
        _, after = night(wh, settings, 20, frame)
        assert after == {} and wh.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_the_sample_serves_only_open_decisions(tmp_path, demo_slice):
    settings = load_settings(write_config(tmp_path, sample={"per_prompt_version": 40, "seed": 7}))
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 27), "nightly")
        sizes = draw_sample(wh, settings, run)
        pvs = sorted(sizes)
        sampled = wh.frame("SELECT request_id, prompt_version FROM samples")
        # every candidate of the first prompt_version fails where production passed; only
        # glm-5.2 does on the second; the rest answer as production did
        frames = []
        for pv in pvs:
            pv_ids = sampled.filter(pl.col("prompt_version") == pv)["request_id"].to_list()
            for name in ("glm-5.2", "deepseek-v4-pro", "minimax-m3"):
                bad = pv == pvs[0] or (pv == pvs[1] and name == "glm-5.2")
                frames.append(outcomes(pv_ids, [not bad] * len(pv_ids), [True] * len(pv_ids),
                                       model=name, pv=pv))
        after = record(wh, settings, run,
                                      pl.concat(frames).unique(subset=["request_id", "model"]))
        reached = sorted(k for k, d in after.items() if d["state"] == rules.REGRESSED)
        assert reached == sorted([(pvs[0], c) for c in ("deepseek-v4-pro", "glm-5.2",
                                                        "minimax-m3")] + [(pvs[1], "glm-5.2")])
        runs.finish(wh, run.run_id, runs.COMPLETED)

        next_run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        sizes = draw_sample(wh, settings, next_run)
        quotas = {r["prompt_version"]: r for r in wh.frame(
            "SELECT * FROM sample_quotas WHERE run_id = $r", r=next_run.run_id).to_dicts()}
        plan = wh.frame("SELECT prompt_version, candidate FROM sample_plan WHERE run_id = $r",
                        r=next_run.run_id)
    assert pvs[0] not in sizes and quotas[pvs[0]]["quota"] == 0
    assert "all decisions reached" in quotas[pvs[0]]["reason"]
    assert pvs[0] not in plan["prompt_version"].to_list()
    second = plan.filter(pl.col("prompt_version") == pvs[1])["candidate"].to_list()
    assert sorted(second) == ["deepseek-v4-pro", "minimax-m3"]   # glm-5.2's is reached
    assert all(sizes[pv] > 0 for pv in pvs[1:])


def test_a_budget_shrinks_every_quota_alike(tmp_path, demo_slice):
    def quotas(**sample):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        settings = load_settings(write_config(folder, sample={"per_prompt_version": 40, "seed": 7,
                                                              **sample}))
        ingest_paths(settings.warehouse, [demo_slice])
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, date(2026, 11, 27), "nightly")
            draw_sample(wh, settings, run)
            return {r["prompt_version"]: r for r in wh.frame(
                "SELECT * FROM sample_quotas WHERE run_id = $r", r=run.run_id).to_dicts()}

    free = quotas()
    estimated = sum(q["estimated_usd"] for q in free.values())
    assert estimated > 0
    tight = quotas(budget_usd=estimated / 4)
    assert sum(q["estimated_usd"] for q in tight.values()) <= estimated / 4 + 1e-9
    for pv, q in tight.items():
        assert q["quota"] == int(free[pv]["quota"] * 0.25 + 1e-9) and "budget" in q["reason"]


def test_monitoring_keeps_a_small_sample_of_settled_prompt_versions(tmp_path, demo_slice):
    settings = load_settings(write_config(tmp_path, sample={"per_prompt_version": 40, "seed": 7,
                                                            "monitor_per_prompt_version": 5}))
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 27), "nightly")
        sizes = draw_sample(wh, settings, run)
        pv = sorted(sizes)[0]
        pv_ids = wh.frame("SELECT request_id FROM samples WHERE prompt_version = $pv",
                          pv=pv)["request_id"].to_list()
        record(wh, settings, run, pl.concat(
            [outcomes(pv_ids, [False] * len(pv_ids), [True] * len(pv_ids), model=name, pv=pv)
             for name in ("glm-5.2", "deepseek-v4-pro", "minimax-m3")]).unique(
            subset=["request_id", "model"]))
        runs.finish(wh, run.run_id, runs.COMPLETED)
        next_run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        assert draw_sample(wh, settings, next_run)[pv] == 5


def test_a_call_that_failed_in_transit_is_no_evidence_until_it_is_answered(settings):
    """A timeout says nothing about quality: it counts in the error rate, not as a failed pair,
    and a later run's answer to the same request takes its place."""
    passes = [True] * 100
    with open_warehouse(settings.warehouse) as wh:
        failed = outcomes(ids(0, 100), passes, passes).with_columns(
            status=pl.when((pl.col("model") == "glm-5.2") & (pl.col("request_id") < "r3"))
            .then(pl.lit("error")).otherwise(pl.col("status")),
            error_kind=pl.when((pl.col("model") == "glm-5.2") & (pl.col("request_id") < "r3"))
            .then(pl.lit("timeout")).otherwise(None),
        ).with_columns(passed=pl.col("passed") & (pl.col("status") == "ok"))
        timeouts = failed.filter((pl.col("model") == "glm-5.2") & (pl.col("status") != "ok")).height
        assert 20 < timeouts < 40
        _, after = night(wh, settings, 20, failed)
        dec = after[(PV, "glm-5.2")]
        assert dec["pairs"] == 100 - timeouts and dec["only_baseline"] == 0
        assert dec["state"] != rules.REGRESSED
        assert dec["error_rate"] == pytest.approx(timeouts / 100)
        _, again = night(wh, settings, 20, outcomes(ids(0, 100), passes, passes), force=True)
        dec = again[(PV, "glm-5.2")]
        assert (dec["pairs"], dec["error_rate"]) == (100, 0.0)
        # nothing replaces an answer: the same requests failing later leave the evidence as it is
        _, later = night(wh, settings, 20, failed, force=True)
        dec = later[(PV, "glm-5.2")]
        assert (dec["pairs"], dec["error_rate"]) == (100, 0.0)
        rows = wh.execute("SELECT count(*), count(DISTINCT request_id) FROM decision_evidence "
                          "WHERE decision_id = $d", {"d": dec["decision_id"]}).fetchone()
        assert rows == (100, 100)


def test_a_night_that_runs_out_of_memory_is_recorded_again_whole(settings, monkeypatch):
    """Scoring records a night in one unit of work (`Warehouse.atomic`): a statement that runs
    out of memory part way undoes it, the night's pairs table too, and it runs again under the
    grown limit, with the same evidence as a night that had the room."""
    from replaybench.warehouse import memory
    from tests.test_warehouse_memory import LISTS

    monkeypatch.setenv(memory.VARIABLE, "8MB")
    real, looks = evidence._look, []

    def look(wh, *args):
        looks.append(1)
        if len(looks) == 1:
            wh.execute(LISTS)  # needs more than 8 MB: runs out inside the transaction
        return real(wh, *args)

    monkeypatch.setattr(evidence, "_look", look)
    same = [True] * 90 + [False] * 10
    try:
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, date(2026, 11, 20), "nightly")
            with wh.registered("_outcomes", outcomes(ids(0, 100), same, same)):
                after = wh.atomic(lambda: evidence.record_night(wh, settings, run, "_outcomes"))
            rows = wh.execute("SELECT count(*), count(DISTINCT request_id) FROM "
                              "decision_evidence").fetchone()
            left = wh.execute("SELECT count(*) FROM duckdb_tables() "
                              "WHERE table_name = '_night_pairs'").fetchone()[0]
    finally:
        memory.reset()
    assert len(looks) == 2 and after[(PV, "glm-5.2")]["pairs"] == 100
    assert rows == (100, 100) and left == 0


def test_score_records_a_night_s_decisions_in_the_process_s_decision_turn(settings, monkeypatch):
    """A decision's evidence spans nights and has no key to refuse a request added twice: the
    nights of a parallel backfill (one process) record their decisions one at a time, each
    after the one before it committed."""
    from replaybench.decide import scores

    held = []

    def record_night(wh, settings, run, outcomes):
        held.append((scores.decision_turn.locked(), wh.con.execute(
            f"SELECT count(*) FROM {outcomes}").fetchone()[0]))
        return {}

    monkeypatch.setattr(evidence, "record_night", record_night)
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 20), "nightly")
        scores.score_run(wh, settings, run)  # a night with no answers: its decisions all the same
    assert held == [(True, 0)]
    assert not scores.decision_turn.locked()
