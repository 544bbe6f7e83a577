"""How much memory DuckDB may use in this process: REPLAYBENCH_WAREHOUSE_MEMORY (default 128MB;
`0` leaves DuckDB's own default, 80 % of the machine's RAM).

Without a limit DuckDB keeps what it has read and written cached for as long as the warehouse is
open (up to 80 % of the RAM), so a step's memory followed the size of the night. Under the limit
it evicts that cache and spills what a query holds to `<warehouse>.tmp/` (`bench/night.py`
prints what a night's phases take at two sizes).

A limit belongs to DuckDB's database instance, which every connection of the process to the file
shares (the nights of a parallel backfill too), so it is set the same at every open. What DuckDB
cannot evict, the key indexes of the tables that have one, gets room on top of the amount asked
for (`index_room`): the tables a night fills have none (migration 014), but `logs`,
`samples` and `decision_evidence` have one. If a statement still runs out, the limit is doubled
for the rest of the process (a warning says so) and the statement, or the unit of work given to
`Warehouse.atomic`, runs again; other work in a transaction fails, and finds the room when it is
run again. The limit is never lowered while the process lives, so another connection never
finds less room than it started with. A commit cannot be run again: one that finds no room ends
DuckDB's instance for the whole process, which is what the index room is for.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from replaybench.errors import WarehouseError

log = logging.getLogger(__name__)

VARIABLE = "REPLAYBENCH_WAREHOUSE_MEMORY"
DEFAULT = "128MB"
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

_lock = threading.Lock()
_grown: int | None = None  # bytes: the limit after this process ran out of it


def configured() -> int | None:
    """The limit the environment asks for, in bytes; None for DuckDB's own default."""
    text = os.environ.get(VARIABLE, DEFAULT).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
    if not m or m.group(2).lower() not in UNITS:
        raise WarehouseError(f"{VARIABLE}={text!r} is not an amount of memory (e.g. 256MB, 1GiB, "
                             "or 0 for DuckDB's default)")
    amount = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    return amount or None


def ceiling() -> int:
    """The most the limit grows to: DuckDB's own default, 80 % of the machine's RAM."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)


def limit() -> int | None:
    """The limit a connection of this process gets now, in bytes (None: DuckDB's default)."""
    wanted = configured()
    with _lock:
        return None if wanted is None else max(wanted, _grown or 0)


KEY_BYTES = 128
"""Room for each row of a table with a primary key, on top of the limit asked for: DuckDB keeps a
key index (ART) in memory, unevictable, loading what a write touches (all of it when the keys are
random, as `logs`' are), and a commit that finds no room for it ends the database instance
("invalidated") rather than the statement. Measured at 90 bytes a key (run, request, model) and
116 (a sha256 in hex)."""


def index_room(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes the warehouse's key indexes may take once loaded: KEY_BYTES a row of every table
    with a primary or unique key (DuckDB's estimate of its rows, read from the catalog)."""
    rows = con.execute(
        "SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() WHERE table_name IN ("
        "SELECT table_name FROM duckdb_constraints() "
        "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE'))").fetchone()[0]
    return int(rows) * KEY_BYTES


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Set the process's limit on a new connection: what is asked for (or grown to), plus room
    for the key indexes, so that only DuckDB's cache and its queries' intermediates (which it
    evicts and spills) are held to the amount asked for. An index that outgrows its room at a
    commit would end the database instance ("invalidated"), not just the statement."""
    if (amount := limit()) is not None:
        con.execute(f"SET memory_limit = '{min(amount + index_room(con), ceiling())}B'")
    else:
        con.execute("RESET memory_limit")


@contextmanager
def at_least(con: duckdb.DuckDBPyConnection, amount: int) -> Iterator[None]:
    """The process's limit, or `amount` if that is more, for the block (a step that knows what it
    needs: ingest's streaming read); then the process's limit again."""
    current = limit()
    if current is None or amount > current + index_room(con):
        con.execute(f"SET memory_limit = '{amount}B'")
    try:
        yield
    finally:
        apply(con)


def grow(con: duckdb.DuckDBPyConnection, error: duckdb.OutOfMemoryException) -> bool:
    """After `error`: double the process's limit and set it; False when it cannot grow (no limit
    set, or already at the ceiling), and the error stands."""
    global _grown
    current = limit()
    if current is None or current >= ceiling():
        return False
    bigger = min(current * 2, ceiling())
    with _lock:
        _grown = max(_grown or 0, bigger)
    con.execute(f"SET memory_limit = '{min(bigger + index_room(con), ceiling())}B'")
    log.warning("the warehouse ran out of its memory limit (%s=%s): raised to %d MB for the rest "
                "of this process (%s)", VARIABLE, os.environ.get(VARIABLE, DEFAULT),
                bigger >> 20, str(error).splitlines()[0])
    return True


def reset() -> None:
    """Forget a grown limit (tests)."""
    global _grown
    with _lock:
        _grown = None
