"""The rows of the `checks` table as the checks build them: one per (answer, check)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from replaybench.warehouse import open_warehouse

ROW_KEY = "_row"
"""An answer's place in the night: GX's unexpected rows name it, and the rows keep its order."""
OUTPUT_SCHEMA = {
    **dict.fromkeys(["request_id", "model", "prompt_version", "check"], pl.String),
    "passed": pl.Boolean,
    "reason": pl.String,
}
OUTPUT_COLUMNS = list(OUTPUT_SCHEMA)


def check_rows(rows: pl.DataFrame, check: str, passed: list[bool],
               reasons: list[str | None]) -> pl.DataFrame:
    """One check's outcome on these answers, keyed by their place (`ROW_KEY`)."""
    return rows.select(
        ROW_KEY,
        "request_id",
        "model",
        "prompt_version",
        check=pl.lit(check, dtype=pl.String),
        passed=pl.Series(passed, dtype=pl.Boolean),
        reason=pl.Series(reasons, dtype=pl.String),
    )


def failed_count(warehouse: Path, run_id: str) -> int:
    """How many of a run's stored checks failed (for the night's log line)."""
    with open_warehouse(warehouse) as wh:
        return wh.execute("SELECT count(*) FROM checks WHERE run_id = $r AND NOT passed",
                          {"r": run_id}).fetchone()[0]
