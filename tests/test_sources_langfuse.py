"""Langfuse's public API as a source the night reads by itself: `sources.fetch` against a
Langfuse-shaped server on loopback (tests/langfuse_server.py), into a real DuckDB file.

What the night relies on: the rows are those of ingesting the same observations from an export;
every page of the window is read and nothing outside it asked for; a rerun asks only from the
cursor and adds nothing, later observations are picked up by the next fetch; 429s are waited out,
a 500 retried; refused keys are a failed source naming the variables, never the keys; a bad
observation is a reject beside the good ones.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from replaybench.config import load_settings
from replaybench.ingest import ingest_paths, sources
from replaybench.ingest.langfuse_api import FINAL, MAX_RETRY_AFTER_S, SETTLE, LangfuseSource
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .langfuse_server import LangfuseServer

PUBLIC, SECRET = "pk-lf-1e5a0c9f-public-7d21", "sk-lf-93b04e7a-secret-c58f"
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # the fetch runs the morning after the 27th
DAY26, DAY27, DAY28 = (datetime(2026, 11, d, tzinfo=UTC) for d in (26, 27, 28))
WINDOW = (DAY26, DAY28)
BAD = "gen-27-0123"  # logged without its input: a reject
DAY = timedelta(days=1)


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generation(key: str, n: int, at: datetime, **over) -> dict:
    """A GENERATION as Langfuse's v1 API and UI export give it; `n` varies its fields."""
    costed = n % 7 != 0
    obs = {
        "id": key, "traceId": f"trace-{key}", "type": "GENERATION", "name": "triage-llm",
        "startTime": iso(at), "endTime": iso(at + timedelta(milliseconds=1250 + n)),
        "completionStartTime": iso(at + timedelta(milliseconds=300)) if n % 3 else None,
        "model": "gpt-4o-mini" if n % 2 else "claude-sonnet-4-5", "modelId": "clx-model-01",
        "modelParameters": {"temperature": 0, "max_tokens": 512},
        "input": ([{"role": "system", "content": "Classify the ticket."},
                   {"role": "user", "content": f"Ticket {n}: refund please"}]
                  if n % 5 else f"Summarise ticket {n}."),
        "output": {"role": "assistant", "content": "billing"} if n % 4 else "shipping",
        "usageDetails": {"input": 150 + n, "input_cached_tokens": 64, "output": 12,
                         "output_reasoning_tokens": 4},
        "costDetails": {"total": 6.09e-05} if costed else {},
        "calculatedTotalCost": 6.09e-05 if costed else None,
        "level": "ERROR" if n % 50 == 0 else "DEFAULT",
        "statusMessage": "overloaded_error: Overloaded" if n % 50 == 0 else None,
        "promptId": "prm-11", "promptName": "triage" if n % 3 else None,
        "promptVersion": 4 if n % 3 else None,
        "metadata": {"tenant": "acme", "prompt_version": "summary@v2"}, "environment": "production",
        "latency": 1.25, "timeToFirstToken": 0.3 if n % 3 else None,
    }
    return obs | over


def day_of(day: datetime, count: int, every: timedelta, tag: str) -> list[dict]:
    return [generation(f"gen-{tag}-{n:04d}", n, day + n * every + timedelta(seconds=7)) for n in range(count)]


def observations() -> list[dict]:
    """250 generations on the 27th (one bad) and 10 spans, 30 on the 26th, a few either side."""
    day27 = day_of(DAY27, 250, timedelta(minutes=5), "27")
    day27[123] = generation(BAD, 123, DAY27 + 123 * timedelta(minutes=5), input=None)
    spans = [{"id": f"span-{n}", "traceId": f"trace-span-{n}", "type": "SPAN", "name": "handle",
              "startTime": iso(DAY27 + timedelta(hours=n, minutes=1)), "input": {"ticket": n}}
             for n in range(10)]
    return [*day_of(DAY26 - DAY, 5, timedelta(hours=4), "25"),
            *day_of(DAY26, 30, timedelta(minutes=45), "26"), *day27, *spans,
            *day_of(DAY28, 5, timedelta(hours=1), "28")]


def in_window(obs: list[dict]) -> list[dict]:
    return [o for o in obs if iso(WINDOW[0]) <= o["startTime"] < iso(WINDOW[1])]


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The source as the night opens it, with its clock at NOW; every wait it makes is kept
    (and slept)."""
    kept: list[float] = []

    def sleep(seconds: float) -> None:
        kept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setitem(sources.SOURCE_KINDS, "langfuse",
                        partial(LangfuseSource, now=lambda: NOW, sleep=sleep))
    return kept


@pytest.fixture
def server():
    with LangfuseServer(observations(), public_key=PUBLIC, secret_key=SECRET) as running:
        yield running


def settings_for(folder, server: LangfuseServer, **langfuse):
    block = {"host": server.url, "page_size": 100, "max_requests_per_s": 50} | langfuse
    return load_settings(write_config(folder, logs=[], sources=[{"langfuse": block}]))


def logs_of(wh):
    return wh.frame("SELECT * EXCLUDE (source, ingested_at) FROM logs ORDER BY request_id")


def by_hand(folder, obs: list[dict]):
    """The same observations ingested from an export file, as `replaybench ingest` does."""
    export = folder / "export.json"
    export.write_text(json.dumps({"data": obs}))
    ingest_paths(folder / "by-hand.duckdb", [export])
    with open_warehouse(folder / "by-hand.duckdb") as wh:
        return logs_of(wh), wh.execute("SELECT reason FROM rejects").fetchall()


def windows(server: LangfuseServer) -> list[tuple[str, str]]:
    return [(r.params["fromStartTime"], r.params["toStartTime"]) for r in server.asked() if r.status == 200]


# --- what is stored, and what is asked ----------------------------------------------------------

def test_a_fetch_stores_what_ingesting_the_export_stores_reading_every_page_of_the_window(
        tmp_path, server, keys, waits):
    settings = settings_for(tmp_path, server)
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
        stored = logs_of(wh)
        rejects = wh.frame("SELECT * FROM rejects").to_dicts()
        ledger = wh.frame("SELECT * FROM sources ORDER BY item").to_dicts()
    expected, expected_rejects = by_hand(tmp_path, in_window(server.observations))

    assert [o.status for o in fetched.outcomes] == [sources.READ, sources.READ]
    assert stored.equals(expected)  # every column of every row, as the export gives them
    assert len(stored) == 30 + 249 and fetched.total.ingested == 279 and fetched.total.rejected == 1
    assert stored["ts"].min() >= DAY26 and stored["ts"].max() < DAY28
    assert [r["reason"] for r in rejects] == [r for (r,) in expected_rejects] == ["missing input messages"]
    assert rejects[0]["source"] == f"langfuse:{server.url}" and rejects[0]["position"] == 1
    assert json.loads(rejects[0]["raw"])["id"] == BAD

    # each day asked once, page by page: 1 page for the 26th, 3 of 100 for the 27th's 250
    asked = server.asked()
    assert all(r.path == "/api/public/v2/observations" and r.status == 200 for r in asked)
    assert windows(server) == [(iso(DAY26), iso(DAY27))] + [(iso(DAY27), iso(DAY28))] * 3
    assert all(r.params["type"] == "GENERATION" and r.params["limit"] == "100" for r in asked)
    assert {"io", "usage", "model", "prompt"} <= set(asked[0].params["fields"].split(","))
    assert ["cursor" in r.params for r in asked] == [False, False, True, True]

    # the 26th ended more than a day before the fetch: final; the 27th is asked again next time
    assert [(row["item"], row["version"], row["status"]) for row in ledger] == [
        (f"{DAY26.isoformat()}/{DAY27.isoformat()}", FINAL, "read"),
        (f"{DAY27.isoformat()}/{DAY28.isoformat()}", None, "read")]
    assert [row["cursor"] for row in ledger] == [
        datetime.fromisoformat(max(o["startTime"] for o in in_window(server.observations)
                                   if o["id"].startswith(tag)).replace("Z", "+00:00")).isoformat()
        for tag in ("gen-26", "gen-27")]


def test_a_rerun_asks_only_from_the_cursor_and_later_observations_come_with_the_next_fetch(
        tmp_path, server, keys, waits):
    settings = settings_for(tmp_path, server)
    with open_warehouse(settings.warehouse) as wh:
        sources.fetch(wh, settings, *WINDOW)
        (cursor,) = wh.execute("SELECT cursor FROM sources WHERE item LIKE '2026-11-27%'").fetchone()
        before = len(server.requests)

        again = sources.fetch(wh, settings, *WINDOW)
        rerun = server.requests[before:]

        late = [generation(f"gen-27-late-{n}", n + 1, DAY27 + timedelta(hours=23, minutes=50 + n))
                for n in range(3)]
        server.observations.extend(late)
        before = len(server.requests)
        third = sources.fetch(wh, settings, *WINDOW)
        later = server.requests[before:]
        ids = {r for (r,) in wh.execute("SELECT request_id FROM logs").fetchall()}
        rejects = wh.execute("SELECT count(*) FROM rejects").fetchone()[0]

    # the 26th is final and not asked; the 27th is asked from its cursor: one page, nothing new
    assert [o.status for o in again.outcomes] == [sources.UNCHANGED, sources.READ]
    assert [(r.params["fromStartTime"], r.params["toStartTime"]) for r in rerun] == [
        (iso(datetime.fromisoformat(cursor)), iso(DAY28))]
    assert again.total.ingested == 0 and again.total.duplicates == 1  # the one at the cursor
    assert [(r.params["fromStartTime"]) for r in later] == [iso(datetime.fromisoformat(cursor))]
    assert third.total.ingested == 3 and {o["id"] for o in late} <= ids
    assert len(ids) == 279 + 3 and rejects == 1


def test_the_legacy_v1_listing_is_read_where_v2_is_not_served(tmp_path, keys, waits):
    with LangfuseServer(observations(), public_key=PUBLIC, secret_key=SECRET, v2=False) as server:
        settings = settings_for(tmp_path, server)
        with open_warehouse(settings.warehouse) as wh:
            fetched = sources.fetch(wh, settings, *WINDOW)
            stored = logs_of(wh)
        expected, _ = by_hand(tmp_path, in_window(server.observations))
    assert [o.status for o in fetched.outcomes] == [sources.READ, sources.READ]
    assert stored.equals(expected)
    paths = [(r.path, r.status, r.params.get("page")) for r in server.requests]
    assert paths == [("/api/public/v2/observations", 404, None),  # asked once, then remembered
                     ("/api/public/observations", 200, "1"),
                     ("/api/public/observations", 200, "1"), ("/api/public/observations", 200, "2"),
                     ("/api/public/observations", 200, "3")]


def test_the_cursor_stays_back_from_the_last_minutes_that_may_not_be_listed_yet(tmp_path, keys, monkeypatch):
    today = [generation("gen-28-a", 1, DAY28 + timedelta(hours=3)),
             generation("gen-28-b", 2, NOW - timedelta(minutes=10))]
    late = generation("gen-28-late", 3, NOW - timedelta(minutes=20))  # listed only after the first read
    monkeypatch.setitem(sources.SOURCE_KINDS, "langfuse", partial(LangfuseSource, now=lambda: NOW))
    with LangfuseServer(today, public_key=PUBLIC, secret_key=SECRET) as server:
        settings = settings_for(tmp_path, server)
        with open_warehouse(settings.warehouse) as wh:
            sources.fetch(wh, settings, DAY28, DAY28 + DAY)
            (cursor, version) = wh.execute("SELECT cursor, version FROM sources").fetchone()
            server.observations.append(late)
            second = sources.fetch(wh, settings, DAY28, DAY28 + DAY)
    assert version is None and datetime.fromisoformat(cursor) == NOW - SETTLE
    assert second.total.ingested == 1 and second.total.duplicates == 1


# --- rate limits, failures, keys --------------------------------------------------------------

def test_a_429_is_waited_out_for_its_retry_after_and_a_500_retried(tmp_path, server, keys, waits):
    settings = settings_for(tmp_path, server)
    server.fail(429, on=(3,), retry_after="1")  # the 27th's second page
    server.fail(500, on=(5,))  # its third page, after the 429's retry
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
        stored = wh.execute("SELECT count(*) FROM logs").fetchone()[0]
    statuses = [r.status for r in server.requests]
    assert statuses == [200, 200, 429, 200, 500, 200]
    assert server.requests[2].params == server.requests[3].params  # the same page asked again
    assert server.requests[3].at - server.requests[2].at >= 1.0  # Retry-After: 1 was honoured
    assert 1.0 in waits
    assert [o.status for o in fetched.outcomes] == [sources.READ, sources.READ] and stored == 279


def test_a_retry_after_too_long_is_cut_to_the_maximum(tmp_path, server, keys, monkeypatch):
    kept: list[float] = []
    monkeypatch.setitem(sources.SOURCE_KINDS, "langfuse",
                        partial(LangfuseSource, now=lambda: NOW, sleep=kept.append))
    server.fail(429, on=(1,), retry_after="86400")
    settings = settings_for(tmp_path, server)
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
    assert max(kept) == MAX_RETRY_AFTER_S
    assert fetched.total.ingested == 279


def test_refused_keys_fail_the_source_naming_the_variables_and_no_key_is_stored(tmp_path, server, waits,
                                                                                 monkeypatch):
    wrong_public, wrong_secret = "pk-lf-0000-wrong-public-9a9a", "sk-lf-0000-wrong-secret-8b8b"
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", wrong_public)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", wrong_secret)
    settings = settings_for(tmp_path, server)
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
        check = sources.freshness(wh, settings, *WINDOW, fetched)
        # then the right keys: the same warehouse holds rows, rejects and a ledger
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
        sources.fetch(wh, settings, *WINDOW)
        dumped = " ".join(str(wh.execute(f"SELECT * FROM {table}").fetchall())
                          for table in ("sources", "rejects", "logs"))
    assert [o.status for o in fetched.outcomes] == [sources.FAILED, sources.FAILED]
    assert [r.status for r in server.requests[:1]] == [401]
    assert sum(r.status == 401 for r in server.requests) == 1  # the 27th failed without asking
    for outcome in fetched.outcomes:
        assert "HTTP 401" in outcome.error
        assert "LANGFUSE_PUBLIC_KEY" in outcome.error and "LANGFUSE_SECRET_KEY" in outcome.error
    assert not check.complete and "LANGFUSE_SECRET_KEY" in check.reason()
    for key in (PUBLIC, SECRET, wrong_public, wrong_secret):
        assert key not in str(fetched.outcomes) and key not in check.reason() and key not in dumped
    assert "gen-27-0001" in dumped  # the scan did see the stored rows


def test_a_missing_key_variable_fails_the_source_once_without_asking(tmp_path, server, waits, monkeypatch):
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    settings = settings_for(tmp_path, server)
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
    assert [(o.item, o.status) for o in fetched.outcomes] == [("*", sources.FAILED)]
    assert "No LANGFUSE_SECRET_KEY in the environment" in fetched.outcomes[0].error
    assert server.requests == []


# --- bad observations -------------------------------------------------------------------------

def test_a_bad_observation_is_a_reject_and_the_good_ones_are_kept(tmp_path, keys, waits):
    at = DAY27 + timedelta(hours=9)
    obs = [generation("gen-ok-1", 1, at), generation("gen-bad-1", 2, at + timedelta(minutes=1), input=None),
           generation("gen-ok-2", 3, at + timedelta(minutes=2)),
           generation("gen-bad-2", 4, at + timedelta(minutes=3), usageDetails={"input": "many"})]
    with LangfuseServer(obs[:3], public_key=PUBLIC, secret_key=SECRET) as server:
        settings = settings_for(tmp_path, server)
        with open_warehouse(settings.warehouse) as wh:
            first = sources.fetch(wh, settings, DAY27, DAY28)
            server.observations.append(obs[3])
            wh.execute("UPDATE sources SET cursor = NULL")  # the whole day read again
            second = sources.fetch(wh, settings, DAY27, DAY28)
            ids = sorted(r for (r,) in wh.execute("SELECT request_id FROM logs").fetchall())
            rejects = wh.frame("SELECT source, position, reason, raw FROM rejects "
                               "ORDER BY position").to_dicts()
    assert (first.total.ingested, first.total.rejected) == (2, 1)
    assert (second.total.ingested, second.total.duplicates, second.total.rejected) == (0, 2, 2)
    assert ids == ["gen-ok-1", "gen-ok-2"]
    # the bad one read again keeps its row; the new one is numbered on
    assert [(r["position"], r["reason"], json.loads(r["raw"])["id"]) for r in rejects] == [
        (1, "missing input messages", "gen-bad-1"),
        (2, "usageDetails.input is not a number: 'many'", "gen-bad-2")]
    assert {r["source"] for r in rejects} == {f"langfuse:{server.url}"}


def test_the_window_is_cut_into_utc_days(tmp_path, keys):
    with LangfuseServer() as server:
        settings = settings_for(tmp_path, server)
    source = LangfuseSource(settings.sources[0], now=lambda: NOW)
    start, end = DAY26 + timedelta(hours=22), DAY28 + timedelta(hours=3)
    items = source.items(start, end, settings.tz)
    assert [(i.key, i.version) for i in items] == [
        (f"{start.isoformat()}/{DAY27.isoformat()}", FINAL),
        (f"{DAY27.isoformat()}/{DAY28.isoformat()}", None),
        (f"{DAY28.isoformat()}/{end.isoformat()}", None)]
    assert source.items(start, start, settings.tz) == []


def test_a_host_that_does_not_answer_fails_its_days_after_a_few_tries(tmp_path, keys, monkeypatch):
    kept: list[float] = []
    monkeypatch.setitem(sources.SOURCE_KINDS, "langfuse",
                        partial(LangfuseSource, now=lambda: NOW, sleep=kept.append))
    with LangfuseServer() as gone:
        pass  # a port nothing listens on any more
    settings = settings_for(tmp_path, gone)
    with open_warehouse(settings.warehouse) as wh:
        fetched = sources.fetch(wh, settings, *WINDOW)
    assert [o.status for o in fetched.outcomes] == [sources.FAILED, sources.FAILED]
    assert all("did not answer (ConnectError) 4 times" in o.error for o in fetched.outcomes)
    assert len([w for w in kept if w >= 0.25]) == 3  # three backoffs for the 26th, none for the 27th
