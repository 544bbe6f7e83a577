"""Running the checks: every answer against its prompt_version's suite, the reference match and
the judge, as rows of the `checks` table (request_id, model, prompt_version, check, passed,
reason).

Rules that decide a row's outcome, beyond what GX itself says:

- A row whose `output_text` is null gets one check, `answered` = false, and nothing else. Every
  answered row gets `answered` = true, so each (request_id, model) appears in the checks table even
  when its prompt_version has no suite and no reference.
- A check judges the rows in its scope (`CheckSpec.scope`) and writes a row for each of them
  only: checks that read a reference column (`reference`, `reference_number`, `reference_norm`,
  ...) apply only to rows that have a reference, as the automatic `reference_match` does; checks
  that read production's answer (`production_answer`, `production_number`) only to candidates'
  rows whose request production answered; a check with a `row_condition` only to rows where it
  holds.
- A null never passes. GX column-map expectations skip null values; here a row GX skipped because a
  column it needs is null (e.g. `answer_number` when the answer has no number) is a failed check,
  "no value in answer_number". Only `expect_column_values_to_(not_)be_null` judge nulls themselves,
  and a pair/multicolumn expectation's own `ignore_row_if` is honoured as "needs both/any".
- An expectation that errors (GX reports success=False with `exception_info`, it does not raise)
  fails every row it applies to, with the exception message as the reason.

The GX side is one Checkpoint per call, each suite over its prompt_version's answers (see
`replaybench.checks.gx_project`): in the configuration's file project for a night
(`check_answers`), with its Data Docs; in memory otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from replaybench.checks.derive import DERIVED_SCHEMA, derive_columns
from replaybench.checks.docs import docs_dir, project_dir
from replaybench.checks.gx_project import REFERENCE_MATCH_CHECK, ROW_KEY, GxProject
from replaybench.checks.judged import judge_parts
from replaybench.checks.reasons import REASON_MAX, first_line, no_value, reason, scalar, truncate
from replaybench.checks.suites import (
    ANSWERED,
    BASELINE_MODEL,
    REFERENCE_SUITE,
    CheckSpec,
    SuiteSpec,
    load_suites,
    query_text,
)
from replaybench.config import Judge, Settings
from replaybench.errors import scrub
from replaybench.redact import Redactor

NO_ANSWER_REASON = "no answer (call failed)"
OUTPUT_COLUMNS = ["request_id", "model", "prompt_version", "check", "passed", "reason"]
OUTPUT_SCHEMA = {
    "request_id": pl.String,
    "model": pl.String,
    "prompt_version": pl.String,
    "check": pl.String,
    "passed": pl.Boolean,
    "reason": pl.String,
}
# The null-judging expectations: GX evaluates them over nulls too, so no null rule applies.
_NULL_EXPECTATIONS = {"expect_column_values_to_be_null", "expect_column_values_to_not_be_null"}


def check_answers(settings: Settings, answers: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """A night's checks: the config's suites run as the run's Checkpoint in its GX project
    (created and synced from the YAML suites as needed; Data Docs updated), the judge when the
    config has one; reasons redacted as they will be stored."""
    suites = load_suites(settings.suites)
    redactor = Redactor(settings.redact.patterns)
    project = GxProject.open(project_dir(settings), docs_dir(settings), redactor)
    project.sync(suites)
    judge, api_key, judge_redactor = settings.judge, None, None
    if judge is not None:
        api_key = settings.api_key(judge)
        if settings.needs_redaction(judge):
            judge_redactor = redactor
    checks = run_checks(answers, suites, judge, judge_api_key=api_key, redactor=judge_redactor,
                        project=project, run_name=run_id)
    return redact_reasons(checks, redactor)


def run_checks(
    frame: pl.DataFrame,
    suites: dict[str, SuiteSpec],
    judge: Judge | None = None,
    *,
    judge_api_key: str | None = None,
    redactor: Any = None,
    project: GxProject | None = None,
    run_name: str = "replaybench",
) -> pl.DataFrame:
    """Validate every answer against its prompt_version's suite plus reference_match, and, when a
    `judge` endpoint is given, the suites' judge blocks (see the module docstring).

    Returns one row per (answer, check): request_id, model, prompt_version, check, passed, reason.
    `redactor` (a `replaybench.redact.Redactor`) redacts what is sent to the judge. `project`:
    the GX project to run in (its suites synced), as Checkpoint `run_name`; an in-memory one
    when None.
    """
    if any(column not in frame.columns for column in DERIVED_SCHEMA):
        frame = derive_columns(frame)
    frame = frame.with_row_index(ROW_KEY)
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
    # each suite validates its own rows: its prompt_version's; every answer with a reference
    frames = {str(pv): rows.to_pandas() for (pv,), rows in
              answered.group_by("prompt_version", maintain_order=True) if pv in suites}
    with_reference = answered.filter(pl.col("has_reference"))
    if with_reference.height:
        frames[REFERENCE_SUITE] = with_reference.to_pandas()
    results: dict[str, dict[str, Any]] = {}
    if frames:
        if project is None:
            project = GxProject.ephemeral()
            project.sync({pv: suites[pv] for pv in frames if pv in suites})
        results = project.run(frames, run_name)

    for (prompt_version,), rows in answered.group_by("prompt_version", maintain_order=True):
        suite = suites.get(prompt_version)
        for check in [*(suite.checks if suite else ()), REFERENCE_MATCH_CHECK]:
            in_scope = rows.filter(_scope_mask(check, rows))
            if in_scope.is_empty():
                continue
            suite_name = REFERENCE_SUITE if check is REFERENCE_MATCH_CHECK else prompt_version
            passed, reasons = _outcomes(check, results.get(suite_name, {}).get(check.name),
                                        in_scope)
            parts.append(in_scope.select(
                ROW_KEY,
                "request_id",
                "model",
                "prompt_version",
                check=pl.lit(check.name, dtype=pl.String),
                passed=pl.Series(passed, dtype=pl.Boolean),
                reason=pl.Series(reasons, dtype=pl.String),
            ))

    if judge is not None:
        parts.extend(judge_parts(answered, suites, judge, judge_api_key, redactor))

    # Order: input row order, then `answered`, then the suite's order, then reference_match,
    # then the judge.
    out = pl.concat([p.cast({ROW_KEY: pl.UInt32}) for p in parts], how="vertical_relaxed")
    out = out.with_row_index("_order").sort([ROW_KEY, "_order"])
    return out.select(OUTPUT_COLUMNS).cast(OUTPUT_SCHEMA)


def redact_reasons(checks: pl.DataFrame, redactor: Redactor) -> pl.DataFrame:
    """A failed check's reason quotes the answer or the reference ("expected 'jane@…'"): the
    stored reason has personal data replaced, as the report and the e-mail show it (and a
    judge's reason is scrubbed of its key), so `checks` holds none."""
    return checks.with_columns(reason=pl.col("reason").map_elements(
        lambda text: scrub(redactor.redact_text(text)[0]), return_dtype=pl.String))


def _scope_mask(check: CheckSpec, rows: pl.DataFrame) -> pl.Series:
    """Which of a prompt_version's rows the check judges (its scope, the prompt_version aside)."""
    mask = pl.Series([True] * rows.height, dtype=pl.Boolean)
    if check.needs_reference:
        mask &= rows.get_column("has_reference").fill_null(False)
    if check.needs_production:
        mask &= rows.select(pl.col("production_answer").is_not_null()
                            & (pl.col("model") != BASELINE_MODEL)).to_series()
    if check.condition is not None:
        pdf = rows.to_pandas()
        try:
            kept = set(pdf.query(query_text(check.condition)).index.tolist())
        except Exception:  # noqa: BLE001 - GX meets the same error: the check errors on every row
            kept = set(range(rows.height))
        mask &= pl.Series([i in kept for i in range(rows.height)], dtype=pl.Boolean)
    return mask


def _outcomes(check: CheckSpec, result, rows: pl.DataFrame) -> tuple[list[bool], list[str | None]]:
    """Per-row (passed, reason) for one check over the rows in its scope."""
    n = rows.height
    if result is None:  # GX dropped it: never let that pass silently
        return [False] * n, [f"check did not run: {check.type}"] * n
    error = _exception_message(result)
    if error is not None:
        return [False] * n, [truncate(f"check errored: {error}", REASON_MAX)] * n
    values = {c: [scalar(v) for v in rows.get_column(c).to_list()] for c in check.columns}
    passed: list[bool] = [True] * n
    reasons: list[str | None] = [None] * n
    position = {key: i for i, key in enumerate(rows.get_column(ROW_KEY).to_list())}
    for item in result.result.get("unexpected_index_list") or []:
        i = position.get(scalar(item[ROW_KEY]))
        if i is not None:  # the reference suite's list spans every prompt_version
            passed[i] = False
            reasons[i] = reason(check, [values[c][i] for c in check.columns])
    for i in _skipped_rows(check, values, n):
        passed[i] = False
        reasons[i] = no_value(c for c in check.columns if values[c][i] is None)
    return passed, reasons


def _exception_message(result) -> str | None:
    """The message of an expectation that errored, from its exception_info (flat or per metric)."""
    info = result.exception_info or {}
    candidates: Iterable[dict] = [info] if "raised_exception" in info else info.values()
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return first_line(item.get("exception_message") or "unknown error")
    if not result.success and not result.result:
        return "no result (the expectation could not be evaluated)"
    return None


def _skipped_rows(check: CheckSpec, values: dict[str, list], n: int) -> list[int]:
    """Rows GX did not evaluate because of nulls: a null never passes a check that needs it."""
    if check.type in _NULL_EXPECTATIONS:
        return []
    nulls = [[values[c][i] is None for c in check.columns] for i in range(n)]
    rule = check.kwargs.get("ignore_row_if")
    if len(check.columns) == 1:
        return [i for i, row in enumerate(nulls) if row[0]]
    if rule in ("neither", "never"):
        return []
    if rule in (None, "both_values_are_missing", "all_values_are_missing"):
        return [i for i, row in enumerate(nulls) if all(row)]
    return [i for i, row in enumerate(nulls) if any(row)]  # either_/any_value_is_missing
