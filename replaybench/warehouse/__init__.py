"""The DuckDB warehouse: one connection per open, numbered migrations, SQL loaded by name.

The schema grows by small files in `migrations/` (`NNN_name.sql`), each applied once and recorded
in `schema_migrations`. Queries live in `sql/NAME.sql` and are run with named parameters
(`$run_id`), so every number in a report can be re-derived by running the same file by hand.

DuckDB lets one process at a time open the file, and refuses the others at once. So every open
takes the process's turn at it (replaybench.locks.WarehouseLock): a second process waits for its
turn instead of failing, and the steps keep their turns short (replay answers go to Parquet
shards first, loaded in one short step).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import polars as pl

from replaybench.errors import WarehouseError
from replaybench.locks import WarehouseLock
from replaybench.warehouse import memory

_PACKAGE = "replaybench.warehouse"
T = TypeVar("T")


@cache
def sql_text(name: str) -> str:
    """The text of `sql/NAME.sql`."""
    try:
        return resources.files(_PACKAGE).joinpath("sql", f"{name}.sql").read_text()
    except FileNotFoundError:
        raise WarehouseError(f"no SQL file named {name}.sql in replaybench/warehouse/sql") from None


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order."""
    found = []
    for entry in resources.files(_PACKAGE).joinpath("migrations").iterdir():
        m = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(found)


class Rows(list):
    """A fully fetched result."""

    def fetchall(self) -> list[tuple]:
        return list(self)

    def fetchone(self) -> tuple | None:
        return self[0] if self else None


class Warehouse:
    """An open warehouse file. Use `with open_warehouse(path) as wh:`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path):
        self.con = con
        self.path = path
        self._depth = 0  # open transactions (`transaction`)
        self._grew = False  # the last transaction that ran out of memory grew the limit

    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen; return their versions."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())"
        )
        done = {r[0] for r in self.execute("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, text in migrations():
            if version in done:
                continue
            def apply(text: str = text, version: int = version, name: str = name) -> None:
                self.execute(text)
                self.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
                )

            self.atomic(apply)
            applied.append(version)
        return applied

    # --- queries -------------------------------------------------------------------------

    def execute(self, sql: str, params: dict[str, Any] | list | None = None) -> Rows:
        """Run one statement and fetch its whole result (DuckDB 2.0 refuses other work on a
        connection while a result is half-read)."""
        def run() -> Rows:
            cur = self.con.execute(sql, params or {})
            return Rows(cur.fetchall() if cur.description else [])

        return self._with_room(run)

    def query(self, name: str, **params: Any) -> Rows:
        """Execute `sql/NAME.sql` with named parameters."""
        return self.execute(sql_text(name), params)

    def frame(self, sql_or_name: str, **params: Any) -> pl.DataFrame:
        """A query's result as a Polars frame; a bare word is the name of a SQL file."""
        sql = sql_text(sql_or_name) if re.fullmatch(r"\w+", sql_or_name) else sql_or_name
        return self._with_room(lambda: self.con.sql(sql, params=params or None).pl())

    def arrays(self, sql: str, **params: Any) -> dict[str, np.ndarray]:
        """A query's result as NumPy arrays by column (a column with NULLs comes masked)."""
        return self._with_room(lambda: self.con.execute(sql, params or {}).fetchnumpy())

    def _with_room(self, statement: Callable[[], T]) -> T:
        """One statement, run again under a grown limit while it runs out of memory; in a
        transaction the error goes on (the work is undone: `atomic` runs it again)."""
        while True:
            try:
                return statement()
            except duckdb.OutOfMemoryException as exc:
                if self._depth or not memory.can_grow(self.path):
                    raise
                why = str(exc)
            # out of the handler: a result that ran out while it was being read is held by the
            # error's traceback (in a cycle the collector frees), and the connection refuses
            # any other statement while it is open
            gc.collect()
            self.con.abort()
            memory.grow(self.con, self.path, why)

    @contextmanager
    def registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        """Make a frame queryable as the table `name` for the duration of the block."""
        self.con.register(name, frame.to_arrow())
        try:
            yield
        finally:
            self.con.unregister(name)

    def insert(self, table: str, frame: pl.DataFrame, on_conflict: str = "") -> int:
        """Insert a frame by column name (missing columns take their defaults); return rows added."""
        if frame.is_empty():
            return 0
        before = self._count(table)
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        with self.registered("_incoming", frame):
            self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _incoming {on_conflict}")
        return self._count(table) - before

    def insert_new(self, table: str, source: str, keys: tuple[str, ...], run_id: str,
                   params: dict[str, Any] | None = None) -> int:
        """Insert the rows of `source` (a table expression) for the run `run_id` whose `keys`
        `table` does not hold yet, each key once; return rows added. What a primary key would
        give, without its index: the tables a night fills have none (migration 014), as DuckDB
        keeps in memory, unevictable, every key a connection writes. The joins hold the fresh
        keys, not the run's rows of `table` (whose row groups are pruned by run_id). Two
        connections adding the same key at once would both add it: the caller must be the run's
        only writer of `table` (replay's load holds `replay.load.warehouse_turn`, and a run's
        day is leased to one process)."""
        columns = [r[0] for r in self.execute(f"DESCRIBE SELECT * FROM {source}", params)]
        listed = ", ".join(f'"{c}"' for c in columns)
        key_list = ", ".join(f'"{k}"' for k in keys)
        matched = " AND ".join(f'held."{k}" = fresh."{k}"' for k in keys)
        held_keys = ", ".join(f'held."{k}"' for k in keys)
        return self.execute(
            f"INSERT INTO {table} ({listed}) "
            f"WITH fresh AS (SELECT * FROM {source} WHERE run_id = $run_id "
            f"QUALIFY row_number() OVER (PARTITION BY {key_list}) = 1), "
            # the run's rows that share a fresh key, found by a hash table of the fresh keys (a
            # NOT EXISTS built one of the run's rows, which grew with the night: a 300k night's
            # load ran out of 128 MB in this transaction)
            f"held AS (SELECT {held_keys} "
            f"FROM {table} AS held SEMI JOIN fresh ON {matched} WHERE held.run_id = $run_id) "
            f"SELECT {listed} FROM fresh ANTI JOIN held ON {matched}",
            {**(params or {}), "run_id": run_id}).fetchone()[0]  # DuckDB counts what it added

    def _count(self, table: str) -> int:
        return self.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The block in one transaction, undone if it raises. A statement that ran out of the
        process's memory limit grows it (`memory.grow`) before the error goes on, so that the
        work has room when it is run again (`atomic` runs it again at once)."""
        self.con.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException as exc:
            self.con.execute("ROLLBACK")
            if isinstance(exc, duckdb.OutOfMemoryException):
                self._grew = memory.grow(self.con, self.path, str(exc))
            raise
        finally:
            self._depth -= 1
        self.con.execute("COMMIT")

    def atomic(self, work: Callable[[], T]) -> T:
        """`work()` in one transaction; if a statement runs out of the process's memory limit,
        the work, undone, runs again under the grown limit, until the limit cannot grow. For the
        steps that write much at once (replay's load, the checks, the scores and decisions)."""
        while True:
            self._grew = False
            try:
                with self.transaction():
                    return work()
            except duckdb.OutOfMemoryException:
                if not self._grew:  # at DuckDB's own limit already
                    raise

    def close(self) -> None:
        self.con.close()


@contextmanager
def open_warehouse(path: str | Path, *, read_only: bool = False) -> Iterator[Warehouse]:
    """Open (and migrate) the warehouse file, waiting for another process's turn to end."""
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}: ingest logs or run the demo first")
    path.parent.mkdir(parents=True, exist_ok=True)
    with WarehouseLock(path):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseError(
                    f"the warehouse {path} is in use by a process outside replaybench (DuckDB "
                    "allows one at a time); close it and try again"
                ) from None
            raise WarehouseError(f"cannot open the warehouse {path}: {exc}") from None
        try:
            con.execute("SET TimeZone = 'UTC'")
            memory.opened(con, path)
        except BaseException:
            con.close()
            raise
        wh = Warehouse(con, path)
        try:
            if not read_only:
                wh.migrate()
            yield wh
        finally:
            wh.close()
            memory.closed(path)
