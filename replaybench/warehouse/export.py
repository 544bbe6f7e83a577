"""A run's rows out of the warehouse, one file per table, written by DuckDB's own COPY.

Every table or view with a `run_id` column gives its rows of the run (`sql/export_columns.sql`
finds them, so a table added by a later migration is exported too): runs, samples, replays,
answers, checks, scores, sample plan and quotas, traffic mix, redaction, decision evidence and
looks; `sql/export_decisions.sql` adds the decisions the run looked at, as they stand now. JSON
columns are written as JSON text, so that every reader (Polars, pandas, Spark) gets a string;
DuckDB's 128-bit integer sums as BIGINT. `manifest.json` lists the files, their row counts and
the warehouse's column types.

The files hold what the warehouse holds: production's logged answers and the references among
them (`answers`), unredacted. Keep an export where the warehouse itself may be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

from replaybench import runs
from replaybench.errors import ReplaybenchError
from replaybench.warehouse import Warehouse, open_warehouse, sql_text

FORMATS = ("parquet", "csv")
_OPTIONS = {
    "parquet": "FORMAT parquet, COMPRESSION zstd",
    # ISO 8601 with the offset, which Polars' and DuckDB's CSV readers parse as timestamps
    "csv": "FORMAT csv, HEADER, TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%S.%f%z'",
}
_AS_TEXT = ("JSON",)
_AS_BIGINT = ("HUGEINT", "UHUGEINT")


@dataclass(frozen=True)
class Exported:
    """One table's file."""

    table: str
    rows: int
    path: Path


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(name: str, data_type: str) -> str:
    if data_type in _AS_TEXT:
        return f"{_ident(name)}::VARCHAR AS {_ident(name)}"
    if data_type in _AS_BIGINT:
        return f"{_ident(name)}::BIGINT AS {_ident(name)}"
    return _ident(name)


def run_queries(wh: Warehouse) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """table -> (the SELECT of a run's rows, with the parameter $run_id; its columns and types)."""
    queries = {}
    for table, cols in groupby(wh.query("export_columns"), key=lambda row: row[0]):
        columns = [(name, data_type) for _, name, data_type in cols]
        select = ", ".join(_column(n, t) for n, t in columns)
        queries[table] = (sql_text("export_decisions") if table == "decisions" else
                          f"SELECT {select} FROM {_ident(table)} WHERE run_id = $run_id", columns)
    return queries


def export_run(warehouse: Path, run_id: str, folder: Path, fmt: str = "parquet") -> list[Exported]:
    """Write every table of run `run_id` to `folder` (created) as `<table>.<fmt>`, and
    `manifest.json`; return what was written. An unknown run is a WarehouseError."""
    if fmt not in FORMATS:
        raise ReplaybenchError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    with open_warehouse(warehouse, read_only=True) as wh:
        runs.get(wh, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        written, manifest = [], {}
        for table, (select, columns) in run_queries(wh).items():
            path = folder / f"{table}.{fmt}"
            count = wh.execute(f"COPY ({select}) TO $path ({_OPTIONS[fmt]})",
                               {"run_id": run_id, "path": str(path)}).fetchone()[0]
            written.append(Exported(table, count, path))
            manifest[table] = {"file": path.name, "rows": count,
                               "columns": [{"name": n, "type": t} for n, t in columns]}
    (folder / "manifest.json").write_text(json.dumps(
        {"run_id": run_id, "format": fmt, "exported_at": datetime.now(UTC).isoformat(),
         "tables": manifest}, indent=2) + "\n", encoding="utf-8")
    return written
