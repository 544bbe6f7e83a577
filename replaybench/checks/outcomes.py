"""One check's per-row outcome from GX's result: which rows failed, and why.

A null never passes: GX column-map expectations skip null values, so a row GX skipped because a
column it needs is null is failed here, "no value in answer_number" (except for the kinds that
judge nulls themselves, and as a pair/multicolumn expectation's own `ignore_row_if` says). An
expectation that errored fails every row it applies to, with the exception as the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from replaybench.checks.kinds import kind_of, reason
from replaybench.checks.reasons import REASON_MAX, first_line, no_value, scalar, truncate
from replaybench.checks.rows import ROW_KEY
from replaybench.checks.suites import CheckSpec


def outcomes(check: CheckSpec, result, rows: pl.DataFrame) -> tuple[list[bool], list[str | None]]:
    """Per-row (passed, reason) for one check over the rows in its scope."""
    n = rows.height
    if result is None:  # GX dropped it: never let that pass silently
        return [False] * n, [f"check did not run: {check.type}"] * n
    error = exception_message(result)
    if error is not None:
        return [False] * n, [truncate(f"check errored: {error}", REASON_MAX)] * n
    nulls = {c: _nulls(rows.get_column(c)) for c in check.columns}
    lists: dict[str, list] = {}

    def value(column: str, i: int) -> Any:  # the values are read for the failing rows only
        if column not in lists:
            lists[column] = rows.get_column(column).to_list()
        return scalar(lists[column][i])

    passed: list[bool] = [True] * n
    reasons: list[str | None] = [None] * n
    unexpected = result.result.get("unexpected_index_list") or []
    if unexpected:
        position = {key: i for i, key in enumerate(rows.get_column(ROW_KEY).to_list())}
        for item in unexpected:
            i = position.get(scalar(item[ROW_KEY]))
            if i is not None:  # the reference suite's list spans every prompt_version
                passed[i] = False
                reasons[i] = reason(check, [value(c, i) for c in check.columns])
    for i in _skipped_rows(check, nulls, n):
        passed[i] = False
        reasons[i] = no_value(c for c in check.columns if nulls[c][i])
    return passed, reasons


def _nulls(series: pl.Series) -> list[bool]:
    """Which values are missing, as GX (pandas) sees them: null, or NaN."""
    missing = series.is_null()
    if series.dtype.is_float():
        missing |= series.is_nan().fill_null(True)
    return missing.to_list()


def exception_message(result) -> str | None:
    """The message of an expectation that errored, from its exception_info (flat or per metric)."""
    info = result.exception_info or {}
    candidates: Iterable[dict] = [info] if "raised_exception" in info else info.values()
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return first_line(item.get("exception_message") or "unknown error")
    if not result.success and not result.result:
        return "no result (the expectation could not be evaluated)"
    return None


def _skipped_rows(check: CheckSpec, nulls: dict[str, list[bool]], n: int) -> list[int]:
    """Rows GX did not evaluate because of nulls: a null never passes a check that needs it."""
    if kind_of(check.type).judges_nulls:
        return []
    columns = [nulls[c] for c in check.columns]
    rule = check.kwargs.get("ignore_row_if")
    if len(columns) == 1:
        return [i for i, missing in enumerate(columns[0]) if missing]
    rows = zip(*columns, strict=True) if columns else iter([()] * n)
    if rule in ("neither", "never"):
        return []
    if rule in (None, "both_values_are_missing", "all_values_are_missing"):
        return [i for i, row in enumerate(rows) if all(row)]
    return [i for i, row in enumerate(rows) if any(row)]  # either_/any_value_is_missing
