"""The replay's client on aiohttp (issue 15): what the faster paths must keep exactly as it was.
JSON read and written by orjson where it gives what json gives, SSE payloads split by hand, the
answers of other runs read after a question's lock is taken, no redirect followed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os

import pytest
from aiohttp import web

from replaybench.config import Candidate
from replaybench.fastjson import loads
from replaybench.providers.base import SSEData
from replaybench.replay.journal import journal_line, journal_rows
from replaybench.replay.shared import KnownAnswers
from tests.test_providers import ask
from tests.test_providers_robustness import MESSAGES, Scripted, scripted  # noqa: F401

# --- JSON: the same values as json, whichever library read or wrote them -----------------------

READ = [
    b'{"a": 1, "b": [true, false, null], "c": "\\u00e9\\n", "d": -0.0}',
    b'{"n": 123456789012345678901234567890}',          # past 64 bits: orjson would round it
    b'[-18446744073709551616, 18446744073709551615, 9223372036854775807]',
    b'{"a":\n18446744073709551616}',
    b'{"cost": 0.00012345678901234567, "t": 101.23456789012345, "e": 1.5e-05}',
    b'[1e400, -1e400, NaN, Infinity]',                 # json reads them; orjson refuses
    b'"\\ud800"',                                      # a lone surrogate: the same
    b'{"a": 1, "a": 2}',
    b'12345678901234567890.5',
    b'"\xc3\xa9"',
]
UNREADABLE = [b'{"a": 1', b"{}x", b"[1,]", b"\xff", b"", b"[" * 100_000 + b"]" * 100_000]


@pytest.mark.parametrize("raw", READ)
def test_loads_reads_what_json_reads(raw):
    expected, got = json.loads(raw), loads(raw)
    assert repr(got) == repr(expected)  # repr: NaN equals itself, 1 is not True


@pytest.mark.parametrize("raw", UNREADABLE)
def test_loads_refuses_what_json_refuses(raw):
    with pytest.raises((ValueError, RecursionError)):
        json.loads(raw)
    with pytest.raises((ValueError, RecursionError)):
        loads(raw)


ROWS = [
    {"status": "ok", "output_text": "façade ☃ 😀", "latency_ms": 101.23456789012345,
     "cost_usd": 0.00012345678901234567, "input_tokens": 12, "from_cache": False, "error": None},
    {"status": "ok", "output_tokens": 2**70, "latency_ms": 1.0},   # orjson refuses the integer
    {"status": "ok", "output_text": "\ud800 lone", "latency_ms": 2.5},  # and the surrogate
    {"status": "ok", "output_tps": float("nan"), "cost_usd": float("inf")},  # it would write null
]


@pytest.mark.parametrize("row", ROWS)
def test_a_journal_line_reads_back_as_the_row_it_was(row):
    line = journal_line(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    [back] = journal_rows(line)
    assert repr(back) == repr(row)
    assert repr(back) == repr(json.loads(line))  # any json reader reads the same


def test_a_line_cut_short_is_skipped_and_the_next_one_read():
    first, second = journal_line(ROWS[0]), journal_line(ROWS[1])
    rows = journal_rows(first[:-20] + b"\n" + second)
    assert [r.get("output_tokens") for r in rows] == [2**70]


# --- SSE: payloads split by hand, wherever the reads cut the stream ----------------------------

class Chunks:
    """An httpx-like response whose raw body arrives in the given pieces."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces

    def aiter_raw(self):
        async def gen():
            for piece in self.pieces:
                yield piece
        return gen()


def payloads(pieces: list[bytes], max_bytes: int = 1 << 20, stop_at: float = math.inf):
    async def read():
        return [p async for _, p in SSEData(Chunks(pieces), max_bytes, stop_at, 1.0)]
    return asyncio.run(read())


STREAM = (b'data: {"a": 1}\n\n: a comment\nevent: x\ndata:{"b": 2}\r\n\r\n'
          b'data: [DONE]\n\n')


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, len(STREAM)])
def test_sse_payloads_are_the_same_however_the_reads_cut_the_stream(size):
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert payloads(pieces) == [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]


def test_a_last_line_without_its_newline_is_still_a_payload():
    assert payloads([b"data: 1\n\ndata: 2"]) == [b"1", b"2"]


def test_a_stream_past_its_byte_cap_is_a_bad_response():
    from replaybench.providers.base import Failure

    with pytest.raises(Failure, match="larger than 10 bytes"):
        payloads([b"data: 12345\n\n", b"data: 67890\n\n"], max_bytes=10)
    with pytest.raises(Failure, match="stream longer than 1 s"):
        payloads([b"data: 1\n\n"], stop_at=0.0)


# --- another run's answer is read after the question's lock is taken ----------------------------

def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_an_answer_journaled_just_before_the_lock_is_taken_is_found(tmp_path):
    """Another process asks K, journals its answer and lets go of K's lock between this
    process's last look at the journals and its taking of the lock: the answer must be found,
    or K is paid for twice."""
    folder = tmp_path / "wh.journal"
    folder.mkdir()
    own = folder / "run1--cand-0123456789.jsonl"
    own.touch()
    other = folder / "run2--cand-0123456789.jsonl"
    other.touch()
    known = KnownAnswers(folder, own, "cand-0123456789")
    key = key_of("the question")
    assert known.get(key) is None  # the last look: nothing yet

    with other.open("ab") as fh:  # the other process answers and journals it
        fh.write(journal_line({"status": "ok", "cache_key": key, "output_text": "billing",
                               "attempts": 1}))

    async def take() -> object:
        found = await known.ask(key)
        known.done(key)
        return found

    found = asyncio.run(take())
    assert found is not None and found.output_text == "billing"


def test_a_journal_made_in_the_same_clock_tick_as_the_last_listing_is_seen(tmp_path):
    folder = tmp_path / "wh.journal"
    folder.mkdir()
    own = folder / "run1--cand-0123456789.jsonl"
    own.touch()
    known = KnownAnswers(folder, own, "cand-0123456789")
    known.refresh()
    listed = os.stat(folder).st_mtime_ns
    other = folder / "run2--cand-0123456789.jsonl"
    key = key_of("asked elsewhere")
    other.write_bytes(journal_line({"status": "ok", "cache_key": key, "output_text": "x"}))
    os.utime(folder, ns=(listed, listed))  # as if the folder's time had not moved on
    assert known.get(key) is not None


# --- no redirect is followed ---------------------------------------------------------------------

def test_a_redirect_is_not_followed(scripted):  # noqa: F811
    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": scripted.base_url + "/messages"})

    model = scripted.script(elsewhere)
    candidate = Candidate(name=model, base_url=scripted.base_url, model=model, stream=False,
                          retry={"max_attempts": 1})
    answer = ask(candidate, MESSAGES)
    assert answer.status == "error" and answer.error_kind == "bad_response"
    assert scripted.served[model] == 1  # the 307's target was never asked
