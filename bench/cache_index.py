"""The response cache with and without its key index, as the warehouse grows: what a replay's load
costs (merging 20,000 paid answers into a cache of N) and what a plan's lookup costs (2,000 keys),
and the memory DuckDB holds. Prints figures; asserts nothing.

    .venv/bin/python bench/cache_index.py                 # a cache of 3,000,000 answers
    .venv/bin/python bench/cache_index.py --answers 500000

Each way runs in a child process of its own on a file of its own (in a temporary folder), both
under the same DuckDB memory limit (`--limit`, default 256MB; `0` for DuckDB's default):

- keyed: `cache_key VARCHAR PRIMARY KEY`, answers stored with `INSERT ... ON CONFLICT (cache_key) DO
  UPDATE` (the warehouse before migration 014);
- unkeyed: no index, answers stored with `MERGE INTO` (`replaybench.replay.load.cache_answers`).

Per way: ms per lookup of 2,000 keys (as `sql/cached_answers.sql` joins them), ms per store of
20,000 answers (half known, half new), the peak RSS of the child while it does both (VmHWM, reset
after the file is built), DuckDB's own account of its memory by tag (`duckdb_memory()`), or the
error that stopped it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANSWER = "a" * 200  # about a short answer's length
LOOKUPS, LOOKUP_KEYS = 10, 2_000
STORES, STORE_ROWS = 5, 20_000


def status_mb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return -1


def one_way(keyed: bool, answers: int, limit: str, folder: Path) -> dict:
    import duckdb

    path = folder / ("keyed.duckdb" if keyed else "unkeyed.duckdb")
    con = duckdb.connect(str(path))
    key = "PRIMARY KEY" if keyed else "NOT NULL"
    con.execute(f"CREATE TABLE cache (cache_key VARCHAR {key}, output_text VARCHAR, paid VARCHAR)")
    con.execute(f"INSERT INTO cache SELECT sha256(i::VARCHAR), '{ANSWER}', 'old' "
                f"FROM range({answers}) AS t(i)")
    con.close()

    Path("/proc/self/clear_refs").write_text("5")
    con = duckdb.connect(str(path))
    if limit != "0":
        con.execute(f"SET memory_limit = '{limit}'")
    figures: dict = {"way": "keyed (ON CONFLICT)" if keyed else "unkeyed (MERGE INTO)"}
    try:
        t = time.perf_counter()
        for b in range(LOOKUPS):
            keys = con.sql(f"SELECT sha256((i * 7919 % {answers})::VARCHAR) AS cache_key "
                           f"FROM range({b * LOOKUP_KEYS}, {(b + 1) * LOOKUP_KEYS}) AS t(i)"
                           ).to_arrow_table()
            con.register("_keys", keys)
            con.execute("SELECT c.* FROM cache AS c JOIN _keys AS k USING (cache_key)").fetchall()
            con.unregister("_keys")
        figures["lookup_ms"] = (time.perf_counter() - t) / LOOKUPS * 1000
        t = time.perf_counter()
        for b in range(STORES):
            first = answers - STORE_ROWS // 2 + b * STORE_ROWS
            fresh = (f"(SELECT sha256(i::VARCHAR) AS cache_key, 'new answer' AS output_text, "
                     f"'new' AS paid FROM range({first}, {first + STORE_ROWS}) AS t(i))")
            con.execute("BEGIN")
            if keyed:
                con.execute(f"INSERT INTO cache SELECT * FROM {fresh} ON CONFLICT (cache_key) "
                            "DO UPDATE SET output_text = excluded.output_text, paid = excluded.paid")
            else:
                con.execute(f"MERGE INTO cache USING {fresh} AS s ON cache.cache_key = s.cache_key "
                            "WHEN MATCHED THEN UPDATE SET output_text = s.output_text, "
                            "paid = s.paid WHEN NOT MATCHED THEN INSERT (cache_key, output_text, "
                            "paid) VALUES (s.cache_key, s.output_text, s.paid)")
            con.execute("COMMIT")
        figures["store_ms"] = (time.perf_counter() - t) / STORES * 1000
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT cache_key) FROM cache").fetchone()
        figures["rows_unique"] = rows == distinct
        figures["duckdb_mb"] = {tag: mb for tag, mb in con.execute(
            "SELECT tag, memory_usage_bytes >> 20 FROM duckdb_memory() "
            "WHERE memory_usage_bytes >= 1 << 20").fetchall()}
    except duckdb.Error as exc:
        figures["error"] = str(exc).splitlines()[0]
    figures["peak_mb"] = status_mb("VmHWM")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=3_000_000, help="answers in the cache")
    parser.add_argument("--limit", default="256MB", help="DuckDB's memory_limit (0: its default)")
    parser.add_argument("--way", choices=["keyed", "unkeyed"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        print(json.dumps(one_way(args.way == "keyed", args.answers, args.limit, Path(args.folder))))
        return
    print(f"# A response cache of {args.answers:,} answers, DuckDB memory_limit {args.limit}\n")
    print("| way | lookup of 2,000 keys, ms | store of 20,000 answers, ms | peak RSS MB | "
          "DuckDB memory MB | rows unique |")
    print("|---|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory(prefix="replaybench-cache-") as folder:
        for way in ("keyed", "unkeyed"):
            child = subprocess.run(
                [sys.executable, __file__, "--way", way, "--answers", str(args.answers),
                 "--limit", args.limit, "--folder", folder],
                stdout=subprocess.PIPE, text=True, check=True)
            f = json.loads(child.stdout.strip().splitlines()[-1])
            if "error" in f:
                print(f"| {f['way']} | — | — | {f['peak_mb']:,} | failed: {f['error']} | — |")
                continue
            memory = ", ".join(f"{tag} {mb}" for tag, mb in f["duckdb_mb"].items()) or "—"
            print(f"| {f['way']} | {f['lookup_ms']:.0f} | {f['store_ms']:.0f} | {f['peak_mb']:,} | "
                  f"{memory} | {'yes' if f['rows_unique'] else 'NO'} |")


if __name__ == "__main__":
    main()
