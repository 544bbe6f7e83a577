"""The DuckDB warehouse: one connection per open, numbered migrations, SQL loaded by name.

The schema grows by small files in `migrations/` (`NNN_name.sql`), each applied once and recorded
in `schema_migrations`. Queries live in `sql/NAME.sql` and are run with named parameters
(`$run_id`), so every number in a report can be re-derived by running the same file by hand.

DuckDB lets one process at a time open the file, and refuses the others at once. So every open
goes through a lock file beside it (`<warehouse>.lock`, `flock`): a second process waits for its
turn instead of failing, and the steps keep their turns short (replay answers go to Parquet
shards first, loaded in one short step). Inside one process the lock is shared: DuckDB itself
lets that process's connections work side by side. The kernel frees the lock of a killed process.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from replaybench import pidlock
from replaybench.errors import WarehouseError

_PACKAGE = "replaybench.warehouse"
WAIT_SECONDS = float(os.environ.get("REPLAYBENCH_WAREHOUSE_WAIT_S", 3600))
log = logging.getLogger("replaybench.warehouse")


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
            self.con.execute("BEGIN")
            try:
                self.execute(text)
                self.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
                )
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise
            applied.append(version)
        return applied

    # --- queries -------------------------------------------------------------------------

    def execute(self, sql: str, params: dict[str, Any] | list | None = None) -> Rows:
        """Run one statement and fetch its whole result (DuckDB 2.0 refuses other work on a
        connection while a result is half-read)."""
        cur = self.con.execute(sql, params or {})
        return Rows(cur.fetchall() if cur.description else [])

    def run(self, name: str, **params: Any) -> Rows:
        """Execute `sql/NAME.sql` with named parameters."""
        return self.execute(sql_text(name), params)

    def frame(self, sql_or_name: str, **params: Any) -> pl.DataFrame:
        """A query's result as a Polars frame; a bare word is the name of a SQL file."""
        sql = sql_text(sql_or_name) if re.fullmatch(r"\w+", sql_or_name) else sql_or_name
        return self.con.sql(sql, params=params or None).pl()

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

    def _count(self, table: str) -> int:
        return self.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


class WarehouseLock:
    """One process's turn at a warehouse file: an exclusive `flock` on `<warehouse>.lock`, taken
    by the first open in the process and given back by the last close. Waits for another
    process's turn to end (saying once who holds it), up to `wait_s`."""

    _guard = threading.Lock()
    _held: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, opens in this process)

    def __init__(self, warehouse: Path, wait_s: float = WAIT_SECONDS):
        self.path = warehouse.with_name(warehouse.name + ".lock")
        self.wait_s = wait_s

    def __enter__(self) -> WarehouseLock:
        with self._guard:
            if self.path in self._held:
                fd, count = self._held[self.path]
                self._held[self.path] = (fd, count + 1)
                return self
            self._held[self.path] = (self._acquire(), 1)
        return self

    def _acquire(self) -> int:
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            try:
                return pidlock.try_take(self.path)
            except pidlock.Busy as busy:
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"the warehouse {self.path.with_suffix('')} stayed busy for {self.wait_s:.0f} s "
                        f"({busy.holder}); try again when it is done") from None
                if not said:
                    log.warning("waiting for the warehouse %s: %s has it", self.path.with_suffix(""),
                                busy.holder)
                    said = True
                time.sleep(0.05)  # a turn lasts seconds; polling keeps the wait bounded

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            fd, count = self._held[self.path]
            if count > 1:
                self._held[self.path] = (fd, count - 1)
                return
            del self._held[self.path]
            pidlock.give_back(fd)


@contextmanager
def open_warehouse(path: str | Path, *, read_only: bool = False,
                   memory_limit: str | None = None) -> Iterator[Warehouse]:
    """Open (and migrate) the warehouse file, waiting for another process's turn to end.
    `memory_limit` caps what DuckDB holds (its cache of the blocks it read and wrote, first),
    e.g. "128MB"; beyond it DuckDB evicts and spills to disk. None: DuckDB's default."""
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
        con.execute("SET TimeZone = 'UTC'")
        if memory_limit:
            if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit):
                raise WarehouseError(f"not a memory size: {memory_limit!r} (e.g. 128MB, 2GiB)")
            con.execute(f"SET memory_limit = '{memory_limit}'")
        wh = Warehouse(con, path)
        try:
            if not read_only:
                wh.migrate()
            yield wh
        finally:
            wh.close()
