"""Loading a replay without holding the night in memory: DuckDB reads the shards itself, and a
journal is read (a piece at a time) only when its shards lack some of its answers. Real fleet on
loopback, real DuckDB files."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import replaybench.replay.journal as journal_module
import replaybench.replay.load as load_module
import replaybench.replay.plan as plan_module
from replaybench.errors import ReplaybenchError
from replaybench.replay.files import journal_path
from replaybench.replay.journal import journal_rows
from replaybench.replay.load import load_replay
from replaybench.replay.plan import chunks, plan_replay
from replaybench.replay.send import send_plan
from replaybench.warehouse import open_warehouse

from .test_replay_durability import candidate, sampled_run, served, stored


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
