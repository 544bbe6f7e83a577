"""The warehouse within a memory limit: the tables a night fills hold no key index (DuckDB keeps
what a connection writes of one in memory, unevictable), each row still stored once; the
process's DuckDB limit from REPLAYBENCH_WAREHOUSE_MEMORY, doubled when a statement runs out of
it. Real DuckDB files."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import polars as pl
import pytest

from replaybench.errors import WarehouseError
from replaybench.warehouse import memory, migrations, open_warehouse


@pytest.fixture(autouse=True)
def fresh_limit():
    memory.reset()
    yield
    memory.reset()


def replay_row(run_id: str, request_id: str, model: str, text: str) -> dict:
    return {"run_id": run_id, "request_id": request_id, "model": model, "prompt_version": "p@v1",
            "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model_sent": model,
            "output_text": text, "status": "ok", "attempts": 1, "simulated": True}


def test_the_tables_a_night_fills_have_no_key_index(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        keyed = {r[0] for r in wh.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type IN "
            "('PRIMARY KEY', 'UNIQUE')")}
        indexed = {r[0] for r in wh.execute("SELECT table_name FROM duckdb_indexes()")}
    assert not {"replays", "checks", "response_cache", "samples", "redacted_requests",
                "decision_evidence"} & (keyed | indexed)
    assert "logs" in keyed  # still keyed: ingest has no write turn of its own to dedupe in


def test_insert_new_stores_each_key_of_the_run_once(tmp_path):
    """Rows already held, rows repeated within the batch, and another run's same keys."""
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        wh.insert("replays", pl.DataFrame([replay_row("r1", "a", "m", "first"),
                                           replay_row("r2", "b", "m", "other run")]))
        batch = pl.DataFrame([replay_row("r1", "a", "m", "again"),    # held: not stored
                              replay_row("r1", "b", "m", "new"),      # new, twice in the batch
                              replay_row("r1", "b", "m", "new"),
                              replay_row("r1", "b", "m2", "new too")])
        with wh.registered("_batch", batch):
            added = wh.insert_new("replays", "_batch", ("run_id", "request_id", "model"), "r1")
            again = wh.insert_new("replays", "_batch", ("run_id", "request_id", "model"), "r1")
        rows = wh.execute("SELECT run_id, request_id, model, output_text FROM replays "
                          "ORDER BY ALL").fetchall()
    assert (added, again) == (2, 0)
    assert rows == [("r1", "a", "m", "first"), ("r1", "b", "m", "new"), ("r1", "b", "m2", "new too"),
                    ("r2", "b", "m", "other run")]


def columns_of(con, tables: tuple[str, ...]) -> list[tuple]:
    return con.execute(
        "SELECT table_name, column_name, column_default, is_nullable, data_type "
        "FROM information_schema.columns WHERE list_contains($t, table_name) "
        "ORDER BY table_name, ordinal_position", {"t": list(tables)}).fetchall()


def warehouse_before(path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """A warehouse file migrated up to (not including) `version`."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT now())")
    for number, name, text in migrations():
        if number < version:
            con.execute(text)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [number, name])
    return con


REBUILT = {
    14: ("replays", "checks", "response_cache"),
    15: ("samples", "redacted_requests", "decision_evidence"),
}
ROWS = {
    14: ["INSERT INTO replays (run_id, request_id, model, prompt_version, provider, base_url, "
         "model_sent, status, attempts, simulated) VALUES "
         "('r1', 'a', 'm', 'p@v1', 'openai', 'u', 'm', 'ok', 1, true)",
         "INSERT INTO checks VALUES ('r1', 'a', 'm', 'p@v1', 'answered', true, NULL)",
         "INSERT INTO response_cache (cache_key, provider, base_url, model_sent, output_text, "
         "paid_by_run) VALUES ('k', 'openai', 'u', 'm', 'an answer', 'r1')"],
    15: ["INSERT INTO samples VALUES ('r1', 'a', 'p@v1'), ('r1', 'b', 'p@v1')",
         "INSERT INTO redacted_requests VALUES ('r1', 'a', '[]', '{}', NULL), "
         "('r1', 'b', '[{\"role\": \"user\"}]', '{\"EMAIL\": 1}', '{}')",
         "INSERT INTO decision_evidence VALUES ('d1', 'a', 'r1', true, false, false, true, "
         "0.001, NULL)"],
}
KEYS = {"run_id", "request_id", "model", "check", "cache_key", "decision_id"}


@pytest.mark.parametrize("version", sorted(REBUILT))
def test_a_migration_that_drops_keys_keeps_every_row_and_default(tmp_path, version):
    """A warehouse from before the migration (the tables keyed) keeps its rows, column order,
    types and defaults when the tables are built again without the key; the key's columns stay
    NOT NULL."""
    path, tables = tmp_path / "old.duckdb", REBUILT[version]
    con = warehouse_before(path, version)
    for statement in ROWS[version]:
        con.execute(statement)
    columns = columns_of(con, tables)
    before = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    con.close()

    with open_warehouse(path) as wh:
        assert wh.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] >= version
        after = {t: wh.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
        columns_after = columns_of(wh.con, tables)
        for view in ("answers", "redaction_audit"):  # the views over them still bind
            wh.execute(f"SELECT * FROM {view} LIMIT 0")
        keyed = {r[0] for r in wh.execute("SELECT table_name FROM duckdb_constraints() WHERE "
                                          "constraint_type IN ('PRIMARY KEY', 'UNIQUE')")}
    assert all(before[t] for t in tables) and after == before
    assert not keyed & set(tables)

    def shape(c):  # a key's column was NOT NULL by being the key, and says so now
        return c if c[1] not in KEYS else (c[0], c[1], c[2], c[4])

    assert [shape(c) for c in columns_after] == [shape(c) for c in columns]
    assert {c[1] for c in columns_after if c[3] == "NO"} >= KEYS & {c[1] for c in columns}


def setting(wh, name: str) -> str:
    return wh.execute(f"SELECT current_setting('{name}')").fetchone()[0]


def test_the_limit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(memory.VARIABLE, "96MiB")
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert setting(wh, "memory_limit") == "96.0 MiB"
    monkeypatch.setenv(memory.VARIABLE, "0")  # DuckDB's own default: 80 % of the RAM
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert setting(wh, "memory_limit") == default
    monkeypatch.setenv(memory.VARIABLE, "a lot")
    refused = "REPLAYBENCH_WAREHOUSE_MEMORY='a lot' is not an amount of memory"
    with pytest.raises(WarehouseError, match=refused), open_warehouse(tmp_path / "w.duckdb"):
        pass


LISTS = ("SELECT sum(len(l)) FROM (SELECT list(i) AS l FROM range(2000000) AS t(i) "
         "GROUP BY i % 10)")
"""A query DuckDB cannot spill (its lists are held whole): needs about 64 MB."""


def lists_into(wh) -> None:
    """Write what LISTS counts, in the caller's transaction."""
    wh.execute(f"CREATE TABLE counted AS {LISTS}")


def test_work_that_outgrows_the_limit_runs_again_under_a_doubled_one(tmp_path, monkeypatch,
                                                                     caplog):
    """The work is undone, the limit doubled (until it fits) and the work run again, once
    whole; later connections of the process get the grown limit."""
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    with (caplog.at_level(logging.WARNING, logger="replaybench.warehouse.memory"),
          open_warehouse(tmp_path / "w.duckdb") as wh):
        wh.atomic(lambda: lists_into(wh))
        assert wh.execute("SELECT * FROM counted").fetchall() == [(2_000_000,)]
    assert memory.limit() >= 63_000_000  # 8 → 16 → 32 → 64 MB (less the index room)
    assert "ran out of its memory limit (REPLAYBENCH_WAREHOUSE_MEMORY=8MB)" in caplog.text
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute(LISTS).fetchone() == (2_000_000,)  # no need to grow again
    assert caplog.text.count("ran out of its memory limit") == 3  # 8 → 16 → 32 → 64 MB


def test_a_statement_outside_a_transaction_runs_again_too(tmp_path, monkeypatch):
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.execute(LISTS).fetchone() == (2_000_000,)
        assert wh.frame(LISTS).item() == 2_000_000


def test_a_result_that_ran_out_while_read_is_given_up_before_the_statement_runs_again(
        tmp_path, monkeypatch):
    """A frame that runs out of memory part way through being read (a 300,000-request night's
    outcomes did) leaves its result unfinished on the connection, which refuses any other
    statement until it is given up: the statement runs again all the same."""
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    attempts = []

    def frame_once_cut_short():
        attempts.append(1)
        if len(attempts) == 1:  # a result being read, held by the error its reading raised
            reader = wh.con.sql("SELECT * FROM range(10000000)").to_arrow_reader(1000)
            next(iter(reader))
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to pin block")
        return wh.con.sql("SELECT 42 AS answer").pl()

    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert wh._with_room(frame_once_cut_short).item() == 42
    assert len(attempts) == 2


def test_a_limit_that_cannot_grow_fails_with_duckdbs_error(tmp_path, monkeypatch):
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    monkeypatch.setattr(memory, "ceiling", lambda: 8_000_000)
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(duckdb.OutOfMemoryException):
            wh.atomic(lambda: lists_into(wh))
        assert not wh.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'counted'")


def test_the_key_indexes_get_room_beyond_the_limit(tmp_path, monkeypatch):
    """What DuckDB cannot evict is not squeezed into the amount asked for: a warehouse whose
    keyed tables hold 300,000 rows gets KEY_BYTES for each on top of it."""
    monkeypatch.setenv(memory.VARIABLE, "64MiB")
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as wh:
        empty = wh.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        wh.execute("INSERT INTO traffic_mix SELECT 'r' || i, 'p@v1', 1, 0.5 "
                   "FROM range(300000) AS t(i)")
    with open_warehouse(path) as wh:
        grown = wh.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        room = memory.index_room(wh.con)
    assert empty.startswith("64.")  # the other keyed tables are empty or all but
    assert room >= 300_000 * memory.KEY_BYTES
    assert float(grown.split()[0]) * 2**20 >= 64 * 2**20 + room * 0.95


def test_the_logs_index_gets_room_only_while_ingest_writes_it(tmp_path, monkeypatch, demo_slice):
    """The logs grow with every night the warehouse keeps, and only ingest writes them: the other
    steps' limit does not grow with them; ingest's has room for all of their key index."""
    from replaybench.ingest import load as ingest_load

    monkeypatch.setenv(memory.VARIABLE, "64MiB")
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as wh:
        wh.execute("INSERT INTO logs (request_id, ts, prompt_version, messages, status, "
                   "source_format) SELECT md5(i::VARCHAR), now(), 'p@v1', '[]', 'ok', 'openai' "
                   "FROM range(400000) AS t(i)")
    with open_warehouse(path) as wh:
        step = mib(wh)
        logs_room = memory.index_room(wh.con, memory.WRITTEN_BY_INGEST) / 2**20
    assert logs_room >= 400_000 * memory.KEY_BYTES / 2**20
    assert step < 64 + 2  # another step: what is asked for, and the few small keyed tables

    monkeypatch.setattr(memory, "KEY_BYTES", 4096)  # room past ingest's own streaming floor
    seen = limits_while_ingest_reads(monkeypatch, path, demo_slice)
    # above ingest's own floor (1 GB); DuckDB shows a limit to two digits (1.5 GiB)
    assert seen and min(seen) >= (64 + logs_room * 4096 / 128) * 0.9 > ingest_load.MEMORY_LIMIT / 2**20
    with open_warehouse(path) as wh:
        assert mib(wh) < 64 + 2


def test_running_out_while_ingest_has_room_grows_only_the_amount_asked_for(tmp_path, monkeypatch):
    """What ingest is given for the logs' index (`writing`) is not what the process's later
    connections get when a statement runs out inside it: the amount asked for is doubled, not
    the room held."""
    monkeypatch.setenv(memory.VARIABLE, "0")  # the logs written with room to spare
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as wh:
        wh.execute("INSERT INTO logs (request_id, ts, prompt_version, messages, status, "
                   "source_format) SELECT md5(i::VARCHAR), now(), 'p@v1', '[]', 'ok', 'openai' "
                   "FROM range(100000) AS t(i)")
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    with open_warehouse(path) as wh, memory.writing(wh.con, wh.path, memory.WRITTEN_BY_INGEST):
        held = mib(wh)
        assert held > 8 + 10  # the logs' room
        assert wh.execute(LISTS).fetchone() == (2_000_000,)  # ran out, grew until it fit
        grown = mib(wh)
    assert grown > held and memory.limit() < grown * 2**20 / 2
    assert memory.limit() in (16_000_000, 32_000_000, 64_000_000)  # 8 MB doubled, no room kept
    with open_warehouse(path) as wh:
        assert mib(wh) < grown


def test_the_spill_folder_is_beside_the_warehouse(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        assert Path(setting(wh, "temp_directory")) == tmp_path / "w.duckdb.tmp"


def mib(wh) -> float:
    text = wh.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    return memory.parse(text.replace(" ", "")) / 2**20


def limits_while_ingest_reads(monkeypatch, path: Path, logs: Path) -> list[float]:
    """The limits (MiB) DuckDB had while ingest's streaming read of `logs` ran (it ingests)."""
    from replaybench.ingest import load as ingest_load

    seen = []
    real = ingest_load._follow

    def follow(wh, phase):
        seen.append(mib(wh))
        return real(wh, phase)

    monkeypatch.setattr(ingest_load, "_follow", follow)
    assert ingest_load.ingest_paths(path, [logs]).ingested > 0
    return seen


def test_ingest_reads_under_its_own_room(tmp_path, monkeypatch, demo_slice):
    """Ingest's streaming read runs under at least its own MEMORY_LIMIT whatever the process's
    limit (giving it back is `test_no_connection_lowers_the_limit_another_works_under`'s)."""
    from replaybench.ingest import load as ingest_load

    monkeypatch.setenv(memory.VARIABLE, "64MiB")
    seen = limits_while_ingest_reads(monkeypatch, tmp_path / "w.duckdb", demo_slice)
    assert seen and all(s == pytest.approx(ingest_load.MEMORY_LIMIT / 2**20, rel=0.01) for s in seen)


def test_paid_answers_merge_into_the_cache_once_per_key(tmp_path):
    """A new key is inserted, a known one takes the new answer and payer (keeping when it was
    first cached), a key twice in the batch is cached once, and answers not paid for (errors,
    answers taken from the cache) are not cached."""
    from replaybench.replay.load import CACHE_COLUMNS, cache_answers

    def answer(key: str, text: str, status: str = "ok", from_cache: bool = False) -> dict:
        row = {c: None for c in CACHE_COLUMNS}
        return {**row, "cache_key": key, "provider": "openai", "base_url": "u", "model_sent": "m",
                "output_text": text, "status": status, "from_cache": from_cache}

    schema = {c: pl.String for c in ["cache_key", "provider", "base_url", "model_sent", "params",
                                     "output_text", "reasoning_text", "finish_reason", "status"]}
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        first = pl.DataFrame([answer("k1", "old")], schema_overrides=schema)
        with wh.registered("_rows", first):
            cache_answers(wh, "_rows", "r1")
        created = wh.execute("SELECT created_at FROM response_cache").fetchone()[0]
        batch = pl.DataFrame([answer("k1", "new"), answer("k2", "two"), answer("k2", "two"),
                              answer("k3", "failed", status="error"),
                              answer("k4", "reused", from_cache=True)], schema_overrides=schema)
        with wh.registered("_rows", batch):
            cache_answers(wh, "_rows", "r2")
        rows = wh.execute("SELECT cache_key, output_text, paid_by_run FROM response_cache "
                          "ORDER BY 1").fetchall()
        kept = wh.execute("SELECT created_at FROM response_cache WHERE cache_key = 'k1'").fetchone()
    assert rows == [("k1", "new", "r2"), ("k2", "two", "r2")]
    assert kept == (created,)


def test_a_transaction_that_runs_out_grows_the_limit_for_its_next_attempt(tmp_path, monkeypatch):
    """Work in a plain transaction cannot be run again for its caller: it fails, undone, and the
    limit has grown, so that its next attempt in the process (a task's retry) has the room."""
    monkeypatch.setenv(memory.VARIABLE, "8MB")
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(duckdb.OutOfMemoryException), wh.transaction():
            lists_into(wh)
        assert not wh.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'counted'")
        assert memory.limit() == pytest.approx(16_000_000, rel=0.001)  # 8 MB doubled


def test_no_connection_lowers_the_limit_another_works_under(tmp_path, monkeypatch):
    """A step that asked for more (ingest's 1 GB) keeps it while another connection of the
    process opens and closes; with the other one closed, it gives the room back on its own
    connection; a connection asking for DuckDB's default raises the limit for both."""
    monkeypatch.setenv(memory.VARIABLE, "64MiB")
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as wh:
        base = mib(wh)
        with memory.at_least(wh.con, wh.path, 10**9):
            assert mib(wh) == pytest.approx(10**9 / 2**20, rel=0.01)
            with open_warehouse(path) as other:  # a night's validation, say, in another thread
                assert mib(other) == pytest.approx(10**9 / 2**20, rel=0.01)
            assert mib(wh) == pytest.approx(10**9 / 2**20, rel=0.01)
        assert mib(wh) == pytest.approx(base, rel=0.01)  # given back on the same connection
        with open_warehouse(path) as other, memory.at_least(other.con, other.path, 10**9):
            pass
        assert mib(wh) == pytest.approx(10**9 / 2**20, rel=0.01)  # not under `wh`'s feet
        monkeypatch.setenv(memory.VARIABLE, "0")
        with open_warehouse(path) as other:
            default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()
            assert other.execute("SELECT current_setting('memory_limit')").fetchone() == default
