"""Load: store what a send wrote — its Parquet shards, and any journal line they lack — in the
warehouse, a few thousand rows a transaction, and cache the fresh successful answers. Shards are
then deleted, and a journal only once the warehouse holds every answer in it. After a whole send
the shards hold every row; a journal holds more when its writer was killed or a shard was not
written, and those rows are taken from it. Loading twice stores each row once."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from replaybench.config import Candidate, Settings
from replaybench.replay import journal as journals_
from replaybench.replay.files import leftovers
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

if TYPE_CHECKING:
    from replaybench.replay.plan import ReplayPlan
    from replaybench.replay.send import Sent

log = logging.getLogger(__name__)

JOURNAL_PIECE = 4 << 20  # bytes of a journal read and parsed at a time (whole lines)
JOURNAL_CHECKED = 64 << 20  # bytes of a journal whose keys DuckDB checks at a time (`lacking`)
LOAD_ROWS = 20_000  # rows of shards stored per transaction
CACHE_COLUMNS = ["cache_key", "provider", "base_url", "model_sent", "params", "output_text",
                 "reasoning_text", "finish_reason", "input_tokens", "output_tokens",
                 "reasoning_tokens", "reasoning_estimated", "cached_tokens", "latency_ms",
                 "ttft_ms", "output_tps", "attempts", "simulated"]

# one plan or load at a time in a process: DuckDB connections of one process registering frames
# at once race in its catalog ("python_arrow_scan does not exist"), and two loads would race on
# the cache rows
warehouse_turn = threading.Lock()


@dataclass
class ReplayOutcome:
    """What one candidate's replay did in this run."""

    model: str
    requested: int
    ok: int
    failed: int
    from_cache: int = 0
    from_journal: int = 0
    senders: list[int] = field(default_factory=list)  # the processes that sent

    @property
    def dead(self) -> bool:
        """Every request failed: the endpoint is down, misconfigured, or refuses us."""
        return self.requested > 0 and self.ok == 0


def _store(wh: Warehouse, rows: pl.DataFrame, run_id: str) -> int:
    """Append replay rows the run lacks, and cache the fresh successful answers (no
    transaction); return rows added."""
    with wh.registered("_incoming", rows):
        added = wh.insert_new("replays", "_incoming", REPLAY_KEY, run_id)
        cache_answers(wh, "_incoming", run_id)
    return added


REPLAY_KEY = ("run_id", "request_id", "model")
"""What makes a row of `replays` unique (no index holds it: `Warehouse.insert_new`)."""

CACHE_UPDATED = ["output_text", "reasoning_text", "input_tokens", "output_tokens",
                 "reasoning_tokens", "cached_tokens", "latency_ms", "ttft_ms", "paid_by_run"]
"""What a cached answer paid for again takes from the new answer (the rest is the same question)."""


def cache_answers(wh: Warehouse, source: str, run_id: str,
                  params: dict[str, Any] | None = None) -> None:
    """Merge the fresh successful answers among `source`'s replay rows into `response_cache`, one
    per cache key: a new key is inserted, a known one updated (`CACHE_UPDATED`). A hash join of
    the rows against the cache: the cache has no key index (migration 014), as DuckDB would load
    all of it, for every load, into memory it cannot evict."""
    cached = ", ".join(f'"{c}"' for c in CACHE_COLUMNS)
    updated = ", ".join(f'"{c}" = fresh."{c}"' for c in CACHE_UPDATED)
    wh.execute(
        f"MERGE INTO response_cache AS held USING ("
        f"SELECT {cached}, $run_id AS paid_by_run FROM {source} "
        f"WHERE status = 'ok' AND NOT from_cache "
        f"QUALIFY row_number() OVER (PARTITION BY cache_key) = 1) AS fresh "
        f"ON held.cache_key = fresh.cache_key "
        f"WHEN MATCHED THEN UPDATE SET {updated} "
        f"WHEN NOT MATCHED THEN INSERT ({cached}, paid_by_run) "
        f"VALUES ({', '.join(f'fresh.{c}' for c in [*CACHE_COLUMNS, 'paid_by_run'])})",
        {**(params or {}), "run_id": run_id})


def load_files(wh: Warehouse, run_id: str, model: str, journals: list[Path],
               shards: list[Path]) -> int:
    """Store what one candidate's (`model`'s) shards and journals hold in the run (each row
    once); return rows added. DuckDB reads the
    shards itself, `LOAD_ROWS` rows a transaction (a transaction holds its rows in memory until
    it commits), and each shard is deleted once stored; then it reads only the keys of each
    journal, to find the answers the warehouse still lacks. Only a journal with such answers
    (or one DuckDB cannot read: a line cut short) is parsed here, a piece at a time."""
    before = replay_count(wh)
    store_shard_files(wh, run_id, shards)
    missing: dict[Path, int] = {}
    for path in journals:
        if lacking(wh, path, run_id, model) != 0:
            missing[path] = wh.atomic(lambda path=path: store_journal(wh, run_id, path))
    added = replay_count(wh) - before
    for path in journals:
        if missing.get(path):
            log.warning("kept %s: the warehouse lacks %d of its answers", path, missing[path])
        else:
            path.unlink(missing_ok=True)
    return added


def by_rows(shards: list[Path], rows: int) -> Iterator[list[Path]]:
    """The shards in runs of about `rows` rows (from each file's footer)."""
    batch: list[Path] = []
    held = 0
    for shard in shards:
        batch.append(shard)
        held += pq.read_metadata(shard).num_rows
        if held >= rows:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def replay_count(wh: Warehouse) -> int:
    """Rows in `replays`, every run's."""
    return wh.execute("SELECT count(*) FROM replays").fetchone()[0]


def lacking(wh: Warehouse, journal: Path, run_id: str, model: str) -> int | None:
    """How many of a journal's answers (the run's, of the candidate `model`) `replays` lacks:
    DuckDB reads only their keys. None when DuckDB cannot read the journal (a line cut short by
    a killed writer, a line past its object size): parse it to know.

    Asked once the shards are stored, against the run's rows of that candidate (a line of
    another run or candidate counts as lacking, and is stored by its own key), and in pieces by
    the hash of the request id, one per `JOURNAL_CHECKED` bytes of the journal: the anti-join
    holds a piece's keys, not the night's (at once, or against the shards too, it ran out of
    128 MB in a 300k night's load)."""
    pieces = max(1, math.ceil(journal.stat().st_size / JOURNAL_CHECKED))
    try:
        return sum(wh.execute(
            "SELECT count(*) FROM read_json($journal, format = 'newline_delimited', columns = "
            "{run_id: 'VARCHAR', request_id: 'VARCHAR', model: 'VARCHAR'}) AS j "
            "WHERE hash(j.request_id) % $pieces = $piece AND NOT EXISTS ("
            "SELECT 1 FROM replays AS r WHERE r.run_id = $run_id AND r.model = $model "
            "AND hash(r.request_id) % $pieces = $piece AND r.request_id = j.request_id "
            "AND j.run_id = $run_id AND j.model = $model)",
            {"journal": str(journal), "run_id": run_id, "model": model, "pieces": pieces,
             "piece": piece}).fetchone()[0] for piece in range(pieces))
    except duckdb.Error:
        return None


def store_shard_files(wh: Warehouse, run_id: str, shards: list[Path]) -> None:
    """Store shards `LOAD_ROWS` rows a transaction (run again under a grown memory limit if it
    runs out), each shard deleted once its rows are stored."""
    for batch in by_rows(shards, LOAD_ROWS):
        wh.atomic(lambda batch=batch: store_shards(wh, run_id, batch))
        for shard in batch:
            shard.unlink(missing_ok=True)


def store_shards(wh: Warehouse, run_id: str, shards: list[Path]) -> None:
    """Append the shards' rows, and cache their fresh successful answers (no transaction)."""
    files = {"files": [str(s) for s in shards]}
    source = "read_parquet($files, union_by_name = true)"
    wh.insert_new("replays", source, REPLAY_KEY, run_id, files)
    cache_answers(wh, source, run_id, files)


def store_journal(wh: Warehouse, run_id: str, journal: Path) -> int:
    """Append the journal's rows the warehouse lacks, a piece at a time (no transaction); return
    how many it still lacks."""
    missing = 0
    with journal.open("rb") as fh:
        rest = b""
        while True:
            data = fh.read(JOURNAL_PIECE)
            whole = rest + data
            cut = len(whole) if not data else whole.rfind(b"\n") + 1
            piece, rest = whole[:cut], whole[cut:]  # a line being cut is read with the next piece
            if rows := journals_.journal_rows(piece):
                _store(wh, pl.DataFrame(rows, infer_schema_length=None), run_id)
                missing += unstored(wh, run_id, rows)
            if not data:
                return missing


def unstored(wh: Warehouse, run_id: str, rows: list[dict[str, Any]]) -> int:
    """How many of these journal rows have no row in `replays` (by run, request and model)."""
    if not rows:
        return 0
    keys = pl.DataFrame({"request_id": [r.get("request_id") for r in rows],
                         "model": [r.get("model") for r in rows]},
                        schema={"request_id": pl.String, "model": pl.String})
    with wh.registered("_journaled", keys):
        return wh.execute("SELECT count(*) FROM _journaled AS j WHERE NOT EXISTS ("
                          "SELECT 1 FROM replays AS r WHERE r.run_id = $run_id "
                          "AND r.request_id = j.request_id AND r.model = j.model)",
                          {"run_id": run_id}).fetchone()[0]


def load_replay(settings: Settings, run: Run, candidate: Candidate, plan: ReplayPlan,
                sent: list[Sent]) -> ReplayOutcome:
    """In the warehouse, briefly: store the shards the sending wrote (and any journal row they
    lack); each journal is deleted once the warehouse holds its answers."""
    with warehouse_turn, open_warehouse(settings.warehouse) as wh:
        load_files(wh, run.run_id, candidate.name, *leftovers(settings, run, candidate))
    plan.discard()
    ok = sum(s.ok for s in sent) + plan.recovered + plan.reused
    failed = sum(s.failed for s in sent)
    return ReplayOutcome(candidate.name, plan.requested, ok, failed,
                         from_cache=plan.reused + sum(s.reused for s in sent),
                         from_journal=plan.recovered, senders=sorted({s.pid for s in sent}))
