"""The night fetches its own logs: folder sources with a {date} template, the `sources` ledger
(nothing read twice, a grown file read again), freshness (wait, then partial), and the night
itself on a warehouse whose logs are only in a source. Real DuckDB files, the real fleet on
loopback, Prefect's test harness. (S3: test_sources_s3.py; Langfuse's API: test_sources_langfuse.py.)"""

import asyncio
import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from flows.backfill import backfill
from flows.nightly import nightly
from replaybench.config import load_settings
from replaybench.errors import ConfigError
from replaybench.ingest import ingest_paths, sources
from replaybench.pricing import PriceTable
from replaybench.warehouse import open_warehouse

from .conftest import write_config

DAYS = [date(2026, 11, 26), date(2026, 11, 27)]
TEMPLATE = "{date:%Y-%m-%d}/part-0.jsonl.gz"


def partition(folder: Path, demo_slice: Path, day: date, until: str | None = None) -> Path:
    """The demo slice's lines of `day` (UTC) as `folder/<day>/part-0.jsonl.gz`; `until`: only
    the lines before that time of day (a partition still being written)."""
    out = folder / f"{day:%Y-%m-%d}" / "part-0.jsonl.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = day.isoformat()
    with demo_slice.open() as src, gzip.open(out, "wt") as dst:
        for line in src:
            ts = json.loads(line)["ts"]
            if ts.startswith(prefix) and (until is None or ts[11:] < until):
                dst.write(line)
    return out


def settings_for(folder: Path, logs: Path, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    return load_settings(write_config(folder, sources=[{"path": str(logs / TEMPLATE)}], **overrides))


def window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


def ledger(wh) -> list[dict]:
    return wh.frame("SELECT * FROM sources ORDER BY item").to_dicts()


# --- the fetch and the ledger ------------------------------------------------------------------

def test_only_the_window_s_partitions_are_read_and_a_second_fetch_reads_nothing(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    for day in DAYS:
        partition(logs, demo_slice, day)
    settings = settings_for(tmp_path, logs)
    with open_warehouse(settings.warehouse) as wh:
        first = sources.fetch(wh, settings, *window(DAYS[1]))
        days = {d.date() for (d,) in wh.execute("SELECT DISTINCT date_trunc('day', ts) FROM logs").fetchall()}
        stored = ledger(wh)
        second = sources.fetch(wh, settings, *window(DAYS[1]))
        assert ledger(wh) == stored  # not even read_at moved
    assert [o.status for o in first.outcomes] == [sources.READ]
    assert first.outcomes[0].item.endswith("2026-11-27/part-0.jsonl.gz")
    assert days == {DAYS[1]}  # the 26th's partition was not read
    assert first.total.ingested > 100
    assert first.total.rejected == 1  # the demo logs hold a few bad lines on purpose
    assert [o.status for o in second.outcomes] == [sources.UNCHANGED]
    assert second.total.read == 0
    assert len(stored) == 1 and stored[0]["status"] == "read" and stored[0]["version"].startswith("size=")


def test_a_file_that_grew_is_read_again_and_only_its_new_rows_are_added(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    part = partition(logs, demo_slice, DAYS[1], until="12:00")
    settings = settings_for(tmp_path, logs)
    with open_warehouse(settings.warehouse) as wh:
        before = sources.fetch(wh, settings, *window(DAYS[1])).total
        partition(logs, demo_slice, DAYS[1])  # the rest of the day arrives in the same file
        after = sources.fetch(wh, settings, *window(DAYS[1])).total
        total = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
    with gzip.open(part, "rt") as fh:
        lines = sum(1 for _ in fh)
    assert after.duplicates == before.ingested  # read again whole; nothing stored twice
    assert total == before.ingested + after.ingested == lines - after.rejected


def test_the_legacy_logs_key_is_a_source_and_a_source_is_a_path_or_an_api(tmp_path, demo_slice):
    settings = load_settings(write_config(tmp_path, logs=[str(demo_slice)]))
    assert [s.path for s in settings.sources] == [str(demo_slice)]
    for bad in ({}, {"path": "x", "langfuse": {"host": "http://127.0.0.1:1"}}):
        with pytest.raises(ConfigError, match="either a path or a langfuse block"):
            load_settings(write_config(tmp_path, sources=[bad]))
    with pytest.raises(ConfigError, match="unknown format 'langfuse-export'; known: auto, "):
        load_settings(write_config(tmp_path, sources=[{"path": "x", "format": "langfuse-export"}]))
    with pytest.raises(ConfigError, match="duration"):
        load_settings(write_config(tmp_path, freshness={"wait": "soon"}))
    relative = load_settings(write_config(tmp_path, sources=[{"path": "logs/{date:%Y}/*.jsonl"}],
                                          freshness={"max_lag": "90m", "wait": 30, "poll": "1h"}))
    assert relative.sources[0].path == str(tmp_path / "logs/{date:%Y}/*.jsonl")
    assert relative.freshness.max_lag == timedelta(minutes=90)
    assert relative.freshness.wait == timedelta(seconds=30)


def test_a_source_that_fails_is_recorded_and_the_others_are_read(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    partition(logs, demo_slice, DAYS[1])
    broken = tmp_path / "broken" / "2026-11-27"
    broken.mkdir(parents=True)
    (broken / "x.parquet").write_text("not parquet")  # unreadable as its kind: an IngestError
    settings = load_settings(write_config(tmp_path, sources=[
        {"path": "nosuchscheme://bucket/{date:%Y}/*.jsonl"},
        {"path": str(tmp_path / "broken" / "{date:%Y-%m-%d}" / "*.parquet")},
        {"path": str(logs / "{day}" / "x.jsonl")},
        {"path": str(logs / TEMPLATE)},
    ]))
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *window(DAYS[1]))
        stored = {(r["source"], r["status"]) for r in ledger(wh)}
        check = sources.freshness(wh, settings, *window(DAYS[1]), fetched)
    by_source = {o.source: o for o in fetched.outcomes}
    assert "nosuchscheme" in by_source["nosuchscheme://bucket/{date:%Y}/*.jsonl"].error
    assert "is not a Parquet file" in by_source[settings.sources[1].path].error
    assert "template is not valid" in by_source[settings.sources[2].path].error
    assert by_source[settings.sources[3].path].status == sources.READ
    assert fetched.total.ingested > 100
    assert len(fetched.failures) == 3 and {s for s, status in stored if status == "failed"} == {
        s.path for s in settings.sources[:3]}
    assert not check.complete and "not a Parquet file" in check.reason()  # a failure is incomplete


# --- freshness ---------------------------------------------------------------------------------

def test_a_window_whose_newest_log_is_too_old_is_incomplete(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    partition(logs, demo_slice, DAYS[1], until="12:00")
    settings = settings_for(tmp_path, logs, freshness={"max_lag": "6h"})
    with open_warehouse(settings.warehouse) as wh:
        fetched, check = sources.fetch_until_fresh(wh, settings, *window(DAYS[1]))
    assert not check.complete and check.newest.hour == 11
    assert check.reason().startswith("logs incomplete: the newest log is 12.0 h before the window's end")
    empty = settings_for(tmp_path / "e", tmp_path / "nothing-here")
    with open_warehouse(empty.warehouse) as wh:
        _, nothing = sources.fetch_until_fresh(wh, empty, *window(DAYS[1]))
    assert nothing.reason() == "logs incomplete: no logs at all in the window"


def test_the_night_reads_again_while_it_waits_and_goes_on_when_the_late_file_lands(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    partition(logs, demo_slice, DAYS[1], until="12:00")
    settings = settings_for(tmp_path, logs, freshness={"max_lag": "1h", "wait": "2h", "poll": "10m"})
    pauses: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:  # the wait, on a clock of its own: the file lands meanwhile
        pauses.append(seconds)
        clock[0] += seconds
        if len(pauses) == 2:
            partition(logs, demo_slice, DAYS[1])

    with open_warehouse(settings.warehouse) as wh:
        fetched, check = sources.fetch_until_fresh(wh, settings, *window(DAYS[1]), sleep=sleep,
                                                   clock=lambda: clock[0])
    assert check.complete and check.reason() is None
    assert pauses == [600.0, 600.0]
    assert [o.status for o in fetched.outcomes] == [sources.READ, sources.UNCHANGED, sources.READ]


def test_the_wait_ends_at_its_limit(tmp_path, demo_slice):
    logs = tmp_path / "logs"
    partition(logs, demo_slice, DAYS[1], until="12:00")
    settings = settings_for(tmp_path, logs, freshness={"max_lag": "1h", "wait": "25m", "poll": "10m"})
    clock = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds

    with open_warehouse(settings.warehouse) as wh:
        _, check = sources.fetch_until_fresh(wh, settings, *window(DAYS[1]), sleep=sleep,
                                             clock=lambda: clock[0])
    assert not check.complete and pauses == [600.0, 600.0, 300.0]


# --- prices ------------------------------------------------------------------------------------

def test_a_config_whose_candidates_all_carry_a_price_needs_no_price_table(tmp_path):
    price = {"input": 1.0, "output": 2.0}
    candidates = [{"name": n, "base_url": "http://127.0.0.1:9/v1", "model": n, "price": price}
                  for n in ("a", "b")]
    priced = load_settings(write_config(tmp_path, candidates=candidates,
                                        prices=str(tmp_path / "no-such.yaml")))
    table = PriceTable.for_settings(priced)
    assert table.costing(priced.candidates[0], DAYS[0]).version == "config:a"
    one_unpriced = load_settings(write_config(tmp_path, candidates=[
        *candidates, {"name": "c", "base_url": "http://127.0.0.1:9/v1", "model": "c"}],
        prices=str(tmp_path / "no-such.yaml")))
    with pytest.raises(ConfigError, match="price table .* not found"):
        PriceTable.for_settings(one_unpriced)


# --- the night ---------------------------------------------------------------------------------

def night_summary(settings) -> dict:
    """What a run decided, comparable across warehouses."""
    with open_warehouse(settings.warehouse) as wh:
        return {
            "run": wh.execute("SELECT status, window_start, window_end FROM runs").fetchall(),
            "sampled": sorted(r[0] for r in wh.execute("SELECT request_id FROM samples").fetchall()),
            "scores": wh.frame("SELECT prompt_version, model, n, verdict, recommendation FROM scores "
                               "ORDER BY ALL").to_dicts(),
        }


@pytest.mark.e2e
def test_a_night_with_its_logs_only_in_a_source_is_the_night_of_logs_ingested_by_hand(
        tmp_path, prefect_harness, fleet, demo_slice):
    logs = tmp_path / "logs"
    for day in DAYS:
        partition(logs, demo_slice, day)
    sample = {"per_prompt_version": 15, "seed": 7}
    by_source = settings_for(tmp_path / "source", logs, sample=sample)
    by_hand_config = write_config(tmp_path / "hand", fleet.base_url, sample=sample)
    by_hand = load_settings(by_hand_config)
    ingest_paths(by_hand.warehouse, [logs / "2026-11-27" / "part-0.jsonl.gz"])

    source_config = write_config(tmp_path / "source", fleet.base_url, sample=sample,
                                 sources=[{"path": str(logs / TEMPLATE)}])
    first = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(source_config)))
    hand = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(by_hand_config)))
    assert first["status"] == hand["status"] == "completed"
    assert night_summary(by_source) == night_summary(by_hand)
    assert night_summary(by_source)["sampled"]

    with open_warehouse(by_source.warehouse) as wh:
        read_once = ledger(wh)
    again = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(source_config), force=True))
    assert again["status"] == "completed"
    with open_warehouse(by_source.warehouse) as wh:
        assert ledger(wh) == read_once  # the rerun read nothing


@pytest.mark.e2e
def test_a_late_partition_makes_the_night_wait_then_end_partial_with_the_reason(
        tmp_path, prefect_harness, fleet, demo_slice):
    logs = tmp_path / "logs"
    partition(logs, demo_slice, DAYS[1], until="12:00")
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 10, "seed": 7},
                          sources=[{"path": str(logs / TEMPLATE)}],
                          freshness={"max_lag": "1h", "wait": "1s", "poll": "0.2s"})
    result = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(config)))
    assert result["status"] == "partial"
    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        error, incomplete = wh.execute("SELECT error, logs_incomplete FROM runs").fetchone()
        reads = wh.execute("SELECT count(*) FROM sources").fetchone()[0]
    assert incomplete.startswith("logs incomplete: the newest log is 12.0 h before the window's end")
    assert error.startswith(incomplete)
    assert reads == 1
    report = Path(result["report"]).read_text()
    assert "This run is partial" in report and "the newest log is 12.0 h before" in report

    # the rest of the day lands: the day runs again (a partial day is not done) and completes
    partition(logs, demo_slice, DAYS[1])
    again = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(config)))
    assert again["status"] == "completed" and again["run_id"] != result["run_id"]


@pytest.mark.e2e
def test_a_backfill_reads_each_day_s_window_from_the_sources(tmp_path, prefect_harness, fleet, demo_slice):
    logs = tmp_path / "logs"
    for day in DAYS:
        partition(logs, demo_slice, day)
    config = write_config(tmp_path, fleet.base_url, sample={"per_prompt_version": 5, "seed": 7},
                          sources=[{"path": str(logs / TEMPLATE)}])
    rows = asyncio.run(backfill(start_date=DAYS[0], end_date=DAYS[1], config=str(config),
                                fleet_url=fleet.base_url))
    assert [r["status"] for r in rows] == ["completed", "completed"]
    with open_warehouse(load_settings(config).warehouse) as wh:
        read = sorted(r["item"].split("/")[-2] for r in ledger(wh) if r["status"] == "read")
    assert read == ["2026-11-26", "2026-11-27"]
    assert yaml.safe_load(config.read_text())["sources"]  # (the config under test had no `logs:`)
