"""How much memory DuckDB may use in this process: REPLAYBENCH_WAREHOUSE_MEMORY (default 128MB;
`0` leaves DuckDB's own default, 80 % of the machine's RAM).

Without a limit DuckDB keeps what it has read and written cached for as long as the warehouse is
open (up to 80 % of the RAM), so a step's memory followed the size of the night. Under the limit
it evicts that cache and spills what a query holds to `<warehouse>.tmp/` (`bench/night.py`
prints what a night's phases take at two sizes).

A limit belongs to DuckDB's database instance, which every connection of the process to the file
shares (the nights of a parallel backfill too): a connection never lowers the limit another open
connection works under (`opened`, `at_least`).

What DuckDB cannot evict, the key indexes of the tables that have one, gets room on top of the
amount asked for (`index_room`). The tables that grow every night have none (migrations 014 and
015) but `logs` and `rejects`, whose room is made only while ingest writes them (`writing`); the
ones left (runs, decisions, scores, quotas) hold a few rows a night. A commit that finds no room
for an index ends DuckDB's instance for the whole process; it cannot be run again.

If a statement still runs out, the limit is doubled, and the amount asked for with it for the
rest of the process (a warning says so), and the statement, or the unit of work given to
`Warehouse.atomic`, runs again; other work in a transaction fails, and finds the room when it
is run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb

from replaybench.errors import WarehouseError

log = logging.getLogger(__name__)

VARIABLE = "REPLAYBENCH_WAREHOUSE_MEMORY"
DEFAULT = "128MB"
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

_lock = threading.RLock()  # limit() is read while it is held
_grown = 0  # bytes: what the amount asked for has grown to, after this process ran out of it


@dataclass
class _Instance:
    """DuckDB's database instance of one warehouse file in this process, while connections to it
    are open: how many, the limit set on it, and the floors of `at_least` blocks under way."""

    live: int = 0
    held: int = 0
    floors: list[int] = field(default_factory=list)


_instances: dict[Path, _Instance] = {}


def configured() -> int | None:
    """The limit the environment asks for, in bytes; None for DuckDB's own default."""
    text = os.environ.get(VARIABLE, DEFAULT).strip()
    amount = parse(text)
    if amount is None:
        raise WarehouseError(f"{VARIABLE}={text!r} is not an amount of memory (e.g. 256MB, 1GiB, "
                             "or 0 for DuckDB's default)")
    return amount or None


def parse(text: str) -> int | None:
    """Bytes of an amount such as `256MB` or `1GiB`; None if it is not one."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text.strip())
    if not m or m.group(2).lower() not in UNITS:
        return None
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


@cache
def ceiling() -> int:
    """The most the limit grows to: DuckDB's own default, 80 % of the memory the process may use
    (the machine's, or its cgroup's when that is less)."""
    allowed = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            allowed = min(allowed, int(Path(cgroup).read_text().strip()))
    return int(allowed * 0.8)


def limit() -> int | None:
    """The amount asked for, or what it has grown to in this process, in bytes (None: DuckDB's
    default)."""
    wanted = configured()
    with _lock:
        return None if wanted is None else max(wanted, _grown)


KEY_BYTES = 128
"""Room for each row of a table with a primary key, on top of the limit asked for: DuckDB keeps a
key index (ART) in memory, unevictable, loading what a write touches (all of it when the keys are
random, as `logs`' are), and a commit that finds no room for it ends the database instance
("invalidated") rather than the statement. Measured at 90 bytes a key (run, request, model) and
116 (a sha256 in hex)."""


WRITTEN_BY_INGEST = frozenset({"logs", "rejects"})
"""Keyed tables that grow with the warehouse's history but only ingest writes: their room is made
while ingest writes them (`writing`), not in every step. A read does not load a key index,
bar the few nodes of a lookup by key."""


def index_room(con: duckdb.DuckDBPyConnection, tables: frozenset[str] | None = None) -> int:
    """Bytes the warehouse's key indexes may take once loaded: KEY_BYTES a row of every table
    with a primary or unique key (DuckDB's estimate of its rows, read from the catalog), those
    `tables` only, or (by default) all but the ones written only by ingest."""
    keyed = ("SELECT table_name FROM duckdb_constraints() "
             "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
    if tables is None:
        picked, names = "NOT list_contains($names, table_name)", sorted(WRITTEN_BY_INGEST)
    else:
        picked, names = "list_contains($names, table_name)", sorted(tables)
    rows = con.execute(
        "SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() "
        f"WHERE table_name IN ({keyed}) AND {picked}", {"names": names}).fetchone()[0]
    return int(rows) * KEY_BYTES


@contextmanager
def writing(con: duckdb.DuckDBPyConnection, path: Path, tables: frozenset[str]) -> Iterator[None]:
    """Room, for the block, for the key indexes of `tables` as well (ingest writing `logs`:
    DuckDB loads all of a random key's index to add to it); nothing to do under DuckDB's
    default."""
    if (amount := limit()) is None:
        yield
        return
    room = amount + index_room(con) + index_room(con, tables)
    with at_least(con, path, min(room, ceiling())):
        yield


def _target(con: duckdb.DuckDBPyConnection, instance: _Instance) -> int | None:
    """The limit the instance should have: what is asked for (or grown to) plus room for the key
    indexes, at least every floor under way; None for DuckDB's default."""
    if (amount := limit()) is None:
        return None
    return max([min(amount + index_room(con), ceiling()), *instance.floors])


def _set(con: duckdb.DuckDBPyConnection, instance: _Instance, target: int | None) -> None:
    if target is None:
        con.execute("RESET memory_limit")
    else:
        con.execute(f"SET memory_limit = '{target}B'")
    instance.held = ceiling() if target is None else target


def opened(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A new connection to `path`: the first of the process sets the instance's limit (what is
    asked for, plus room for the key indexes: only DuckDB's cache and its queries'
    intermediates, which it evicts and spills, are held to the amount asked for); a later one
    only ever raises it, so that no connection under way finds less room than it had."""
    path = path.resolve()
    with _lock:
        instance = _instances.setdefault(path, _Instance())
        instance.live += 1
        try:
            target = _target(con, instance)
            if instance.live == 1 or (target or ceiling()) > instance.held:
                _set(con, instance, target)
        except BaseException:
            _forget(path)
            raise


def closed(path: Path) -> None:
    """A connection to `path` closed; with the last, DuckDB's instance and its limit are gone."""
    with _lock:
        _forget(path.resolve())


def _forget(path: Path) -> None:
    instance = _instances.get(path)
    if instance is not None:
        instance.live -= 1
        if instance.live <= 0:
            del _instances[path]


@contextmanager
def at_least(con: duckdb.DuckDBPyConnection, path: Path, amount: int) -> Iterator[None]:
    """At least `amount` for the block (a step that knows what it needs: ingest's streaming read),
    then the process's limit again, unless another connection is open (a limit is lowered only
    when no other connection can be using the room)."""
    with _lock:
        instance = _instances[path.resolve()]
        instance.floors.append(amount)
        if amount > instance.held:
            _set(con, instance, amount)
    try:
        yield
    finally:
        with _lock:
            instance.floors.remove(amount)
            # more pinned than the lower limit allows: the room stays until the warehouse closes
            if instance.live == 1:
                with contextlib.suppress(duckdb.OutOfMemoryException):
                    _set(con, instance, _target(con, instance))


def can_grow(path: Path) -> bool:
    """Whether the instance's limit can still grow (it is not at DuckDB's default yet)."""
    with _lock:
        return min(_instances[path.resolve()].held * 2, ceiling()) > _instances[path.resolve()].held


def grow(con: duckdb.DuckDBPyConnection, path: Path, error: str) -> bool:
    """After running out (DuckDB's message `error`): double the instance's limit, and what the
    process's later connections get; False when it cannot grow (at DuckDB's default), and the
    error stands."""
    global _grown
    with _lock:
        instance = _instances[path.resolve()]
        target = min(instance.held * 2, ceiling())
        if target <= instance.held:
            return False
        _set(con, instance, target)
        # the amount asked for grows, not what was held: a floor or an ingest's room for the
        # logs' index (`at_least`, `writing`) is not kept for the process's later connections
        _grown = max(_grown, min(2 * (limit() or 0), ceiling()))
        asked = _grown
    log.warning("the warehouse ran out of its memory limit (%s=%s): raised to %d MB, and %d MB "
                "asked for in the rest of this process (%s)", VARIABLE,
                os.environ.get(VARIABLE, DEFAULT), target >> 20, asked >> 20,
                error.splitlines()[0])
    return True


def reset() -> None:
    """Forget a grown limit (tests)."""
    global _grown
    with _lock:
        _grown = 0
