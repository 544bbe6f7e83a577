"""Validate answers with Great Expectations suites (one per prompt_version, YAML) → per-row checks.

The story: `derive_columns` adds the columns suites refer to, `load_suites` reads and checks the
YAML suites, `run_checks` validates each prompt_version's rows with GX and turns the
unexpected-index lists into one row per (answer, check): passed true/false and a short reason.

Rules that decide a row's outcome, beyond what GX itself says:

- A row whose `output_text` is null gets one check, `answered` = false, and nothing else. Every
  answered row gets `answered` = true, so each (request_id, model) appears in the checks table even
  when its prompt_version has no suite and no reference.
- A null never passes. GX column-map expectations skip null values; here a row GX skipped because a
  column it needs is null (e.g. `answer_number` when the answer has no number) is a failed check,
  "no value in answer_number". Only `expect_column_values_to_(not_)be_null` judge nulls themselves,
  and a pair/multicolumn expectation's own `ignore_row_if` is honoured as "needs both/any".
- Checks that read a reference column (`reference`, `reference_number`, `reference_norm`, ...) apply
  only to rows that have a reference; rows without one get no row for that check. The automatic
  `reference_match` check follows the same rule.
- Checks that read production's answer (`production_answer`, `production_number`: agreement with
  production) apply only to candidates' rows whose request production answered; production's own
  rows get no row for them.
- An expectation that errors (GX reports success=False with `exception_info`, it does not raise)
  fails every row it applies to, with the exception message as the reason.
- Only row-level expectations (column map, column pair map, multicolumn map) are accepted in suites:
  aggregate ones cannot say which answer failed. `row_condition` is refused for the same reason.

LLM-as-judge: a suite may also carry a `judge:` block (`{rubric, threshold: 4, name: judge,
include_production: false}`). When `settings.judge` names a judge endpoint, every answered row of
that prompt_version (production's only with `include_production: true`) gets one more check: the
question (the request's last message, `user_message`), the answer, the reference and the rubric go
to the judge (`replaybench.judge`), and the check passes when its score (1-5) is at least the
threshold; the reason gives the score and the judge's explanation. A judge that fails (unreachable,
HTTP error, a reply with no JSON score) is a failed check with the reason, never a pass. Without
`settings.judge` the judge blocks are skipped: no judge rows at all. Requests to a judge that is not
on this machine are redacted first, under the same `redact.enabled` rule as candidates.

Custom expectations (tolerance, similarity, refusal) live in `replaybench.expectations`, imported
with GX. Great Expectations is imported lazily inside the functions: importing it costs seconds.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Judge, Settings
from replaybench.errors import ConfigError, scrub
from replaybench.redact import Redactor
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse

ROW_KEY = "_row"
REFERENCE_MATCH = "reference_match"
ANSWERED = "answered"
RESERVED_NAMES = {REFERENCE_MATCH, ANSWERED}
BASELINE_MODEL = "production"
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
_REASON_MAX = 160
# Why a column can be null on an answered row, for "no value in ..." reasons.
_NULL_MEANS = {
    "answer_number": "no number in the answer",
    "answer_json": "the answer is not valid JSON",
    "answer_norm": "nothing to compare",
    "output_tokens": "no token count recorded",
    "reference_number": "the reference is not a number",
    "production_number": "no number in production's answer",
}
_VALUE_MAX = 60


class SuiteError(ConfigError, ValueError):
    """A suite file is malformed: the message names the file and the entry."""


@dataclass(frozen=True)
class CheckSpec:
    """One expectation of a suite, as declared: GX's own `{type, kwargs, meta}` shape."""

    name: str
    """The check's name in the `checks` table (meta.name, default `type:column`)."""
    type: str
    """The GX expectation type, e.g. `expect_column_values_to_be_in_set`."""
    kwargs: dict[str, Any]
    """The expectation's arguments, passed to GX unchanged."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form metadata; `name` and a one-line `description` for stakeholders."""

    @property
    def columns(self) -> list[str]:
        """The columns the expectation reads."""
        kw = self.kwargs
        if "column" in kw:
            return [kw["column"]]
        if "column_A" in kw:
            return [kw["column_A"], kw["column_B"]]
        return list(kw.get("column_list", []))

    @property
    def needs_reference(self) -> bool:
        """True when the check reads a reference column: it applies only to rows with one."""
        return any(str(c).startswith("reference") for c in self.columns)

    @property
    def needs_production(self) -> bool:
        """True when the check reads production's answer: it applies only to candidates' rows."""
        return any(str(c).startswith("production") for c in self.columns)


@dataclass(frozen=True)
class JudgeSpec:
    """A suite's `judge:` block: score each answer with the LLM judge (`settings.judge`)."""

    rubric: str
    """What the judge grades against, e.g. "the final answer is correct and the steps are sound"."""
    threshold: float = 4
    """The least score (1-5) that passes."""
    name: str = "judge"
    """The check's name in the `checks` table."""
    include_production: bool = False
    """Judge production's logged answers too (by default only the candidates')."""


@dataclass(frozen=True)
class SuiteSpec:
    """An expectation suite for one prompt_version, loaded from `data/suites/*.yaml`."""

    prompt_version: str
    checks: tuple[CheckSpec, ...]
    description: str = ""
    source: str = ""
    """The file it was read from, for error messages."""
    judge: JudgeSpec | None = None
    """The suite's `judge:` block, if any."""


# --------------------------------------------------------------------------------------------
# Derived columns
# --------------------------------------------------------------------------------------------

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_ANSWER_LINE_RE = re.compile(
    r"^\W*(?:final\s+)?answer\W*[:=]\s*\**\s*\$?\s*(" + _NUMBER + r")\b[^\d]*$", re.IGNORECASE
)
_EDGE_CHARS = string.punctuation + string.whitespace


def _parse_number(text: str | None) -> float | None:
    """A float from a bare number ("42", "-3.5", "1,234"), None if it is not one or not finite."""
    if text is None:
        return None
    stripped = text.strip()
    if not re.fullmatch(_NUMBER, stripped):
        return None
    value = float(stripped.replace(",", ""))
    return value if math.isfinite(value) else None


def _answer_number(answer: str) -> float | None:
    """The number on a final `Answer: N` line, else the last number in the text."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if lines:
        match = _ANSWER_LINE_RE.match(lines[-1].strip())
        if match:
            return _parse_number(match.group(1))
    numbers = _NUMBER_RE.findall(answer)
    return _parse_number(numbers[-1]) if numbers else None


def _canonical_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal_text(text: str) -> str:
    """Case-folded, whitespace collapsed, trailing punctuation removed."""
    return " ".join(text.casefold().split()).rstrip(_EDGE_CHARS)


def _try_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _has_reference(reference: str | None) -> bool:
    return reference is not None and reference.strip() != ""


def _derive_row(
    output_text: str | None, reference: str | None, production_text: str | None = None
) -> dict[str, Any]:
    answer = output_text.strip() if output_text is not None else None
    production = production_text.strip() if production_text is not None else None
    row: dict[str, Any] = {
        "answer": answer,
        "answer_label": answer.lower().strip(_EDGE_CHARS) if answer is not None else None,
        "answer_number": _answer_number(answer) if answer is not None else None,
        "answer_json": None,
        "reference_number": _parse_number(reference),
        "answer_words": len(answer.split()) if answer is not None else None,
        "answer_norm": None,
        "reference_norm": None,
        "production_answer": production,
        "production_number": _answer_number(production) if production is not None else None,
    }
    if answer is not None:
        parsed_ok, _ = _try_json(answer)
        row["answer_json"] = answer if parsed_ok else None
    if not _has_reference(reference):
        return row
    ref_ok, ref_value = _try_json(reference.strip())
    if ref_ok and isinstance(ref_value, dict | list):
        row["reference_norm"] = _canonical_json(ref_value)
        if answer is not None:
            # No fence stripping: fenced JSON is a format failure, so it must not match.
            ans_ok, ans_value = _try_json(answer)
            row["answer_norm"] = _canonical_json(ans_value) if ans_ok else answer
    elif row["reference_number"] is not None:
        row["reference_norm"] = _canonical_number(row["reference_number"])
        if answer is not None:
            number = row["answer_number"]
            # The raw text when there is no number: a failed match then shows what was said.
            row["answer_norm"] = _canonical_number(number) if number is not None else answer
    else:
        row["reference_norm"] = _normal_text(reference)
        if answer is not None:
            row["answer_norm"] = _normal_text(answer)
    return row


_DERIVED_SCHEMA = {
    "answer": pl.String,
    "answer_label": pl.String,
    "answer_number": pl.Float64,
    "answer_json": pl.String,
    "reference_number": pl.Float64,
    "answer_words": pl.Int64,
    "answer_norm": pl.String,
    "reference_norm": pl.String,
    "production_answer": pl.String,
    "production_number": pl.Float64,
}


def derive_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the columns suites refer to: answer, answer_label, answer_number, answer_json,
    reference_number, answer_words, answer_norm, reference_norm, and production_answer,
    production_number from `production_text` when the frame has it (see `_derive_row`)."""
    if "production_text" not in frame.columns:
        frame = frame.with_columns(production_text=pl.lit(None, dtype=pl.String))
    rows = [
        _derive_row(out, ref, prod)
        for out, ref, prod in zip(
            frame.get_column("output_text").to_list(),
            frame.get_column("reference").to_list(),
            frame.get_column("production_text").to_list(),
            strict=True,
        )
    ]
    derived = (
        pl.DataFrame(rows, schema=_DERIVED_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=_DERIVED_SCHEMA)
    )
    return frame.drop([c for c in _DERIVED_SCHEMA if c in frame.columns]).hstack(derived)


# --------------------------------------------------------------------------------------------
# Suites from YAML
# --------------------------------------------------------------------------------------------


def _expectation_class(etype: str) -> type | None:
    """The registered GX expectation class for a type name, None if there is none."""
    import great_expectations  # noqa: F401 - registers the core expectations
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    import replaybench.expectations  # noqa: F401 - registers ours

    try:
        return get_expectation_impl(etype)
    except ExpectationNotFoundError:
        return None


def _is_row_level(cls: type) -> bool:
    """True for expectations that produce per-row results (column map, pair map, multicolumn)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return issubclass(
        cls, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation
    )


def _to_gx(check: CheckSpec):
    """The GX 1.x Expectation object for a check."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    meta = {**check.meta, "name": check.name}
    return ExpectationConfiguration(type=check.type, kwargs=check.kwargs, meta=meta).to_domain_obj()


def _parse_check(entry: Any, where: str) -> CheckSpec:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: an expectation must be a mapping with type, kwargs, meta")
    unknown = set(entry) - {"type", "kwargs", "meta"}
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: type, kwargs, meta")
    etype, kwargs, meta = entry.get("type"), entry.get("kwargs", {}), entry.get("meta") or {}
    if not isinstance(etype, str):
        raise SuiteError(f"{where}: missing or non-string `type`")
    cls = _expectation_class(etype)
    if cls is None:
        raise SuiteError(f"{where}: unknown expectation type {etype!r}")
    if not _is_row_level(cls):
        raise SuiteError(
            f"{where}: {etype} is not a row-level expectation (column map, column pair map or "
            "multicolumn map), so it cannot say which answer failed"
        )
    if not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise SuiteError(f"{where}: `kwargs` and `meta` must be mappings")
    if "row_condition" in kwargs:
        raise SuiteError(f"{where}: row_condition is not supported (rows outside it get no result)")
    column = kwargs.get("column") or kwargs.get("column_A") or "?"
    name = meta.get("name") or f"{etype}:{column}"
    if not isinstance(name, str):
        raise SuiteError(f"{where}: meta.name must be a string")
    check = CheckSpec(name=name, type=etype, kwargs=kwargs, meta=meta)
    try:
        _to_gx(check)  # GX validates the kwargs (pydantic): missing column, bad value_set, ...
    except Exception as exc:  # noqa: BLE001 - any GX complaint is a malformed entry
        # pydantic puts the field and the problem on the lines after the first
        detail = _truncate(" ".join(str(exc).split()), 300)
        raise SuiteError(f"{where}: invalid kwargs for {etype}: {detail}") from exc
    return check


def load_suite(path: str | Path) -> SuiteSpec:
    """Read one suite file and check every entry; raise SuiteError naming the file and entry."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {_truncate(str(exc), 200)}") from exc
    if not isinstance(doc, dict):
        raise SuiteError(f"{path}: expected a mapping with prompt_version and expectations")
    unknown = set(doc) - {"prompt_version", "description", "expectations", "judge"}
    if unknown:
        raise SuiteError(f"{path}: unknown key(s) {sorted(unknown)}")
    prompt_version = doc.get("prompt_version")
    if not isinstance(prompt_version, str) or not prompt_version:
        raise SuiteError(f"{path}: missing `prompt_version` (a string such as triage@v4)")
    entries = doc.get("expectations")
    if not isinstance(entries, list):
        raise SuiteError(f"{path}: `expectations` must be a list")
    checks: list[CheckSpec] = []
    for i, entry in enumerate(entries):
        label = entry.get("meta", {}).get("name") if isinstance(entry, dict) else None
        where = f"{path}: expectation #{i + 1}" + (f" ({label})" if label else "")
        check = _parse_check(entry, where)
        if check.name in RESERVED_NAMES:
            raise SuiteError(f"{where}: the name {check.name!r} is reserved")
        if any(c.name == check.name for c in checks):
            raise SuiteError(f"{where}: duplicate check name {check.name!r}")
        checks.append(check)
    judge = _parse_judge(doc["judge"], f"{path}: judge") if "judge" in doc else None
    if judge is not None and (
        judge.name in RESERVED_NAMES or any(c.name == judge.name for c in checks)
    ):
        raise SuiteError(f"{path}: judge: the name {judge.name!r} is reserved or already a check")
    return SuiteSpec(
        prompt_version=prompt_version,
        checks=tuple(checks),
        description=str(doc.get("description") or ""),
        source=str(path),
        judge=judge,
    )


def _parse_judge(entry: Any, where: str) -> JudgeSpec:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: must be a mapping with rubric, threshold, name")
    unknown = set(entry) - {"rubric", "threshold", "name", "include_production"}
    if unknown:
        raise SuiteError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: rubric, threshold, name, "
            "include_production"
        )
    rubric = entry.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise SuiteError(f"{where}: missing `rubric` (what the judge grades against)")
    threshold = entry.get("threshold", 4)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 1 <= threshold <= 5:
        raise SuiteError(f"{where}: `threshold` must be a number from 1 to 5")
    name = entry.get("name", "judge")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{where}: `name` must be a non-empty string")
    include = entry.get("include_production", False)
    if not isinstance(include, bool):
        raise SuiteError(f"{where}: `include_production` must be true or false")
    return JudgeSpec(rubric=rubric.strip(), threshold=threshold, name=name, include_production=include)


def load_suites(directory: str | Path) -> dict[str, SuiteSpec]:
    """Read every `*.yaml` suite in a directory, keyed by prompt_version."""
    suites: dict[str, SuiteSpec] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        suite = load_suite(path)
        if suite.prompt_version in suites:
            other = suites[suite.prompt_version].source
            raise SuiteError(f"{path}: prompt_version {suite.prompt_version!r} also in {other}")
        suites[suite.prompt_version] = suite
    return suites


# --------------------------------------------------------------------------------------------
# Running the checks
# --------------------------------------------------------------------------------------------

REFERENCE_MATCH_CHECK = CheckSpec(
    name=REFERENCE_MATCH,
    type="expect_column_pair_values_to_be_equal",
    kwargs={"column_A": "answer_norm", "column_B": "reference_norm"},
    meta={"description": "Answer matches the reference answer (normalised)"},
)


class _Validator:
    """One ephemeral GX context with a pandas dataframe asset, reused for every prompt_version."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        # GX announces its temporary docs folder at INFO on every context; the night needs no docs
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        asset = context.data_sources.add_pandas("replaybench").add_dataframe_asset("answers")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, name: str, checks: list[CheckSpec], pdf) -> dict[str, Any]:
        """Validate a pandas frame; return {check name: ExpectationValidationResult}."""
        suite = self._gx.ExpectationSuite(name=name, expectations=[_to_gx(c) for c in checks])
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": pdf})
        result = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_KEY],
                "return_unexpected_index_query": False,
                "partial_unexpected_count": 0,
            },
        )
        return {r.expectation_config.meta.get("name"): r for r in result.results}


def run_checks(
    frame: pl.DataFrame,
    suites: dict[str, SuiteSpec],
    judge: Judge | None = None,
    *,
    judge_api_key: str | None = None,
    redactor: Any = None,
) -> pl.DataFrame:
    """Validate every answer against its prompt_version's suite plus reference_match, and, when a
    `judge` endpoint is given, the suites' judge blocks (see the module docstring).

    Returns one row per (answer, check): request_id, model, prompt_version, check, passed, reason.
    `redactor` (a `replaybench.redact.Redactor`) redacts what is sent to the judge.
    """
    if "answer_norm" not in frame.columns:
        frame = derive_columns(frame)
    frame = frame.with_row_index(ROW_KEY)
    validator: _Validator | None = None
    parts: list[pl.DataFrame] = []

    has_answer = pl.col("output_text").is_not_null()
    parts.append(
        frame.select(
            ROW_KEY,
            "request_id",
            "model",
            "prompt_version",
            check=pl.lit(ANSWERED),
            passed=has_answer,
            reason=pl.when(has_answer).then(None).otherwise(pl.lit(NO_ANSWER_REASON)),
        )
    )
    answered = frame.filter(has_answer)

    for (prompt_version,), rows in answered.group_by("prompt_version", maintain_order=True):
        suite = suites.get(prompt_version)
        checks = [*(suite.checks if suite else ()), REFERENCE_MATCH_CHECK]
        has_reference = rows.select(
            pl.col("reference").is_not_null() & (pl.col("reference").str.strip_chars() != "")
        ).to_series()
        compared = rows.select(
            pl.col("production_answer").is_not_null() & (pl.col("model") != BASELINE_MODEL)
        ).to_series()
        checks = [
            c
            for c in checks
            if (not c.needs_reference or has_reference.any())
            and (not c.needs_production or compared.any())
        ]
        if not checks:
            continue
        if validator is None:
            validator = _Validator()
        pdf = rows.to_pandas()
        results = validator.validate(str(prompt_version), checks, pdf)
        row_keys = rows.get_column(ROW_KEY)
        for check in checks:
            passed, reasons = _check_outcomes(check, results.get(check.name), pdf)
            part = pl.DataFrame(
                {
                    ROW_KEY: row_keys,
                    "request_id": rows.get_column("request_id"),
                    "model": rows.get_column("model"),
                    "prompt_version": rows.get_column("prompt_version"),
                    "check": pl.Series([check.name] * rows.height, dtype=pl.String),
                    "passed": pl.Series(passed, dtype=pl.Boolean),
                    "reason": pl.Series(reasons, dtype=pl.String),
                }
            )
            if check.needs_reference:
                part = part.filter(has_reference)
            if check.needs_production:
                part = part.filter(compared)
            parts.append(part)

    if judge is not None:
        parts.extend(_judge_parts(answered, suites, judge, judge_api_key, redactor))

    if not parts:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    # Order: input row order, then `answered`, then the suite's order, then reference_match,
    # then the judge.
    out = pl.concat([p.cast({ROW_KEY: pl.UInt32}) for p in parts], how="vertical_relaxed")
    out = out.with_row_index("_order").sort([ROW_KEY, "_order"])
    return out.select(OUTPUT_COLUMNS).cast(OUTPUT_SCHEMA)


def _judge_parts(
    answered: pl.DataFrame,
    suites: dict[str, SuiteSpec],
    judge: Judge,
    api_key: str | None,
    redactor: Any,
) -> list[pl.DataFrame]:
    """One judge check row per answered row whose suite has a judge block, scored in one batch."""
    from replaybench.judge import JudgeItem, score_items

    selected: list[tuple[pl.DataFrame, JudgeSpec]] = []
    for (prompt_version,), rows in answered.group_by("prompt_version", maintain_order=True):
        suite = suites.get(prompt_version)
        if suite is None or suite.judge is None:
            continue
        if not suite.judge.include_production:
            rows = rows.filter(pl.col("model") != BASELINE_MODEL)
        if rows.height:
            selected.append((rows, suite.judge))
    items: list[JudgeItem] = []
    for rows, spec in selected:
        questions = (
            rows.get_column("user_message").to_list()
            if "user_message" in rows.columns
            else [None] * rows.height
        )
        for question, answer, reference in zip(
            questions,
            rows.get_column("output_text").to_list(),
            rows.get_column("reference").to_list(),
            strict=True,
        ):
            texts = [question or "", answer or "", reference or ""]
            if redactor is not None:
                texts, _ = redactor.redact_messages(texts)
            items.append(JudgeItem(texts[0], texts[1], texts[2] or None, spec.rubric))
    verdicts = iter(score_items(items, judge, api_key))
    parts = []
    for rows, spec in selected:
        passed, reasons = [], []
        for _ in range(rows.height):
            score, why = next(verdicts)
            ok = score is not None and score >= spec.threshold
            passed.append(ok)
            if score is None:
                reasons.append(why)
            else:
                verdict = f"score {score}/5" + ("" if ok else f" < {spec.threshold:g}")
                reasons.append(_truncate(f"{verdict}: {why}", _REASON_MAX))
        parts.append(
            rows.select(
                ROW_KEY,
                "request_id",
                "model",
                "prompt_version",
                check=pl.lit(spec.name, dtype=pl.String),
                passed=pl.Series(passed, dtype=pl.Boolean),
                reason=pl.Series(reasons, dtype=pl.String),
            )
        )
    return parts


def _check_outcomes(check: CheckSpec, result, pdf) -> tuple[list[bool], list[str | None]]:
    """Per-row (passed, reason) for one check over the frame GX validated."""
    n = len(pdf)
    if result is None:  # GX dropped it: never let that pass silently
        return [False] * n, [f"check did not run: {check.type}"] * n
    error = _exception_message(result)
    if error is not None:
        return [False] * n, [_truncate(f"check errored: {error}", _REASON_MAX)] * n
    passed = [True] * n
    reasons: list[str | None] = [None] * n
    position = {key: i for i, key in enumerate(pdf[ROW_KEY].tolist())}
    for item in result.result.get("unexpected_index_list") or []:
        i = position[_scalar(item[ROW_KEY])]
        passed[i] = False
        reasons[i] = _reason(check, pdf, i)
    for i in _skipped_rows(check, pdf):
        passed[i] = False
        missing = [c for c in check.columns if _scalar(pdf[c].iat[i]) is None]
        reasons[i] = "; ".join(
            f"no value in {c}" + (f" ({_NULL_MEANS[c]})" if c in _NULL_MEANS else "")
            for c in missing
        )
    return passed, reasons


def _exception_message(result) -> str | None:
    """The message of an expectation that errored, from its exception_info (flat or per metric)."""
    info = result.exception_info or {}
    candidates: Iterable[dict] = [info] if "raised_exception" in info else info.values()
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return _first_line(item.get("exception_message") or "unknown error")
    if not result.success and not result.result:
        return "no result (the expectation could not be evaluated)"
    return None


def _skipped_rows(check: CheckSpec, pdf) -> list[int]:
    """Rows GX did not evaluate because of nulls: a null never passes a check that needs it."""
    if check.type in _NULL_EXPECTATIONS:
        return []
    nulls = pdf[check.columns].isna()
    rule = check.kwargs.get("ignore_row_if")
    if len(check.columns) == 1:
        mask = nulls.iloc[:, 0]
    elif rule in ("neither", "never"):
        return []
    elif rule in (None, "both_values_are_missing", "all_values_are_missing"):
        mask = nulls.all(axis=1)
    else:  # either_value_is_missing / any_value_is_missing
        mask = nulls.any(axis=1)
    return [i for i, skipped in enumerate(mask.tolist()) if skipped]


def _reason(check: CheckSpec, pdf, i: int) -> str:
    """What was expected and what was seen, briefly."""
    kw = check.kwargs
    values = [_scalar(pdf[c].iat[i]) for c in check.columns]
    seen = _show(values[0]) if values else "?"
    t = check.type
    missing = [c for c, v in zip(check.columns, values, strict=True) if v is None]
    if missing and t.startswith("expect_column_pair"):
        text = "; ".join(
            f"no value in {c}" + (f" ({_NULL_MEANS[c]})" if c in _NULL_MEANS else "") for c in missing
        )
    elif t == "expect_column_values_to_be_in_set":
        text = f"not in {_show_set(kw['value_set'])}: {seen}"
    elif t == "expect_column_values_to_not_be_in_set":
        text = f"in {_show_set(kw['value_set'])}: {seen}"
    elif t == "expect_column_values_to_match_regex":
        text = f"does not match /{_truncate(kw['regex'], 40)}/: {seen}"
    elif t == "expect_column_values_to_not_match_regex":
        hit = re.search(kw["regex"], str(values[0]))
        at = f" at {hit.group(0)!r}" if hit else ""
        text = f"matches /{_truncate(kw['regex'], 40)}/{at}: {seen}"
    elif t == "expect_column_values_to_be_json_parseable":
        text = f"not valid JSON: {seen}"
    elif t == "expect_column_values_to_match_json_schema":
        text = f"does not match the JSON schema ({_schema_error(values[0], kw['json_schema'])})"
    elif t == "expect_column_values_to_be_between":
        text = f"not {_show_range(kw)}: {seen}"
    elif t == "expect_column_value_lengths_to_be_between":
        text = f"length {len(str(values[0]))} not {_show_range(kw)}: {seen}"
    elif t == "expect_column_values_to_not_be_null":
        text = "is null"
    elif t == "expect_column_pair_values_to_be_equal":
        text = f"{seen} != {_show(values[1])}"
    elif t == "expect_column_pair_values_to_be_within_tolerance":
        tolerance = ", ".join(f"{k} {kw[k]:g}" for k in ("rel_tol", "abs_tol") if kw.get(k))
        text = f"{seen} != {_show(values[1])}" + (f" (beyond {tolerance})" if tolerance else "")
    elif t == "expect_column_pair_values_to_be_similar":
        from replaybench.expectations import similarity

        scorer, normalize = kw.get("scorer", "token_set_ratio"), kw.get("normalize", True)
        score = similarity(values[0], values[1], scorer, normalize)
        text = f"{scorer} {score:.0f} < {kw.get('threshold', 90):g}: {seen} vs {_show(values[1])}"
    elif t == "expect_column_values_to_not_be_a_refusal":
        from replaybench.expectations import refusal

        text = f"refusal {refusal(values[0], kw.get('extra_patterns') or ())!r}: {seen}"
    else:
        shown = ", ".join(f"{c}={_show(v)}" for c, v in zip(check.columns, values, strict=True))
        text = f"failed {t}: {shown}"
    return _truncate(text, _REASON_MAX)


def _schema_error(value: Any, schema: dict) -> str:
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(schema)(schema).iter_errors(json.loads(value))
        )
    except Exception as exc:  # noqa: BLE001 - the reason is best effort
        return _first_line(exc)
    return _truncate(error.message, 100) if error else "?"


def _show_range(kw: dict) -> str:
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"≥ {low}" if low is not None else f"≤ {high}"


def _show_set(values: Iterable) -> str:
    items = [str(v) for v in values]
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return "{" + shown + "}"


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _truncate(repr(value), _VALUE_MAX)


def _scalar(value: Any) -> Any:
    """numpy scalars → Python values; NaN → None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the pipeline step -----------------------------------------------------------------------

def validate_run(settings: Settings, run: Run) -> int:
    """Check every answer of the run (production's and the candidates'); store one row per
    answer and check, replacing any from an earlier attempt. Returns the number of check rows.
    The warehouse is held only to read the answers and to write the checks: the checks
    themselves (and a judge's HTTP calls) run without it, so another run is not kept waiting."""
    with open_warehouse(settings.warehouse) as wh:
        answers = wh.frame("answers", run_id=run.run_id)
    judge, api_key, redactor = settings.judge, None, None
    if judge is not None:
        api_key = settings.api_key(judge)
        if settings.needs_redaction(judge):
            redactor = Redactor(settings.redact.patterns)
    checks = run_checks(
        answers, load_suites(settings.suites), judge, judge_api_key=api_key, redactor=redactor
    )
    checks = redact_reasons(checks, Redactor(settings.redact.patterns))
    with open_warehouse(settings.warehouse) as wh, wh.transaction():
        wh.execute("DELETE FROM checks WHERE run_id = $r", {"r": run.run_id})
        wh.insert("checks", checks.with_columns(run_id=pl.lit(run.run_id)))
    return len(checks)


def redact_reasons(checks: pl.DataFrame, redactor: Redactor) -> pl.DataFrame:
    """A failed check's reason quotes the answer or the reference ("expected 'jane@…'"): the
    stored reason has personal data replaced, as the report and the e-mail show it (and a
    judge's reason is scrubbed of its key), so `checks` holds none."""
    return checks.with_columns(reason=pl.col("reason").map_elements(
        lambda text: scrub(redactor.redact_text(text)[0]), return_dtype=pl.String))


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings, run: Run) -> int:
    return validate_run(settings, run)
