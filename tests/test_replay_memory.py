"""Loading a replay without holding the night in memory: DuckDB reads the shards itself, and a
journal is read (a piece at a time) only when its shards lack some of its answers. Real fleet on
loopback, real DuckDB files."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import replaybench.replay.journal as journal_module
import replaybench.replay.load as load_module
import replaybench.replay.plan as plan_module
from replaybench import runs
from replaybench.config import load_settings
from replaybench.errors import ReplaybenchError
from replaybench.pricing import price_table
from replaybench.providers import Completion
from replaybench.replay.files import journal_path
from replaybench.replay.journal import RowMaker, journal_rows
from replaybench.replay.load import load_replay
from replaybench.replay.plan import chunks, plan_replay
from replaybench.replay.send import send_plan
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .test_replay_durability import RUN_DATE, candidate, sampled_run, served, stored


def sent_night(tmp_path: Path, demo_slice: Path, fleet):
    settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                         [candidate(fleet, "glm-5.2")], 20)
    glm = settings.candidates[0]
    plan = plan_replay(settings, run, glm)
    sent = asyncio.run(send_plan(plan))
    return settings, run, glm, plan, sent, sampled


def test_a_journal_the_shards_lack_is_read_in_pieces_line_by_line(
        tmp_path, demo_slice, fleet, monkeypatch):
    """No shard left (all lost), a journal much larger than a piece, its last line cut short:
    every whole line is stored, each once, and the journal is then deleted."""
    settings, run, glm, plan, sent, sampled = sent_night(tmp_path, demo_slice, fleet)
    journal = journal_path(settings, run, glm)
    paid = {r["request_id"] for r in journal_rows(journal.read_bytes())}
    for shard in sent.shards:
        Path(shard).unlink()
    with journal.open("ab") as fh:
        fh.write(journal.read_bytes().splitlines()[0][:-40])  # a killed writer's last line
    monkeypatch.setattr(load_module, "JOURNAL_PIECE", 333)  # shorter than a line: pieces join lines

    load_replay(settings, run, glm, plan, [sent])

    with open_warehouse(settings.warehouse) as wh:
        have = [r[0] for r in wh.execute("SELECT request_id FROM replays").fetchall()]
    assert set(have) == paid and len(have) == len(paid)
    assert not journal.exists()


def test_a_journal_the_shards_hold_is_not_parsed(tmp_path, demo_slice, fleet, monkeypatch):
    """After a whole send the shards hold every answer: the journal is counted, not parsed,
    and deleted once the warehouse holds them."""
    settings, run, glm, plan, sent, sampled = sent_night(tmp_path, demo_slice, fleet)
    journal = journal_path(settings, run, glm)
    assert journal.exists()

    def refuse(data: bytes) -> list:
        raise AssertionError("the journal was parsed although the shards hold its answers")

    monkeypatch.setattr(journal_module, "journal_rows", refuse)
    load_replay(settings, run, glm, plan, [sent])

    assert stored(settings) == {"glm-5.2": (sampled, sampled)}
    assert not journal.exists()


def clean(record: dict) -> bool:
    """A demo log line of the run's day that ingest takes (the demo also holds bad ones)."""
    usage = (record.get("response") or {}).get("usage") or {}
    return record["ts"].startswith("2026-11-27") and all(
        isinstance(v, int) and v >= 0 for v in (usage.get("prompt_tokens"),
                                                 usage.get("completion_tokens")))


def night_with_twins(tmp_path: Path, demo_slice: Path, fleet, copies: int = 3):
    """40 requests of the run's day, and `copies` more of every fifth one under new ids (the
    same messages and parameters: the same question asked again), all sampled."""
    lines = [line for line in demo_slice.read_text().splitlines() if clean(json.loads(line))][:40]
    again = []
    for line in lines[::5]:
        record = json.loads(line)
        for n in range(copies):
            again.append(json.dumps({**record, "request_id": f"{record['request_id']}-again-{n}"}))
    logs = tmp_path / "twins.jsonl"
    # the copies in the opposite order of their questions: a plan finds them out of order
    logs.write_text("\n".join(lines + again[::-1]) + "\n")
    return sampled_run(tmp_path, logs, fleet, [candidate(fleet, "glm-5.2")], 1000)


def test_a_plan_keeps_its_requests_in_files_not_in_memory(tmp_path, demo_slice, fleet):
    """What a plan holds (and a Dask worker is sent) is where its requests are, not them: no
    request id in the pickled plan, every pending request in its files once; the files are
    gone once the answers are stored."""
    settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                         [candidate(fleet, "glm-5.2")], 20)
    glm = settings.candidates[0]
    plan = plan_replay(settings, run, glm)
    with open_warehouse(settings.warehouse) as wh:
        ids = [r[0] for r in wh.execute("SELECT request_id FROM samples").fetchall()]

    shipped = pickle.dumps(plan)
    assert not [i for i in ids if i.encode() in shipped]
    grouped = [r["request_id"] for g in plan.groups() for r in g]
    assert sorted(grouped) == sorted(ids) and plan.size == sampled == len(ids)
    assert plan.path.exists()

    load_replay(settings, run, glm, plan, [asyncio.run(send_plan(plan))])
    assert not plan.path.exists() and not plan.twins_path.exists()
    assert stored(settings) == {"glm-5.2": (sampled, sampled)}


def test_the_same_question_is_asked_once_whichever_batch_it_falls_in(
        tmp_path, demo_slice, fleet, monkeypatch):
    """Copies of a request planned batches apart (a batch of 7) still form one group: the
    endpoint is asked once per question, and every copy gets its answer."""
    monkeypatch.setattr(plan_module, "PLAN_BATCH", 7)
    settings, run, sampled = night_with_twins(tmp_path, demo_slice, fleet)
    glm = settings.candidates[0]
    before = sum(served(fleet).get("glm-5.2", {}).values())
    plan = plan_replay(settings, run, glm)
    groups = list(plan.groups())

    assert sum(len(g) for g in groups) == sampled == 40 + 8 * 3
    assert len(groups) == 40 and all(len(g) in (1, 4) for g in groups)
    # the copies are kept in the order of their question's row: a send reads them in step
    firsts = pq.read_table(plan.twins_path, columns=["first_row"]).column("first_row").to_pylist()
    assert len(firsts) == 24 and firsts == sorted(firsts) and len(set(firsts)) == 8
    assert all(len({r["cache_key"] for r in g}) == 1 for g in groups)
    load_replay(settings, run, glm, plan, [asyncio.run(send_plan(plan))])

    assert sum(served(fleet)["glm-5.2"].values()) - before == 40
    with open_warehouse(settings.warehouse) as wh:
        rows = wh.execute("SELECT count(*), count(*) FILTER (WHERE from_cache), "
                          "count(*) FILTER (WHERE status = 'ok') FROM replays").fetchone()
    assert rows == (sampled, 24, sampled)


def test_chunks_cut_a_plan_into_row_ranges_and_never_split_a_question(
        tmp_path, demo_slice, fleet):
    """A Dask run's chunks: together, the plan's groups in order, each once; each chunk about
    the size asked for (never a question cut from its copies)."""
    settings, run, sampled = night_with_twins(tmp_path, demo_slice, fleet)
    plan = plan_replay(settings, run, settings.candidates[0])
    whole = [[r["request_id"] for r in g] for g in plan.groups()]

    pieces = chunks(plan, 6)
    cut = [[r["request_id"] for r in g] for p in pieces for g in p.groups()]

    assert cut == whole
    assert [p.chunk for p in pieces] == list(range(1, len(pieces) + 1))
    assert sum(p.size for p in pieces) == plan.size == sampled
    assert all(p.size == sum(len(g) for g in p.groups()) for p in pieces)
    assert all(6 <= p.size < 6 + 4 for p in pieces[:-1])



def test_a_sender_that_cannot_see_its_plan_fails_rather_than_send_nothing(
        tmp_path, demo_slice, fleet):
    """A Dask worker on a machine without the plan's folder must not report an empty send (the
    night would end `completed` with its requests never asked): it fails and says why."""
    settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                         [candidate(fleet, "glm-5.2")], 5)
    plan = plan_replay(settings, run, settings.candidates[0])
    plan.path.unlink()

    with pytest.raises(ReplaybenchError, match="plan .* is missing.*shared filesystem"):
        asyncio.run(send_plan(plan))


def test_a_send_reads_its_plan_a_batch_at_a_time_not_the_whole_file(tmp_path, monkeypatch):
    """What a send holds of its plan is the batch being sent: pyarrow's default (pre-buffering)
    read every row group of the file at the first batch, ~23 MB a candidate at 100k requests,
    held to the end of the send."""
    monkeypatch.setattr(plan_module, "PLAN_BATCH", 100)
    n = 4_000
    path = tmp_path / "run--glm-5.2.parquet"
    pq.write_table(pa.table({
        "request_id": [f"r{i}" for i in range(n)], "prompt_version": ["p@v1"] * n,
        "ts": pa.array([datetime(2026, 11, 1, tzinfo=UTC)] * n, pa.timestamp("us", "UTC")),
        "messages": [os.urandom(1_000).hex() for _ in range(n)],  # 2 KB each, incompressible
        "params_json": ["{}"] * n, "cache_key": [f"{i:064x}" for i in range(n)],
    }), path, row_group_size=100)
    before = pa.total_allocated_bytes()

    groups = plan_module._groups(path, 0, n)
    first = next(groups)
    held = pa.total_allocated_bytes() - before

    assert held < path.stat().st_size / 10, (held, path.stat().st_size)
    assert first[0]["request_id"] == "r0" and 1 + sum(1 for _ in groups) == n


def test_making_a_night_s_rows_keeps_nothing_of_its_requests(tmp_path):
    """A send makes a row for each answer: what it remembers to make them (prices by day) does not
    grow with the requests. A memo of each request's timestamp held two objects a request to the
    end of the send (the night's timestamps are nearly all distinct)."""
    base_url = "http://127.0.0.1:9/v1"  # never asked
    settings = load_settings(write_config(
        tmp_path, base_url, candidates=[candidate(SimpleNamespace(base_url=base_url), "glm-5.2")]))
    glm = settings.candidates[0]
    run = runs.Run("run-1", "nightly", RUN_DATE, *settings.window(RUN_DATE))
    rows = RowMaker(run, glm, price_table(settings), settings.tz)
    answer = Completion(status="ok", output_text="4", input_tokens=10, output_tokens=1)
    start = datetime(2026, 11, 28, tzinfo=UTC)

    def make(count: int, offset: int) -> None:
        for i in range(offset, offset + count):
            rows.row({"request_id": f"r{i}", "prompt_version": "p@v1", "send_params": {},
                      "params_json": "{}", "cache_key": f"{i:064x}",
                      "ts": start + timedelta(seconds=7 * i)}, answer, False)

    make(100, 0)  # the day's prices, once
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        make(5_000, 100)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 50_000, kept  # the memo kept ~550 KB for 5,000 requests


@pytest.mark.parametrize("checked", [64 << 20, 700])  # one piece; a piece per few lines
def test_a_journal_s_answers_the_warehouse_lacks_are_counted_piece_by_piece(
        tmp_path, demo_slice, fleet, monkeypatch, checked):
    """A journal's answers the warehouse lacks (some lost after the shards were stored) are
    counted exactly, whatever the pieces its keys are checked in; a line of another candidate
    counts as lacking."""
    monkeypatch.setattr(load_module, "JOURNAL_CHECKED", checked)
    settings, run, glm, plan, sent, sampled = sent_night(tmp_path, demo_slice, fleet)
    journal = journal_path(settings, run, glm)
    paid = {r["request_id"] for r in journal_rows(journal.read_bytes())}
    with open_warehouse(settings.warehouse) as wh:
        load_module.store_shard_files(wh, run.run_id, [Path(s) for s in sent.shards])
        wh.execute("DELETE FROM replays WHERE hash(request_id) % 3 = 0")
        held = {r[0] for r in wh.execute("SELECT request_id FROM replays").fetchall()}
        assert held and paid - held

        assert load_module.lacking(wh, journal, run.run_id, glm.name) == len(paid - held)
        assert load_module.lacking(wh, journal, run.run_id, "another") == len(paid)
    assert journal.stat().st_size > 4 * 700  # several pieces
