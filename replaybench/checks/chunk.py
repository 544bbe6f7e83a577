"""One chunk of a night's answers, checked: each suite over its prompt_version's answers and the
reference match over every answer with a reference, in GX, then the judge; one row per (answer,
check) in scope (see `replaybench.checks.run` for the rules)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import polars as pl

from replaybench.checks.derive import DERIVED_SCHEMA, derive_columns
from replaybench.checks.gx_project import REFERENCE_MATCH_CHECK
from replaybench.checks.judged import judge_parts
from replaybench.checks.outcomes import exception_message, outcomes
from replaybench.checks.reasons import REASON_MAX, truncate
from replaybench.checks.rows import OUTPUT_COLUMNS, OUTPUT_SCHEMA, ROW_KEY, check_rows
from replaybench.checks.suites import (
    ANSWERED,
    PRODUCTION_MODEL,
    REFERENCE_SUITE,
    CheckSpec,
    SuiteSpec,
    query_text,
)
from replaybench.config import Judge

NO_ANSWER_REASON = "no answer (call failed)"


def chunk_checks(frame: pl.DataFrame, offset: int, suites: dict[str, SuiteSpec], night,
                 errors: dict, judge: Judge | None, judge_api_key: str | None,
                 redactor: Any) -> pl.DataFrame:
    """One chunk's checks, validated in `night` (a `NightValidation`); its rows are numbered
    from `offset` (their place in the night). A check that errors is noted in `errors`."""
    if any(column not in frame.columns for column in DERIVED_SCHEMA):
        frame = derive_columns(frame)
    frame = frame.with_row_index(ROW_KEY, offset=offset)
    has_answer = pl.col("output_text").is_not_null()
    parts: list[pl.DataFrame] = [
        frame.select(
            ROW_KEY,
            "request_id",
            "model",
            "prompt_version",
            check=pl.lit(ANSWERED),
            passed=has_answer,
            reason=pl.when(has_answer).then(None).otherwise(pl.lit(NO_ANSWER_REASON)),
        )
    ]
    answered = frame.filter(has_answer)
    groups = [(str(pv), rows) for (pv,), rows in
              answered.group_by("prompt_version", maintain_order=True)]
    # each suite validates its own rows: its prompt_version's; every answer with a reference
    frames = {pv: _gx_frame(rows, suites[pv].checks) for pv, rows in groups if pv in suites}
    with_reference = answered.filter(pl.col("has_reference"))
    if with_reference.height:
        frames[REFERENCE_SUITE] = _gx_frame(with_reference, [REFERENCE_MATCH_CHECK])
    results: dict[str, dict[str, Any]] = night.validate(frames) if frames else {}

    for prompt_version, rows in groups:
        suite = suites.get(prompt_version)
        for check in [*(suite.checks if suite else ()), REFERENCE_MATCH_CHECK]:
            in_scope = rows.filter(_scope_mask(check, rows))
            if in_scope.is_empty():
                continue
            reference = check is REFERENCE_MATCH_CHECK
            suite_name = REFERENCE_SUITE if reference else prompt_version
            result = results.get(suite_name, {}).get(check.name)
            error = exception_message(result) if result is not None else None
            if error is not None:
                errors.setdefault((None if reference else prompt_version, check.name),
                                  truncate(f"check errored: {error}", REASON_MAX))
            parts.append(check_rows(in_scope, check.name, *outcomes(check, result, in_scope)))

    if judge is not None:
        parts.extend(judge_parts(answered, suites, judge, judge_api_key, redactor))

    # Order: input row order, then `answered`, then the suite's order, then reference_match,
    # then the judge.
    out = pl.concat([p.cast({ROW_KEY: pl.UInt32}) for p in parts], how="vertical_relaxed")
    out = out.with_row_index("_order").sort([ROW_KEY, "_order"])
    return out.select(OUTPUT_COLUMNS).cast(OUTPUT_SCHEMA)


def _gx_frame(rows: pl.DataFrame, checks: Iterable[CheckSpec]):
    """The pandas frame a suite is validated on: `_row` and the columns its expectations read
    or their row conditions name (converting every answer's text to pandas costs)."""
    wanted = {ROW_KEY}
    for check in checks:
        wanted.update(check.columns)
        for arg in check.kwargs.values():  # a column named under another key, to be safe
            wanted.update(a for a in (arg if isinstance(arg, list) else [arg])
                          if isinstance(a, str) and a in rows.columns)
        scope = check.scope()
        if scope is not None:
            text = query_text(scope)
            wanted.update(c for c in rows.columns if re.search(rf"\b{re.escape(c)}\b", text))
    return rows.select([c for c in rows.columns if c in wanted]).to_pandas().set_index(ROW_KEY)


def _scope_mask(check: CheckSpec, rows: pl.DataFrame) -> pl.Series:
    """Which of a prompt_version's rows the check judges (its scope, the prompt_version aside)."""
    mask = pl.Series([True] * rows.height, dtype=pl.Boolean)
    if check.needs_reference:
        mask &= rows.get_column("has_reference").fill_null(False)
    if check.needs_production:
        mask &= rows.select(pl.col("production_answer").is_not_null()
                            & (pl.col("model") != PRODUCTION_MODEL)).to_series()
    if check.condition is not None:
        pdf = rows.to_pandas()
        try:
            kept = set(pdf.query(query_text(check.condition)).index.tolist())
        except Exception:  # noqa: BLE001 - GX meets the same error: the check errors on every row
            kept = set(range(rows.height))
        mask &= pl.Series([i in kept for i in range(rows.height)], dtype=pl.Boolean)
    return mask
