"""The replay step when things break around it (issue 12): a full disk under the shards, one
request or one candidate failing while others are in flight, and candidate names that look like
paths or patterns. Real fleet on loopback, real DuckDB files, a real tmpfs for the full disk."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import httpx
import pytest
from prefect import flow

from flows.replay import replay_all
from replaybench import progress, runs
from replaybench.config import Settings, load_settings
from replaybench.errors import ConfigError, ReplaybenchError
from replaybench.ingest import ingest_paths
from replaybench.pricing import PriceTable
from replaybench.replay import replay_candidate
from replaybench.replay.files import file_stem, journal_path, shard_folder
from replaybench.replay.journal import ReplayWriter, RowMaker, journal_rows
from replaybench.replay.load import load_replay
from replaybench.replay.plan import plan_replay
from replaybench.replay.send import send_all, send_plan
from replaybench.sample import draw_sample
from replaybench.sim.server import ThreadedFleet
from replaybench.warehouse import open_warehouse

from .conftest import write_config

RUN_DATE = date(2026, 11, 28)
FAST_RETRY = {"max_attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}


def served(fleet) -> dict:
    """Per model sent: full answers the fleet delivered, by request key."""
    root = fleet.base_url.removesuffix("/v1")
    models = httpx.get(f"{root}/_sim/stats?detail=1").json()["models"]
    return {m: v["completed_by_key"] for m, v in models.items()}


def candidate(fleet, name: str, model: str = "glm-5.2", **over) -> dict:
    return {"name": name, "base_url": fleet.base_url, "model": model, "max_concurrency": 8,
            "timeout_s": 5.0, "retry": FAST_RETRY, **over}


def sampled_run(folder: Path, demo_slice: Path, fleet, candidates: list[dict],
                per_prompt_version: int) -> tuple[Settings, runs.Run, int]:
    """A warehouse in `folder` with the demo slice ingested and a run's sample drawn; the
    requests go to the fleet as logged (no redaction)."""
    config = write_config(folder, fleet.base_url, candidates=candidates,
                          redact={"enabled": "never"},
                          sample={"per_prompt_version": per_prompt_version, "seed": 7})
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, RUN_DATE, "nightly")
        sampled = sum(draw_sample(wh, settings, run).values())
    return settings, run, sampled


def stored(settings: Settings) -> dict[str, tuple[int, int]]:
    """Per candidate: (rows, distinct requests) in `replays`."""
    with open_warehouse(settings.warehouse) as wh:
        rows = wh.execute("SELECT model, count(*), count(DISTINCT request_id) FROM replays "
                          "GROUP BY 1").fetchall()
    return {model: (n, distinct) for model, n, distinct in rows}


# --- A: a shard that cannot be written loses no answer -------------------------------------

@pytest.fixture
def small_disk():
    """Mounts a tmpfs of a given size on a folder (and resizes it); unmounted afterwards. Needs
    root (or CAP_SYS_ADMIN): skipped where mounting is refused."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> None:
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command here")
        folder.mkdir(parents=True, exist_ok=True)
        options = f"remount,size={size}" if folder in mounted else f"size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        if folder not in mounted:
            mounted.append(folder)

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_under_the_shards_loses_no_answer_and_the_next_attempt_pays_nothing_twice(
        tmp_path, demo_slice, small_disk):
    with ThreadedFleet(time_scale=0) as fleet:
        settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                             [candidate(fleet, "glm-5.2")], 40)
        glm = settings.candidates[0]
        assert sampled > 200  # more than one batch: the first is flushed while answers arrive
        small_disk(shard_folder(settings), "28k")  # too small for 200 answers (~33 KB), or all
        with pytest.raises(ReplaybenchError, match="could not be written"):
            asyncio.run(replay_candidate(settings, run, glm))
        journal = journal_path(settings, run, glm)
        assert journal.exists(), "the journal holding the paid answers was deleted"
        paid = served(fleet)["glm-5.2"]
        assert len(journal_rows(journal.read_bytes())) == len(paid)  # every answer paid for
        assert list(shard_folder(settings).iterdir()) == []  # no half-written shard left

        small_disk(shard_folder(settings), "16m")  # space freed: the run is resumed
        outcome = asyncio.run(replay_candidate(settings, run, glm))
        assert served(fleet)["glm-5.2"] == paid  # nothing asked again

    # every request answered once; a question asked twice in the sample was paid for once
    assert outcome.from_journal == len(paid) and outcome.ok == sampled
    assert stored(settings) == {"glm-5.2": (sampled, sampled)}
    assert set(paid.values()) == {1}
    assert not journal.exists() and list(shard_folder(settings).iterdir()) == []


def test_a_shard_write_that_fails_once_loses_no_answer(tmp_path, demo_slice, small_disk):
    """The disk under the shards is full when the first batch is written and has room again
    (another process freed space) before the next: no answer is dropped with the first batch,
    and no journal is deleted while the warehouse lacks answers it holds."""
    with ThreadedFleet(time_scale=0, fixed_latency_ms=20) as fleet:
        settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                             [candidate(fleet, "glm-5.2")], 70)
        glm = settings.candidates[0]
        assert sampled > 2 * 200  # the first batch of 200 fails; later ones could succeed
        small_disk(shard_folder(settings), "28k")  # too small for 200 answers (~33 KB)

        async def first_attempt() -> None:
            async def free_space_after_the_first_batch() -> None:
                while sum(served(fleet).get("glm-5.2", {}).values()) < 300:
                    await asyncio.sleep(0.005)
                small_disk(shard_folder(settings), "16m")

            freeing = asyncio.ensure_future(free_space_after_the_first_batch())
            try:
                await replay_candidate(settings, run, glm)
            except ReplaybenchError:
                pass  # the last write failed too: the journal holds every answer
            finally:
                freeing.cancel()

        asyncio.run(first_attempt())
        journal = journal_path(settings, run, glm)
        kept = {r["cache_key"] for r in journal_rows(journal.read_bytes())} if journal.exists() \
            else set()
        with open_warehouse(settings.warehouse) as wh:
            kept |= {r[0] for r in wh.execute("SELECT cache_key FROM replays "
                                              "WHERE NOT from_cache").fetchall()}
        assert len(kept) == len(served(fleet)["glm-5.2"]), "answers paid for were lost"
        small_disk(shard_folder(settings), "16m")
        asyncio.run(replay_candidate(settings, run, glm))
        paid = served(fleet)["glm-5.2"]

    assert stored(settings) == {"glm-5.2": (sampled, sampled)}
    assert set(paid.values()) == {1}  # nothing asked twice
    assert not journal.exists()


def test_a_journal_stays_until_the_warehouse_holds_every_answer_in_it(tmp_path, demo_slice, fleet):
    """The shards lack answers the journal holds (a shard write failed unseen, e.g. on a worker):
    the load takes them from the journal before deleting it."""
    settings, run, sampled = sampled_run(tmp_path, demo_slice, fleet,
                                         [candidate(fleet, "glm-5.2")], 40)
    glm = settings.candidates[0]
    plan = plan_replay(settings, run, glm)
    sent = asyncio.run(send_plan(plan))
    journal = journal_path(settings, run, glm)
    paid = {r["request_id"] for r in journal_rows(journal.read_bytes())}
    Path(sent.shards[0]).unlink()

    load_replay(settings, run, glm, plan, [sent])

    with open_warehouse(settings.warehouse) as wh:
        have = {r[0] for r in wh.execute("SELECT request_id FROM replays").fetchall()}
    assert paid <= have  # every answer paid for (a twin reused from it is rebuilt below)
    assert not journal.exists()
    asked = served(fleet).get("glm-5.2", {})
    again = asyncio.run(replay_candidate(settings, run, glm))
    assert served(fleet).get("glm-5.2", {}) == asked and again.from_cache == sampled - len(have)
    assert stored(settings) == {"glm-5.2": (sampled, sampled)}


# --- B: a failure cancels the others, which end before the client and journal close ---------

class DiskFullAfter(ReplayWriter):
    """A real writer whose disk fills at the `n`th answer; counts answers handed to it after
    it was closed."""

    def __init__(self, *args, n: int):
        super().__init__(*args)
        self.n, self.added, self.after_close, self.closed = n, 0, 0, False

    def add(self, request, answer, from_cache=False) -> None:
        self.after_close += self.closed
        self.added += 1
        if self.added == self.n:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().add(request, answer, from_cache)

    async def close(self) -> None:
        self.closed = True
        await super().close()


def asking(tasks) -> list[asyncio.Task]:
    """The tasks still asking an endpoint (the per-request tasks of `send_all`)."""
    return [t for t in tasks
            if not t.done() and "send_all" in getattr(t.get_coro(), "__qualname__", "")]


def test_a_failing_request_cancels_the_others_before_the_client_and_journal_close(
        tmp_path, demo_slice):
    with ThreadedFleet(time_scale=0, fixed_latency_ms=100) as fleet:
        settings, run, sampled = sampled_run(
            tmp_path, demo_slice, fleet, [candidate(fleet, "glm-5.2", max_concurrency=4)], 5)
        glm = settings.candidates[0]
        plan = plan_replay(settings, run, glm)
        assert len(list(plan.groups())) > glm.max_concurrency  # some in flight, more waiting

        async def main() -> tuple[list[asyncio.Task], DiskFullAfter]:
            writer = DiskFullAfter(RowMaker(run, glm, PriceTable.load(settings.prices)),
                                   journal_path(settings, run, glm), shard_folder(settings),
                                   progress.phase("test", plan.size), n=3)
            try:
                with pytest.raises(OSError, match="No space left"):
                    await send_all(glm, None, plan.groups(), writer)
                left = asking(asyncio.all_tasks())
            finally:
                await writer.close()
            await asyncio.sleep(0.3)  # an answer still arriving would be handed over now
            return left, writer

        left, writer = asyncio.run(main())

    assert left == [], f"{len(left)} requests still running after send_all raised"
    assert writer.after_close == 0
    journaled = journal_rows(journal_path(settings, run, glm).read_bytes())
    assert len(journaled) == writer.added - 1  # every answer taken before the failure, kept


def test_a_failing_candidate_stops_the_others_and_the_resumed_run_stores_every_answer_once(
        tmp_path, demo_slice, prefect_harness, monkeypatch):
    monkeypatch.delenv("RB_TEST_UNSET_KEY", raising=False)
    with ThreadedFleet(time_scale=0, fixed_latency_ms=100) as fleet:
        settings, run, sampled = sampled_run(
            tmp_path, demo_slice, fleet,
            [candidate(fleet, "minimax-m3", "minimax-m3", max_concurrency=4),
             candidate(fleet, "glm-5.2", api_key_env="RB_TEST_UNSET_KEY")], 5)

        @flow
        async def replay_only() -> list[asyncio.Task]:
            try:
                await replay_all(settings, run)
            except ConfigError:
                return asking(asyncio.all_tasks())
            raise AssertionError("the candidate without its key did not fail")

        left = asyncio.run(replay_only())
        assert left == [], f"{len(left)} requests of the other candidate still running"

        monkeypatch.setenv("RB_TEST_UNSET_KEY", "sk-test-set-now")
        asyncio.run(flow(replay_all)(settings, run))
        paid = served(fleet)

    assert stored(settings) == {"minimax-m3": (sampled, sampled), "glm-5.2": (sampled, sampled)}
    twice = sum(n - 1 for keys in paid.values() for n in keys.values())
    assert twice <= 4  # at most the requests in flight when the run stopped


# --- C: a candidate's name is a display name ------------------------------------------------

def test_file_stems_are_plain_file_names_and_never_shared():
    names = ["glm-5.2 [fp8]", "glm-5.2-fp8", "GLM-5.2-FP8", "a/b", "a_b", "../x", "..", ".",
             "x--1", "*", "?", "", "ü" * 60]
    stems = [file_stem(n) for n in names]
    assert len(set(stems)) == len(names)
    for stem in stems:
        assert stem == Path(stem).name and not stem.startswith(".")
        assert "--" not in stem and not set(stem) & set("*?[]/\\ ")


def test_names_with_brackets_slashes_and_dots_store_every_row_and_write_nowhere_else(
        tmp_path, demo_slice):
    home = tmp_path / "home"  # the warehouse's folder; `../` would lead to tmp_path
    home.mkdir()
    with ThreadedFleet(time_scale=0) as fleet:
        settings, run, sampled = sampled_run(
            home, demo_slice, fleet,
            [candidate(fleet, "glm-5.2 [fp8]"),
             candidate(fleet, "../evil/x", params={"seed": 987654})], 5)  # its own questions

        for c in settings.candidates:
            asyncio.run(replay_candidate(settings, run, c))
        first = served(fleet)["glm-5.2"]
        assert stored(settings) == {"glm-5.2 [fp8]": (sampled, sampled),
                                    "../evil/x": (sampled, sampled)}
        assert len(first) == 2 * sampled and set(first.values()) == {1}

        # as if the process died after journaling but before the load: the answers are in the
        # journals only (neither in `replays` nor in the response cache)
        with open_warehouse(settings.warehouse) as wh:
            for c in settings.candidates:
                rows = wh.frame("SELECT * EXCLUDE (created_at) FROM replays WHERE model = $m",
                                m=c.name).to_dicts()
                journal_path(settings, run, c).write_text(
                    "".join(json.dumps(r, default=str) + "\n" for r in rows))
            wh.execute("DELETE FROM replays")
            wh.execute("DELETE FROM response_cache")
        outcomes = [asyncio.run(replay_candidate(settings, run, c)) for c in settings.candidates]
        assert served(fleet)["glm-5.2"] == first  # nothing asked again

    assert [o.from_journal for o in outcomes] == [sampled, sampled]
    assert stored(settings) == {"glm-5.2 [fp8]": (sampled, sampled),
                                "../evil/x": (sampled, sampled)}
    everything = list(tmp_path.rglob("*")) + list(tmp_path.parent.glob("evil*"))
    assert not [p for p in everything if "evil" in p.name]
    for folder in (settings.warehouse.parent / "warehouse.duckdb.journal", shard_folder(settings)):
        assert all(p.is_file() for p in folder.iterdir())  # no subfolders
        assert not [p for p in folder.iterdir() if p.suffix in (".jsonl", ".parquet")]
