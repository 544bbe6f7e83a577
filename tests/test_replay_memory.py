"""Loading a replay without holding the night in memory: DuckDB reads the shards itself, and a
journal is read (a piece at a time) only when its shards lack some of its answers. Real fleet on
loopback, real DuckDB files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import tasks.replay as replay
from replaybench.warehouse import open_warehouse
from tasks.replay import journal_path, journal_rows, load_replay, plan_replay, send_plan

from .test_replay_durability import candidate, sampled_run, stored


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
    monkeypatch.setattr(replay, "JOURNAL_PIECE", 333)  # shorter than a line: pieces join lines

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

    monkeypatch.setattr(replay, "journal_rows", refuse)
    load_replay(settings, run, glm, plan, [sent])

    assert stored(settings) == {"glm-5.2": (sampled, sampled)}
    assert not journal.exists()
